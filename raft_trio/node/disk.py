"""One dedicated writer thread per node for every disk write.

The storage's writes (one transaction and fsync per Ready, compactions, the
final close) run here, in the order the runtime issues them, off the Trio
event loop: the loop never blocks on the disk, and the disk sees one writer.
A call waits for its job even when cancelled: a write that has started is
finished before anything else happens (the caller's cancel scope then takes
effect), exactly like ``trio.to_thread.run_sync`` without
``abandon_on_cancel``.

:meth:`DiskWriter.submit` hands a job over without waiting, so that the
thread can start on a Ready's write while the event loop goes on sending
that Ready's messages; :meth:`DiskJob.wait` collects the result later.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import outcome
import trio

_Job = tuple[Callable[..., Any], tuple[Any, ...], "DiskJob"]


class DiskJob:
    """A call handed to the writer thread; :meth:`wait` returns its result."""

    __slots__ = ("_done", "_result", "_token")

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self._token = token
        self._done = trio.Event()
        self._result: outcome.Outcome[Any] | None = None

    def _deliver(self, result: outcome.Outcome[Any]) -> None:
        """On the writer thread: keep the result, wake the waiter."""
        self._result = result
        self._token.run_sync_soon(self._done.set)

    async def wait(self) -> Any:
        """The call's result (or its exception), once it has run. Waits
        through a cancellation: a started write is never abandoned."""
        with trio.CancelScope(shield=True):
            await self._done.wait()
        assert self._result is not None
        return self._result.unwrap()


class DiskWriter:
    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    async def __call__(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function(*args)`` on the writer thread and return its result."""
        return await self.submit(function, *args).wait()

    def submit(self, function: Callable[..., Any], *args: Any) -> DiskJob:
        """Queue ``function(*args)`` for the writer thread at once (from the
        event loop, without a checkpoint); jobs run in submission order."""
        job = DiskJob(trio.lowlevel.current_trio_token())
        self._jobs.put((function, args, job))
        return job

    def _work(self) -> None:
        while (item := self._jobs.get()) is not None:
            function, args, job = item
            job._deliver(outcome.capture(function, *args))

    def stop(self) -> None:
        """Finish the queued jobs, then end the thread."""
        self._jobs.put(None)
        self._thread.join()
