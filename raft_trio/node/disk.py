"""One dedicated writer thread per node for every disk write.

The storage's writes (one transaction and fsync per Ready, compactions, the
final close) run here, in the order the runtime issues them, off the Trio
event loop: the loop never blocks on the disk, and the disk sees one writer.
A call waits for its job even when cancelled: a write that has started is
finished before anything else happens (the caller's cancel scope then takes
effect), exactly like ``trio.to_thread.run_sync`` without
``abandon_on_cancel``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import outcome
import trio

_Job = tuple[Callable[..., Any], tuple[Any, ...], Callable[[outcome.Outcome[Any]], None]]


class DiskWriter:
    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    async def __call__(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function(*args)`` on the writer thread and return its result."""
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        result: list[outcome.Outcome[Any]] = []

        def deliver(value: outcome.Outcome[Any]) -> None:
            result.append(value)
            token.run_sync_soon(done.set)

        self._jobs.put((function, args, deliver))
        with trio.CancelScope(shield=True):
            await done.wait()
        return result[0].unwrap()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            function, args, deliver = job
            deliver(outcome.capture(function, *args))

    def stop(self) -> None:
        """Finish the queued jobs, then end the thread."""
        self._jobs.put(None)
        self._thread.join()
