"""Waiting for a state that no event announces: in a Trio test
(:func:`wait_for`), and in a blocking one, a thread or a script
(:func:`wait_until`); and what the event loop gives other tasks while a
test's work is under way (:class:`LoopTurns`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import trio

T = TypeVar("T")

#: How often :func:`wait_until` looks, unless told.
POLL_S = 0.05


async def wait_for(predicate: Callable[[], bool], *, poll: float = 0.01) -> None:
    """Return once ``predicate()`` holds, looking again every ``poll`` seconds.

    For what a test waits on that has no event of its own: a role, an
    index, a file a child process writes. Where an event exists, await it
    instead. On Trio's fake clock (the core and runtime tests) a poll costs
    no real time and the run stays deterministic. The caller bounds the
    wait (``trio.fail_after``)."""
    while not predicate():  # noqa: ASYNC110 (nothing to await: see above)
        await trio.sleep(poll)


def wait_until(check: Callable[[], tuple[bool, T]], timeout: float, what: str, poll: float = POLL_S) -> T:
    """Blocking: call ``check`` (returning ``(done, detail)``) every
    ``poll`` seconds until done; the detail. After ``timeout`` seconds an
    AssertionError names ``what`` and the last detail seen."""
    deadline = time.monotonic() + timeout
    while True:
        done, detail = check()
        if done:
            return detail
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}; last seen: {detail!r}")
        time.sleep(poll)


class LoopTurns:
    """Counts the turns the event loop gives a task that only yields, from
    :meth:`run` until :meth:`stop`: what a heartbeat's task would get while
    other work (a large body's MAC) is under way. Work done on the loop
    itself leaves it a turn or two; work on a worker thread, many."""

    def __init__(self) -> None:
        self.count = 0
        self._stopped = False

    async def run(self) -> None:
        while not self._stopped:
            self.count += 1
            await trio.lowlevel.checkpoint()

    def stop(self) -> None:
        self._stopped = True
