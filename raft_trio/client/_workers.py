"""Daemon threads that the blocking client's hedged attempts run on.

A blocking request cannot be cancelled: the attempt not taken runs on
until its own timeout, so it must not hold up the caller, nor the
interpreter's exit (``concurrent.futures`` joins its threads at exit, up
to the attempt's 7 s). Starting a thread for each attempt cost about
0.3 ms of CPU, almost as much as the request; threads that stay and wait
for the next job cost nothing measurable. So the pool keeps its threads,
starts one only when none is idle, and lets one go after a minute idle.
"""

from __future__ import annotations

import contextvars
import functools
import os
import queue
import threading
import weakref
from collections.abc import Callable

#: Seconds a thread waits for a job before it ends.
IDLE_S = 60.0


class DaemonPool:
    """Runs each job on an idle daemon thread, or a new one."""

    def __init__(self, idle_s: float = IDLE_S) -> None:
        self._idle_s = idle_s
        self._start_empty()
        # A child of fork() has none of the parent's threads: a job put on
        # the queue for an idle one would wait forever.
        os.register_at_fork(after_in_child=functools.partial(_start_empty_in_child, weakref.ref(self)))

    def _start_empty(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        #: Threads waiting for a job, less the jobs promised to them.
        self._idle = 0

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` (which must not raise) on a thread of the pool, in
        the caller's context (its ``contextvars``: a tracer's current span,
        a log's request id), as ``trio.to_thread`` and
        ``asyncio.to_thread`` do."""
        job = functools.partial(contextvars.copy_context().run, job)
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                self._jobs.put(job)
                return
        threading.Thread(target=self._work, args=(job,), daemon=True, name="raft-trio-client").start()

    def _work(self, job: Callable[[], None]) -> None:
        while True:
            job()
            with self._lock:
                self._idle += 1
            while True:
                try:
                    job = self._jobs.get(timeout=self._idle_s)
                    break
                except queue.Empty:
                    with self._lock:
                        # Every idle thread not yet promised a job may
                        # end; if all were promised, a job is on its way.
                        if self._idle > 0:
                            self._idle -= 1
                            return


def _start_empty_in_child(pool: weakref.ref[DaemonPool]) -> None:
    if (alive := pool()) is not None:
        alive._start_empty()
