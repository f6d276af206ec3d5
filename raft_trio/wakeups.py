"""Sleeps that may end a little late share a wake-up the process has anyway.

On this virtual machine a sleeping process's wake-up costs 0.5-0.8 ms of CPU,
far more than what a once-a-second duty does (a stream's keep-alive check,
the disk watch). A node wakes about ten times a second anyway, for its
heartbeats: a leader's ticker sends them, a follower reads them. A duty
that may run up to ``slack`` late sleeps here, and ends in the first of
those turns after it is due (the node calls :meth:`SharedWakeups.awake`
there); only when none comes within ``slack`` does it wake the process
itself. With ``slack`` 0 a sleep is ``trio.sleep``.
"""

from __future__ import annotations

import heapq
import itertools

import trio


class SharedWakeups:
    def __init__(self, slack: float) -> None:
        #: How late a sleep may end, at most.
        self.slack = slack
        #: (due, order, the sleeper's event), soonest first.
        self._due: list[tuple[float, int, trio.Event]] = []
        self._order = itertools.count()
        #: Sleeps that ended by themselves, no turn having come within
        #: ``slack`` (for tests and benchmarks).
        self.ended_alone = 0

    async def sleep(self, seconds: float) -> None:
        """Returns ``seconds`` from now, or up to ``slack`` later: in the
        first turn that calls :meth:`awake` once it is due, else by itself."""
        due = trio.current_time() + seconds
        entry = (due, next(self._order), trio.Event())
        heapq.heappush(self._due, entry)
        try:
            with trio.move_on_at(due + self.slack) as alone:
                await entry[2].wait()
            if alone.cancelled_caught:
                self.ended_alone += 1
        finally:
            if not entry[2].is_set():  # woke by itself, or cancelled
                self._due.remove(entry)
                heapq.heapify(self._due)

    def awake(self) -> None:
        """The process runs now anyway: the sleeps that are due end."""
        due = self._due
        if due and due[0][0] <= trio.current_time():
            now = trio.current_time()
            while due and due[0][0] <= now:
                heapq.heappop(due)[2].set()

    def __len__(self) -> int:
        """Sleeps under way."""
        return len(self._due)
