"""One dedicated writer thread per node for the disk writes.

The storage's writes (one transaction and fsync per Ready, compactions, the
final close) run here, in the order the runtime issues them, and the disk
sees one writer at a time. A call waits for its job even when cancelled: a
write that has started is finished before anything else happens (the
caller's cancel scope then takes effect), exactly like
``trio.to_thread.run_sync`` without ``abandon_on_cancel``.

A short write (:meth:`DiskWriter.short`: one client's Ready, of one entry
or none) runs on the event loop's own thread instead, while the writer thread
is idle and the disk has been quick lately (the last short write, within
:data:`QUICK_TRUST_S`). Handing it to the thread and back
costs two thread wake-ups and a turn of the loop, which at a client's pace
cost more CPU than the write itself and a third of a millisecond of its
latency; the loop has nothing else to do meanwhile at that pace (etcd's
raft goroutine, too, waits on its WAL's fsync itself). A disk that stalls in
such a write holds the whole node as a pause would: the others elect a
leader without it, and it counts the time as a pause when it resumes. The
next writes go to the thread until one is quick again, where the leader's
stall watch (a leader whose write stalls longer than an election timeout
steps down) covers them.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import outcome
import trio

#: A write that took longer than this on a quick disk sends the next ones
#: to the writer thread until one takes less again: at most a tenth of the
#: default heartbeat interval with the loop held.
QUICK_WRITE_S = 0.01

#: How long a quick short write vouches for the disk. The writes handed to
#: the thread meanwhile (a busy leader's batches, compactions) are not
#: timed, so a disk that turned slow under load would go unnoticed until a
#: short write met it on the loop; one that finds the last quick short
#: write older than this goes to the thread, timed, instead.
QUICK_TRUST_S = 1.0

_Job = tuple[Callable[..., Any], tuple[Any, ...], Callable[[outcome.Outcome[Any]], None]]


class DiskWriter:
    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()
        #: Jobs handed to the thread whose callers have not resumed yet.
        self._on_thread = 0
        #: Until when (time.perf_counter) the last short write, if it took
        #: at most QUICK_WRITE_S, vouches for the disk.
        self._quick_until = time.perf_counter() + QUICK_TRUST_S

    async def __call__(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function(*args)`` on the writer thread and return its result."""
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        result: list[outcome.Outcome[Any]] = []

        def deliver(value: outcome.Outcome[Any]) -> None:
            result.append(value)
            token.run_sync_soon(done.set)

        self._on_thread += 1
        try:
            self._jobs.put((function, args, deliver))
            with trio.CancelScope(shield=True):
                await done.wait()
        finally:
            self._on_thread -= 1
        return result[0].unwrap()

    async def short(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function(*args)``, a write expected to be short, and return
        its result: on the calling thread (the event loop's, which it holds
        meanwhile) when no job is on the writer thread and the last short
        write was quick, less than :data:`QUICK_TRUST_S` ago, else on the
        writer thread. Either way in order with every other job, and never
        two at once."""
        if self._on_thread or time.perf_counter() > self._quick_until:
            return await self(self._timed, function, *args)
        return self._timed(function, *args)

    def _timed(self, function: Callable[..., Any], *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            ended = time.perf_counter()
            self._quick_until = ended + QUICK_TRUST_S if ended - started <= QUICK_WRITE_S else -math.inf

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            function, args, deliver = job
            deliver(outcome.capture(function, *args))

    def stop(self) -> None:
        """Finish the queued jobs, then end the thread."""
        self._jobs.put(None)
        self._thread.join()
