"""The core's logical clock, delivered lazily.

The core counts time in ticks (``tick_ms`` each, 10 ms by default). Calling
``tick()`` every 10 ms woke each node 100 times a second, nearly always to
count and nothing else: at rest that was most of a node's CPU. Here the
ticks are delivered late and in bulk, at the two moments they can matter:

- before any other input to the core whose effect depends on its timers
  (:meth:`LazyTicks.catch_up`: a message, a proposal, a read, a membership
  change or a transfer), so that the core sees every tick before an input
  that came after it, exactly as if it had been delivered on time;
- when the next tick that matters falls (``core.ticks_until_due()``: a
  timer fires, or a commit index waits for the next tick), for which the
  ticker task sleeps (:meth:`LazyTicks.next_wake`); inputs that bring that
  moment closer move the sleep's deadline (:meth:`LazyTicks.reschedule`).

Same ticks, in the same order relative to every input: same behaviour. The
ticker still wakes at least every ``max_sleep`` seconds, so that time the
process did not run (a pause, SIGSTOP, a starved machine) is recognised
and not delivered as a burst of ticks (a follower resumed after a pause
would otherwise time out before it read the heartbeats waiting in its
socket): once the ticker is overdue by more than ``max_sleep`` (a
heartbeat interval), the ticks beyond that are dropped, once. Lateness
within that is jitter of a loaded machine, and counts.
"""

from __future__ import annotations

import math

import trio

from ..core import RaftCore

#: Rounding slack, so that a wake at the due time counts the due tick.
_EPSILON = 1e-9


class LazyTicks:
    def __init__(self, core: RaftCore, interval: float, max_sleep: float) -> None:
        self._core = core
        self._interval = interval
        self._max_sleep = max_sleep
        #: How late the ticker may be before the time is taken for a pause.
        self._slack = max(interval, max_sleep)
        #: When the last tick delivered fell.
        self._last = -math.inf
        #: When the ticker planned to wake (inf: it does not sleep yet).
        self._wake_at = math.inf
        self._scope: trio.CancelScope | None = None
        #: Ticker wake-ups and ticks delivered, for tests and benchmarks.
        self.wakeups = 0
        self.delivered = 0

    def start(self) -> None:
        """The clock starts now (inside Trio)."""
        self._last = trio.current_time()

    def catch_up(self) -> None:
        """Deliver the ticks that have passed; before any other input."""
        now = trio.current_time()
        if self._last == -math.inf:
            self._last = now  # a node taking input before it runs: its clock starts
            return
        horizon = now
        overdue = now > self._wake_at + self._slack
        if overdue:
            horizon = self._wake_at + self._slack
        elapsed = int((horizon - self._last) / self._interval + _EPSILON)
        if elapsed > 0:
            self._deliver(elapsed)
            self._last += elapsed * self._interval
        if overdue:
            # The time the process did not run is dropped, once: inputs
            # taken before the ticker runs again count from now.
            self._last = now
            self._wake_at = math.inf

    def _deliver(self, ticks: int) -> None:
        core = self._core
        while ticks > 0:
            due = core.ticks_until_due()
            if due is None:
                # No timer runs, only counters move; beyond an election
                # timeout's worth more ticks change nothing they are used for.
                ticks = min(ticks, core.config.election_ticks_max + 1)
                batch = ticks
            else:
                batch = min(ticks, due)
            for _ in range(batch):
                core.tick()
            self.delivered += batch
            ticks -= batch

    def due_at(self) -> float:
        """When the next tick that matters falls."""
        due = self._core.ticks_until_due()
        return math.inf if due is None else self._last + due * self._interval

    def next_wake(self, *also: float) -> float:
        """When the ticker should wake next: the due tick, ``also`` (other
        deadlines of the runtime), or ``max_sleep`` from now."""
        return min(self.due_at(), trio.current_time() + self._max_sleep, *also)

    def sleeping(self, scope: trio.CancelScope) -> None:
        """The ticker sleeps in ``scope`` until its deadline."""
        self._scope = scope
        self._wake_at = scope.deadline
        self.wakeups += 1

    def reschedule(self, *also: float) -> None:
        """After an input: wake the ticker sooner if the due tick (or one
        of ``also``) moved closer."""
        scope = self._scope
        if scope is None:
            return
        wake = min(self.due_at(), *also) if also else self.due_at()
        if wake < scope.deadline:
            scope.deadline = wake
            self._wake_at = wake
