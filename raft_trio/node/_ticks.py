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
  ticker task sleeps (:meth:`LazyTicks.next_wake`); each input moves the
  sleep's deadline to the moment now due (:meth:`LazyTicks.reschedule`).

Same ticks, in the same order relative to every input: same behaviour. The
ticker still wakes when ``max_sleep`` seconds passed with no input and no
wake, so that time the process did not run (a pause, SIGSTOP, a starved
machine) is recognised and not delivered as a burst of ticks (a follower
resumed after a pause would otherwise time out before it read the
heartbeats waiting in its socket): once the ticker is overdue by more than
``max_sleep`` (a heartbeat interval), the ticks beyond that are dropped,
once (counted from the last sign of running: a wake or an input).
Lateness within that is jitter of a loaded machine, and counts. A follower
that hears a heartbeat every interval thus never wakes its ticker (each
input pushes the wake on), and a leader wakes it once a heartbeat.
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
        #: When the process last showed it runs (an input or a wake).
        self._seen = -math.inf
        self._scope: trio.CancelScope | None = None
        #: Ticker wake-ups and ticks delivered, for tests and benchmarks.
        self.wakeups = 0
        self.delivered = 0

    def start(self) -> None:
        """The clock starts now (inside Trio)."""
        self._last = self._seen = trio.current_time()

    def catch_up(self) -> None:
        """Deliver the ticks that have passed; before any other input."""
        now = trio.current_time()
        if self._last == -math.inf:
            self._last = self._seen = now  # a node taking input before it runs: its clock starts
            return
        horizon = now
        # The process ran at least until its last sign of running and, if
        # on time, until the planned wake within max_sleep of it (no bound
        # while the ticker does not sleep: it runs, or has not started).
        expected = math.inf
        if self._wake_at != math.inf:
            expected = min(self._wake_at, self._seen + self._max_sleep) + self._slack
        overdue = now > expected
        self._seen = now
        if overdue:
            horizon = expected
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
        """After an input: move the ticker's wake to when it is next
        needed, sooner if the due tick (or one of ``also``) moved closer,
        later if only ``max_sleep`` bounded it: an input shows that the
        process runs as well as a wake does, so a follower hearing a
        heartbeat every interval never wakes its ticker for nothing (half
        an interval more, so that a heartbeat a little late does not race
        the wake). The time taken for a pause stays bounded the same way,
        from the last sign of running (see :meth:`catch_up`). ``also``
        holds every other deadline of the runtime, as for
        :meth:`next_wake`."""
        scope = self._scope
        if scope is None:
            return
        wake = min(self.due_at(), trio.current_time() + 1.5 * self._max_sleep, *also)
        deadline = scope.deadline
        # Later by half an interval at least: inputs that come every few
        # milliseconds move the deadline once in a while, not each time.
        if wake < deadline or wake > deadline + self._max_sleep / 2:
            scope.deadline = wake
            self._wake_at = wake
