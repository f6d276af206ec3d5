"""The leader's lease clock keeps its deadlines in a heap: through any
sequence of grants, keep-alives, revokes, failed revokes, take-overs and
step-downs it answers as a clock that scans every lease (the model,
which is what the runtime had before) does; its next deadline may be
earlier (an entry a keep-alive moved on), never later. A failed revoke
is given again by the next ``due`` and adds no deadline."""

from __future__ import annotations

import math

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from raft_trio.kv import Lease
from raft_trio.node.leases import LeaseClock, _Timers

leases = st.integers(1, 8)
ttls = st.integers(1, 6)
steps = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 3.5])


class ScanningClock:
    """Every lease looked at on every question."""

    def __init__(self) -> None:
        self.deadlines: dict[int, float] = {}
        self.ttls: dict[int, int] = {}
        self.revoking: set[int] = set()
        #: Being revoked, and to be given again by the next due().
        self.dropped: dict[int, None] = {}

    def next_deadline(self) -> float:
        live = [d for lease, d in self.deadlines.items() if lease not in self.revoking]
        return min(live, default=math.inf)

    def due(self, now: float) -> list[int]:
        again = [lease for lease in self.dropped if lease in self.revoking]
        self.dropped.clear()
        expired = sorted(
            (d, lease) for lease, d in self.deadlines.items() if lease not in self.revoking and d <= now
        )
        self.revoking.update(lease for _, lease in expired)
        return again + [lease for _, lease in expired]


class LeaseClockMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.clock = LeaseClock()
        self.model = ScanningClock()

    @rule(dt=steps)
    def time_passes(self, dt: float) -> None:
        self.now += dt

    @rule(lease=leases, ttl=ttls)
    def grant(self, lease: int, ttl: int) -> None:
        self.clock.granted(lease, ttl, self.now)
        self.model.deadlines[lease] = self.now + ttl
        self.model.ttls[lease] = ttl

    @rule(lease=leases)
    def keep_alive(self, lease: int) -> None:
        ttl = self.model.ttls.get(lease)
        expected = None if ttl is None or lease in self.model.revoking else ttl
        if expected is not None:
            self.model.deadlines[lease] = self.now + expected
        assert self.clock.keep_alive(lease, self.now) == expected

    @rule(lease=leases)
    def revoked(self, lease: int) -> None:
        self.clock.revoked(lease)
        self.model.deadlines.pop(lease, None)
        self.model.ttls.pop(lease, None)
        self.model.revoking.discard(lease)

    @rule()
    def due(self) -> None:
        assert self.clock.due(self.now) == self.model.due(self.now)
        # Asked again after what ran out went, it names a later time.
        assert self.clock.next_deadline > self.now

    @rule(lease=leases)
    def revoke_failed(self, lease: int) -> None:
        if lease in self.model.revoking:
            self.clock.revoke_failed(lease)
            self.model.dropped[lease] = None  # still being revoked

    @rule()
    def take_over(self) -> None:
        held = [Lease(lease, ttl) for lease, ttl in self.model.ttls.items()]
        self.clock.take_over(held, self.now)
        self.model.deadlines = {lease.id: self.now + lease.ttl for lease in held}
        self.model.revoking.clear()
        self.model.dropped.clear()

    @rule()
    def step_down(self) -> None:
        self.clock.step_down()
        self.model = ScanningClock()

    @invariant()
    def answers_agree(self) -> None:
        # Never late; early only by what a keep-alive moved on (the next
        # due() call settles it).
        assert self.clock.next_deadline <= self.model.next_deadline()
        assert len(self.clock) == len(self.model.deadlines)
        for lease in range(1, 9):
            expected = self.model.deadlines.get(lease)
            remaining = None if expected is None else max(0.0, expected - self.now)
            if lease in self.model.revoking:
                remaining = 0.0
            assert self.clock.remaining(lease, self.now) == remaining


TestLeaseClockMatchesScanning = LeaseClockMachine.TestCase
TestLeaseClockMatchesScanning.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)


def test_keep_alives_do_not_grow_the_heap() -> None:
    """A lease kept alive many times within its TTL leaves one entry, not
    one a keep-alive; revoked leases are cleared out once they outnumber
    the live ones."""
    clock = LeaseClock()
    for lease in range(1, 101):
        clock.granted(lease, 60, now=0.0)
    for step in range(1, 1001):
        for lease in range(1, 101):
            clock.keep_alive(lease, now=step * 0.01)
    assert clock.due(10.0) == []
    assert len(clock._deadlines) == 100
    for lease in range(101, 5101):
        clock.granted(lease, 3600, now=10.0)
        clock.revoked(lease)
    assert len(clock._deadlines) <= 2 * len(clock) + 1024 + 1


class TimersMachine(RuleBasedStateMachine):
    """The checkpoint times' lazy heap against a plain dictionary: times
    set later leave their entry in place, set earlier push another, and
    whatever the order ``pop_due`` gives exactly the keys due, earliest
    first, and ``first`` is never later than the earliest time."""

    def __init__(self) -> None:
        super().__init__()
        self.timers = _Timers()
        self.model: dict[int, float] = {}

    @rule(key=leases, when=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0]))
    def set(self, key: int, when: float) -> None:
        self.timers.set(key, when)
        self.model[key] = when

    @rule(key=leases)
    def drop(self, key: int) -> None:
        self.timers.discard(key)
        self.model.pop(key, None)

    @rule(now=st.sampled_from([0.0, 1.0, 2.5, 5.0, 9.0]))
    def pop_due(self, now: float) -> None:
        due = self.timers.pop_due(now)
        expected = sorted((when, key) for key, when in self.model.items() if when <= now)
        assert sorted(due) == sorted(key for _, key in expected)
        assert [self.model[key] for key in due] == [when for when, _ in expected]
        for key in due:
            del self.model[key]

    @invariant()
    def agree(self) -> None:
        assert self.timers.at == self.model
        assert self.timers.first <= min(self.model.values(), default=math.inf)


TestTimersMatchADictionary = TimersMachine.TestCase
TestTimersMatchADictionary.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
