"""Waiting, in a Trio test, for a state that no event announces."""

from __future__ import annotations

from collections.abc import Callable

import trio


async def wait_for(predicate: Callable[[], bool], *, poll: float = 0.01) -> None:
    """Return once ``predicate()`` holds, looking again every ``poll`` seconds.

    For what a test waits on that has no event of its own: a role, an
    index, a file a child process writes. Where an event exists, await it
    instead. On Trio's fake clock (the core and runtime tests) a poll costs
    no real time and the run stays deterministic. The caller bounds the
    wait (``trio.fail_after``)."""
    while not predicate():  # noqa: ASYNC110 (nothing to await: see above)
        await trio.sleep(poll)
