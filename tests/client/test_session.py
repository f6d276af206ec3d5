"""A lock's lease as its holder keeps it, on Trio's fake clock: renewed
every third of the usable TTL, counted from when each keep-alive was
*sent*, and given up at the cutoff (the TTL since the last answered one,
minus the margin) when none is answered, or at once when refused. Times
asserted are virtual and exact."""

from __future__ import annotations

import itertools

import pytest
import trio
import trio.testing

from raft_trio import schema
from raft_trio.client import LeaseNotFound, NoEndpointAnswered
from raft_trio.client._session import SUSPEND_CHECK_S, Session

TTL = 9


class FakeCluster:
    """Answers keep-alives after ``delay`` seconds; fails them (no endpoint
    answered) or refuses them (404) when told to."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.down = False
        self.refuse = False
        self.sent: list[float] = []

    async def keep_alive(self, lease: str) -> schema.LeaseAnswer:
        self.sent.append(trio.current_time())
        await trio.sleep(self.delay)
        if self.refuse:
            raise LeaseNotFound(404, schema.ErrorAnswer("no such lease", schema.Code.LEASE_NOT_FOUND))
        if self.down:
            raise NoEndpointAnswered([("http://127.0.0.1:1", "connection refused")])
        return schema.LeaseAnswer(lease, TTL)


def granted(margin: float = 0.0) -> Session:
    return Session.granted(schema.LeaseAnswer("000000000000000a", TTL), trio.current_time(), margin)


async def lost_at(session: Session, cluster: FakeCluster, within: float = 100) -> tuple[float, str]:
    with trio.fail_after(within):
        reason = await session.keep(cluster.keep_alive)
    return trio.current_time(), reason


async def test_keep_alives_go_every_third_of_the_ttl_and_extend_it_from_when_they_were_sent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeCluster()
    cluster.delay = 0.5
    session = granted()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.keep, cluster.keep_alive)
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert cluster.sent == [3.0, 6.0, 9.0]
    # Answered half a second after it was sent: counted from the sending.
    assert session.deadline == 9.0 + TTL


async def test_with_the_cluster_unreachable_the_lease_is_given_up_at_its_ttl_from_the_last_answer_sent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeCluster()

    async def fail_after_the_first_renewal() -> None:
        await trio.sleep(3.5)  # the keep-alive of 3.0 was answered
        cluster.down = True

    async with trio.open_nursery() as nursery:
        nursery.start_soon(fail_after_the_first_renewal)
        when, reason = await lost_at(granted(), cluster)
    assert when == 3.0 + TTL
    assert "no keep-alive was answered for 9.0 s" in reason and "connection refused" in reason
    # It kept trying meanwhile, backing off to a third of the interval.
    assert cluster.sent[:6] == [3.0, 6.0, 6.1, 6.3, 6.7, 7.5]
    gaps = [later - earlier for earlier, later in itertools.pairwise(cluster.sent)]
    assert gaps[0] == 3.0 and all(gap <= 1.0 + 1e-9 for gap in gaps[1:])


async def test_a_margin_gives_the_lease_up_that_much_earlier_and_renews_more_often(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeCluster()
    cluster.down = True
    session = granted(margin=3.0)
    assert session.interval == 2.0
    when, _ = await lost_at(session, cluster)
    assert when == TTL - 3.0
    assert cluster.sent[0] == 2.0


async def test_a_keep_alive_that_hangs_is_abandoned_at_the_cutoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeCluster()
    cluster.delay = 1000.0
    session = granted(margin=1.0)
    when, reason = await lost_at(session, cluster)
    assert when == TTL - 1.0 and "may have run out" in reason


async def test_a_refused_keep_alive_loses_the_lease_at_once(autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    cluster.refuse = True
    when, reason = await lost_at(granted(), cluster)
    assert when == 3.0 and reason == "the lease expired or was revoked"


async def test_a_cluster_back_before_the_cutoff_keeps_the_lease(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeCluster()
    session = granted()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.keep, cluster.keep_alive)
        cluster.down = True
        await trio.sleep(TTL - 0.5)  # the last moment it can still be vouched for
        cluster.down = False
        await trio.sleep(1.0)
        assert session.deadline > TTL + 8.0
        nursery.cancel_scope.cancel()


def test_a_margin_must_leave_part_of_the_ttl() -> None:
    with pytest.raises(ValueError, match="less than the TTL"):
        Session.granted(schema.LeaseAnswer("a", 3), 0.0, margin=3.0)


class MachineClock:
    """How long the machine slept (``machine_slept_s``): a sleep of the
    machine stops Trio's clock, so on the fake clock it is a jump here
    while virtual time stands still."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.slept = 0.0
        monkeypatch.setattr("raft_trio.client.suspend.machine_slept_s", lambda: self.slept)


async def test_a_machine_that_slept_past_the_cutoff_gives_the_lease_up_as_it_wakes(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Suspended for 20 s (the cluster's TTL is 9): on waking, Trio's
    clock has moved on by nothing, and the next keep-alive was 3 s away;
    the lease was lost within the next look, not at a refusal."""
    machine = MachineClock(monkeypatch)
    cluster = FakeCluster()
    session = granted()
    await trio.sleep(1)
    machine.slept = 20.0  # the machine sleeps here, and wakes
    woke = trio.current_time()
    at, reason = await lost_at(session, cluster)
    assert at - woke <= SUSPEND_CHECK_S
    assert reason == "this machine was suspended for 20.0 s: the lease may have run out"
    assert cluster.sent == []


async def test_a_short_sleep_shortens_the_lease_by_as_much_and_it_is_kept(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = MachineClock(monkeypatch)
    cluster = FakeCluster()
    session = granted()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.keep, cluster.keep_alive)
        await trio.sleep(1)
        machine.slept = 4.0
        # Just past the look at 1.5: at 1.5 itself, which of this task and
        # the holder's runs first is Trio's (random) choice.
        await trio.sleep(SUSPEND_CHECK_S + 0.01)
        assert session.deadline == pytest.approx(TTL - 4.0)
        # The keep-alive 3 s after the grant went as planned (still before the
        # cutoff), and counted from its sending: a full TTL again.
        await trio.sleep(3)
        assert cluster.sent == [3.0]
        assert session.deadline == pytest.approx(3.0 + TTL)
        nursery.cancel_scope.cancel()


async def test_a_sleep_while_a_keep_alive_is_on_its_way_counts_against_its_answer(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keep-alive was sent, the machine slept 4 s, then the answer came:
    the cluster counted its TTL from before the sleep. (Not 5 s: the old
    lease's cutoff, 9 on Trio's clock, would then fall at 4.0 with the
    answer, and the holder gives the lease up at its cutoff.)"""
    machine = MachineClock(monkeypatch)
    cluster = FakeCluster()
    cluster.delay = 1.0
    session = granted()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.keep, cluster.keep_alive)
        await trio.sleep(3.5)  # the keep-alive went at 3.0, its answer comes at 4.0
        machine.slept = 4.0
        await trio.sleep(1)
        assert session.deadline == pytest.approx(3.0 + TTL - 4.0)
        nursery.cancel_scope.cancel()


async def test_a_sleep_while_the_grant_is_on_its_way_counts_against_the_lease(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``client.lease()`` sent the grant, the machine slept 20 s (the TTL is
    9), then the answer came: the cluster counted the TTL from before the
    sleep, as for a keep-alive on its way, so the block is cancelled
    within a look, not kept alive on a lease long gone."""
    from typing import Any

    from raft_trio.client import TrioClient

    machine = MachineClock(monkeypatch)

    class SleepyGrant(TrioClient):
        def __init__(self) -> None:
            super().__init__("http://127.0.0.1:1")
            self.kept: list[float] = []

        async def grant_lease(self, ttl: int, **_: Any) -> schema.LeaseAnswer:
            await trio.sleep(0.2)
            machine.slept = 20.0  # the machine slept while the answer was on its way
            return schema.LeaseAnswer("000000000000000a", TTL)

        async def keep_alive(self, lease: str) -> schema.LeaseAnswer:
            self.kept.append(trio.current_time())
            return schema.LeaseAnswer(lease, TTL)

        async def revoke_lease(self, lease: str, **_: Any) -> schema.LeaseRevokedAnswer:
            return schema.LeaseRevokedAnswer(lease, [], 9)

    async with SleepyGrant() as client:
        with pytest.raises(LeaseNotFound, match=r"suspended for 20\.0 s"):
            async with client.lease(TTL):
                await trio.sleep(TTL)
        assert trio.current_time() <= 0.2 + SUSPEND_CHECK_S
        assert client.kept == []


async def test_a_machine_that_slept_past_the_cutoff_while_a_keep_alive_hung_gives_the_lease_up_as_it_wakes(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keep-alive of 3.0 went out and hangs (a connection that died
    with the suspend; the network is not back yet); the machine slept 20 s
    meanwhile. Trio's clock did not count the sleep, so waiting for the
    answer until the cutoff on it would run what stands on the lease for
    up to the TTL past its end: the holder gives it up within a look."""
    machine = MachineClock(monkeypatch)
    cluster = FakeCluster()
    cluster.delay = 60.0
    session = granted()

    async def sleep_while_it_hangs() -> None:
        await trio.sleep(3.5)
        machine.slept = 20.0

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sleep_while_it_hangs)
        at, reason = await lost_at(session, cluster)
    assert cluster.sent == [3.0]
    assert at - 3.5 <= SUSPEND_CHECK_S
    assert reason == "this machine was suspended for 20.0 s: the lease may have run out"


async def test_a_lease_lost_to_an_unreachable_cluster_long_after_a_short_sleep_says_so(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1 s suspend early on, renewed over since; then the cluster goes
    out of reach and the lease is lost at its TTL from the last answered
    keep-alive. Why is that silence, not the sleep: the reason must lead
    whoever reads it to the network, not to the laptop's lid."""
    machine = MachineClock(monkeypatch)
    cluster = FakeCluster()
    session = granted()

    async def sleep_then_lose_the_cluster() -> None:
        await trio.sleep(1)
        machine.slept = 1.0
        await trio.sleep(2.5)  # the keep-alive of 3.0 was answered
        cluster.down = True

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sleep_then_lose_the_cluster)
        when, reason = await lost_at(session, cluster)
    assert when == 3.0 + TTL
    assert "no keep-alive was answered for 9.0 s" in reason, reason
