"""Leases on Trio's fake clock: a lease runs out its TTL after its last
keep-alive and never before, also across leaders; its keys go on every
replica at one revision; a lease kept alive survives failovers.

Three real runtimes share one Trio run (``tests.node.harness``); times
asserted are virtual and exact."""

from __future__ import annotations

import time
from typing import Any

import pytest
import trio
import trio.testing

from raft_trio.core import Role
from raft_trio.kv import Lease, LeaseGrant, LeaseRevoke, LogCommand, Put, encode_command
from raft_trio.node import LeaseMissing, NotLeaderError, RaftNode
from raft_trio.node.leases import LeaseClock, minimum_ttl
from raft_trio.testing.waiting import wait_for

from .harness import ELECTION_MAX_S, TIMING, Cluster

TTL = 5


async def revoked_at(nodes: list[RaftNode], lease: int, within: float) -> float:
    """The virtual time at which every node no longer holds ``lease``."""
    with trio.fail_after(within):
        await wait_for(lambda: all(lease not in node.kv.leases for node in nodes))
    return trio.current_time()


def live_nodes(cluster: Cluster) -> list[RaftNode]:
    return [h.node for h in cluster.hosts.values() if not h.paused]


async def keep_alive_on_leader(cluster: Cluster, lease: int) -> float:
    """Send a keep-alive to whoever leads, as a client would, retrying
    until one is answered; the time it was (last) sent."""
    while True:
        sent = trio.current_time()
        leaders = cluster.leaders()
        if leaders:
            try:
                await leaders[0].keep_lease_alive(lease)
                return sent
            except NotLeaderError:
                pass
            except Exception as error:  # a read aborted by a leadership change
                if isinstance(error, LeaseMissing):
                    raise
        await trio.sleep(0.05)


async def test_a_lease_expires_its_ttl_after_the_grant_and_its_keys_go_everywhere_at_one_revision(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    granted = await leader.grant_lease(TTL)
    granted_at = trio.current_time()
    await leader.write(Put("owned/a", "1", lease=granted.id))
    await leader.write(Put("owned/b", "1", lease=granted.id))
    await leader.write(Put("free", "1"))
    nodes = live_nodes(cluster)
    gone_at = await revoked_at(nodes, granted.id, within=TTL + 1)
    assert granted_at + TTL <= gone_at <= granted_at + TTL + 0.1
    for node in nodes:
        with trio.fail_after(1):
            await wait_for(lambda: node.kv.get("owned/a") is None)  # noqa: B023 (awaited at once)
        assert node.kv.get("owned/b") is None and node.kv.get("free") is not None
    deletes = {
        node.id: [(c.revision, c.key) for c in node.kv.history.since(0) if c.kind == "delete"]
        for node in nodes
    }
    first = next(iter(deletes.values()))
    assert len(first) == 2 and first[0][0] == first[1][0]
    assert all(sequence == first for sequence in deletes.values())


async def test_a_keep_alive_extends_the_lease_to_a_full_ttl_from_then(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    lease = (await leader.grant_lease(TTL)).id
    await trio.sleep(TTL - 1)
    sent = trio.current_time()
    assert await leader.keep_lease_alive(lease) == TTL
    info = await leader.lease_info(lease)
    assert TTL - 0.1 <= info.remaining <= TTL + 1e-9 and info.granted_ttl == TTL
    gone_at = await revoked_at(live_nodes(cluster), lease, within=TTL + 1)
    assert sent + TTL <= gone_at <= sent + TTL + 0.1


async def test_a_lease_shorter_than_the_minimum_is_granted_the_minimum(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    granted = await leader.grant_lease(1)
    assert granted.ttl == minimum_ttl(TIMING.election_max_ms) == 3


async def test_a_revoked_lease_cannot_be_kept_alive_and_its_keys_are_gone(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    lease = (await leader.grant_lease(TTL)).id
    await leader.write(Put("k", "v", lease=lease))
    revoked = await leader.revoke_lease(lease)
    assert revoked.found and revoked.keys == ["k"]
    assert leader.kv.get("k") is None
    with pytest.raises(LeaseMissing):
        await leader.keep_lease_alive(lease)
    with pytest.raises(LeaseMissing):
        await leader.lease_info(lease)


async def test_a_new_leader_never_expires_a_lease_before_its_last_keep_alive_plus_ttl(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The old leader stops (SIGSTOP) right after answering a keep-alive;
    the new one gives the lease a full TTL from its own takeover, so it
    goes no earlier than the keep-alive's send time plus the TTL."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    lease = (await leader.grant_lease(TTL)).id
    await trio.sleep(2)
    sent = await keep_alive_on_leader(cluster, lease)
    cluster.hosts[leader.id].paused = True
    new_leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    assert new_leader is not leader
    gone_at = await revoked_at(live_nodes(cluster), lease, within=TTL + 3 * ELECTION_MAX_S)
    assert gone_at >= sent + TTL
    # ...and no later than a TTL after the new leader took over.
    assert gone_at <= sent + TTL + 3 * ELECTION_MAX_S


@pytest.mark.parametrize("unrenewed_s", [TTL / 2 + 0.2, TTL * 3 / 4 + 0.2])
async def test_a_keep_alive_after_a_checkpoint_is_not_cut_short_by_it(
    cluster: Cluster, autojump_clock: trio.testing.MockClock, unrenewed_s: float
) -> None:
    """The leader recorded the lease's time left (once or twice: at half
    the TTL, then at half of that) and then a keep-alive came. The leader
    stops right after answering it: the next leader must not count from
    the recorded time, which ends before the keep-alive's TTL does. The
    keep-alive is answered only once a clear is in the log."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    lease = (await leader.grant_lease(TTL)).id
    await trio.sleep(unrenewed_s)
    assert all(node.kv.leases[lease].remaining_ms > 0 for node in live_nodes(cluster))
    sent = await keep_alive_on_leader(cluster, lease)
    assert leader.kv.leases[lease].remaining_ms == 0
    cluster.hosts[leader.id].paused = True
    new_leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    assert new_leader is not leader
    gone_at = await revoked_at(live_nodes(cluster), lease, within=TTL + 3 * ELECTION_MAX_S)
    assert gone_at >= sent + TTL


async def test_a_lease_kept_alive_survives_repeated_failovers(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    lease = (await leader.grant_lease(TTL)).id
    await leader.write(Put("held", "1", lease=lease))
    stop = trio.Event()

    async def keep_alive_forever() -> None:
        while not stop.is_set():
            await keep_alive_on_leader(cluster, lease)
            await trio.sleep(TTL / 3)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep_alive_forever)
        for _ in range(4):
            current = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
            cluster.hosts[current.id].paused = True
            await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
            await trio.sleep(2)
            cluster.hosts[current.id].paused = False
            await trio.sleep(2)
        stop.set()
    for node in live_nodes(cluster):
        assert lease in node.kv.leases, node.id
    assert (await cluster.wait_for_leader(within=1)).kv.get("held") is not None


async def test_keep_alive_and_lease_queries_are_for_the_leader(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    lease = (await leader.grant_lease(TTL)).id
    follower = next(
        h.node for h in cluster.hosts.values() if h.node.core.basic_status().role is Role.FOLLOWER
    )
    with pytest.raises(NotLeaderError):
        await follower.keep_lease_alive(lease)
    with pytest.raises(NotLeaderError):
        await follower.lease_info(lease)


def test_the_lease_clock_revokes_each_expired_lease_once() -> None:
    clock = LeaseClock()
    clock.granted(1, 5, now=0.0)
    clock.granted(2, 3, now=0.0)
    assert clock.due(2.9) == []
    assert clock.due(3.0) == [2]
    assert clock.due(10.0) == [1]
    assert clock.due(11.0) == []
    assert clock.keep_alive(1, now=11.0) is None  # being revoked
    clock.revoke_failed(1)
    assert clock.due(11.0) == [1]
    clock.revoked(1)
    assert clock.remaining(1, 11.0) is None


class TickerSteps(trio.abc.Instrument):
    """Counts the steps of every node's ticker task; past ``limit`` it
    cancels ``scope`` (a spinning ticker never lets the fake clock move)."""

    def __init__(self, scope: trio.CancelScope, limit: int) -> None:
        self.scope = scope
        self.limit = limit
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name == "ticker":
            self.steps += 1
            if self.steps > self.limit:
                self.scope.cancel()


async def test_a_revoke_dropped_during_a_transfer_does_not_spin_the_leaders_ticker(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A lease runs out while the leader hands over to a follower that does
    not answer: the core drops proposals meanwhile, so its revoke cannot be
    proposed. It is tried again at a later turn of the ticker, which must
    not wake at once for it: that spun the event loop (and froze Trio's fake
    clock) until the transfer ended."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    lease = (await leader.grant_lease(3)).id
    granted_at = trio.current_time()
    await trio.sleep(2.5)
    target = next(i for i in cluster.hosts if i != leader.id)
    cluster.hosts[target].paused = True
    with trio.CancelScope() as scope:
        steps = TickerSteps(scope, limit=200)  # about 16 without a spin
        trio.lowlevel.add_instrument(steps)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(leader.transfer_leadership, target)
                # The lease runs out 0.5 s into the transfer, which the
                # core gives up after an election timeout (1 s).
                await trio.sleep(0.8)
                assert leader.handing_over and lease in leader.kv.leases
                nursery.cancel_scope.cancel()
        finally:
            trio.lowlevel.remove_instrument(steps)
    assert not scope.cancelled_caught, f"the tickers took {steps.steps} steps in 0.8 s"
    cluster.hosts[target].paused = False
    gone_at = await revoked_at(live_nodes(cluster), lease, within=3 * ELECTION_MAX_S)
    assert gone_at >= granted_at + 3


async def test_a_keep_alive_that_must_clear_a_record_during_a_transfer_goes_to_the_new_leader(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The clear a recorded lease's keep-alive writes is refused while the
    leader hands over (as any proposal is): the keep-alive waits for the
    transfer and is sent to the new leader, as a write is, instead of
    failing with 503 (a review's finding)."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    lease = (await leader.grant_lease(TTL)).id
    await trio.sleep(TTL / 2 + 0.2)
    assert leader.leases.recorded(lease)
    target = next(i for i in cluster.hosts if i != leader.id)
    cluster.hosts[target].paused = True  # the transfer waits for it
    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader.transfer_leadership, target)
        await wait_for(lambda: leader.handing_over)
        nursery.start_soon(cluster_thaws, cluster, target, 0.3)
        with pytest.raises(NotLeaderError) as redirected:
            await leader.keep_lease_alive(lease)
    assert redirected.value.leader_id == target
    new_leader = cluster.hosts[target].node
    sent = trio.current_time()
    assert await new_leader.keep_lease_alive(lease) == TTL
    gone_at = await revoked_at(live_nodes(cluster), lease, within=TTL + 1)
    assert gone_at >= sent + TTL


async def cluster_thaws(cluster: Cluster, host: str, after: float) -> None:
    await trio.sleep(after)
    cluster.hosts[host].paused = False


def test_a_dropped_revoke_is_tried_again_at_the_next_check_without_waking_it_at_once() -> None:
    clock = LeaseClock()
    clock.granted(1, 5, now=0.0)
    clock.granted(2, 8, now=0.0)
    assert clock.due(5.0) == [1]
    clock.revoke_failed(1)
    assert clock.next_deadline == 8.0  # not 5.0: the ticker would wake at once, again and again
    assert clock.keep_alive(1, now=5.5) is None  # still expired, not kept alive again
    assert clock.remaining(1, 5.5) == 0.0
    assert clock.due(5.6) == [1]
    clock.revoke_failed(1)
    clock.revoked(1)  # a client's revoke applied meanwhile
    assert clock.due(5.7) == []
    clock.step_down()
    assert clock.due(100.0) == []


async def test_a_grant_answered_again_from_its_token_does_not_bring_back_a_revoked_lease(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """One grant under one Idempotency-Key in the log twice (a client's
    retry proposed before the first applied), its lease revoked between
    them: the second applies as the first's remembered answer, and grants
    nothing. The leader took that answer for a grant and kept a deadline
    for the revoked lease, so keep-alives of a lease that no longer exists
    were answered as if it lived."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    stamp = int(time.time() * 1000)
    grant = LeaseGrant(TTL, token="a-retried-grant", ts=stamp)
    lease = leader._propose(encode_command(grant))
    leader._propose(encode_command(LeaseRevoke(lease, ts=stamp)))
    last = leader._propose(encode_command(grant))
    leader.wake()
    with trio.fail_after(1):
        await wait_for(lambda: leader.kv.applied_index >= last)
    assert lease not in leader.kv.leases
    with pytest.raises(LeaseMissing):
        await leader.keep_lease_alive(lease)


async def test_a_revoke_answered_again_from_its_token_does_not_stop_a_lease_running_out(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The other half: a revoke retried under its token whose first try
    found no lease, a lease granted under that id between the two. The
    second is answered as the first was and revokes nothing; the leader
    took it for a revoke and dropped the live lease's deadline, so it never
    ran out (nor its keys, nor a lock standing on it) while that leader led."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    stamp = int(time.time() * 1000)
    first = leader._propose(encode_command(Put("before", "1", ts=stamp))) + 1
    revoke = LeaseRevoke(first + 1, token="a-retried-revoke", ts=stamp)
    assert leader._propose(encode_command(revoke)) == first
    lease = leader._propose(encode_command(LeaseGrant(TTL, ts=stamp)))
    assert lease == first + 1
    last = leader._propose(encode_command(revoke))
    leader.wake()
    with trio.fail_after(1):
        await wait_for(lambda: leader.kv.applied_index >= last)
    assert lease in leader.kv.leases
    await revoked_at(live_nodes(cluster), lease, within=TTL + 1)


async def test_a_lease_nobody_keeps_alive_runs_out_while_leaders_keep_changing(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A holder that vanished: nobody sends keep-alives. Leadership moves
    (a transfer, a rolling restart, a flapping link) a little more often
    than the TTL. Each new leader gave the lease a full TTL from its
    takeover, as it must not revoke early and knew nothing of how long it
    already went unrenewed, so the lease, its keys and a lock standing on
    it never ran out while that went on. Now the first leader records at
    half the TTL what it has left (a checkpoint), and the next counts from
    that: it runs out half a TTL after the first transfer."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    lease = (await leader.grant_lease(TTL)).id
    granted_at = trio.current_time()
    gone: list[float] = []

    async def transfer_every_ttl_but_a_second() -> None:
        while True:
            await trio.sleep(TTL - 1)
            current = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
            await current.transfer_leadership(next(i for i in cluster.hosts if i != current.id))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(transfer_every_ttl_but_a_second)
        gone.append(await revoked_at(live_nodes(cluster), lease, within=6 * TTL))
        nursery.cancel_scope.cancel()
    lived = gone[0] - granted_at
    # Recorded at TTL / 2 with TTL / 2 left; the next leader took over a
    # second before the TTL, and counted TTL / 2 from there.
    assert lived <= (TTL - 1) + TTL / 2 + 0.5, f"lived {lived:.2f} s (TTL {TTL} s)"
    assert lived >= TTL


def test_a_clear_removes_only_the_records_proposed_before_it() -> None:
    """A checkpoint proposed while a keep-alive's clear was on its way
    stands after that clear in the log: the lease is still recorded, and
    the keep-alive writes another clear before it is answered."""
    clock = LeaseClock()
    clock.granted(1, 10, now=0.0)
    assert clock.checkpoints_due(4.9) == []
    assert clock.checkpoints_due(5.0) == [(1, 5000)]
    clock.checkpoint_proposed([(1, 5000)], index=20)
    assert clock.recorded(1)
    clock.checkpoint_applied([(1, 0)], index=19)  # a clear from before it
    assert clock.recorded(1)
    clock.checkpoint_applied([(1, 0)], index=21)
    assert not clock.recorded(1)


def test_time_left_is_recorded_at_halves_down_to_a_floor_and_a_keep_alive_starts_over() -> None:
    clock = LeaseClock()
    clock.granted(1, 8, now=0.0)
    assert clock.checkpoints_due(4.0) == [(1, 4000)]
    assert clock.next_check == 6.0
    assert clock.checkpoints_due(6.0) == [(1, 2000)]
    assert clock.next_check == 7.0
    assert clock.checkpoints_due(7.0) == [(1, 1000)]
    assert clock.checkpoints_due(7.5) == [(1, 500)]
    assert clock.next_check == 8.0  # only the deadline: half of 0.5 s is under the floor
    clock.keep_alive(1, now=7.5)
    assert clock.due(8.0) == []  # the old deadline's entry moves on
    assert clock.next_check == 11.5
    # A new leader counts from the recorded time, and records from there.
    clock.take_over([Lease(1, 8, remaining_ms=2000)], now=100.0, applied=30)
    assert clock.remaining(1, 100.0) == 2.0 and clock.recorded(1)
    assert clock.checkpoints_due(101.0) == [(1, 1000)]


async def test_a_checkpoint_of_a_clock_started_before_the_takeover_does_not_cut_a_keep_alive_short(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A new leader applies, before the first entry of its term, a backlog
    of committed entries in slices (``max_apply_bytes``), one a lease's
    grant, and applying the rest takes a while (seconds of CPU for a large
    backlog: here the fake clock jumps). Its lease clock tracked the grant
    at once, and its ticker proposed a checkpoint for it before the
    takeover; the takeover forgot that record, so a keep-alive answered
    after it wrote no clear, and the next leader counted from the
    checkpoint's time: it revoked the lease before the keep-alive's TTL
    ran out. The clock runs only from the takeover on."""
    ttl = minimum_ttl(TIMING.election_max_ms)
    old = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    new_id, other_id = (i for i in cluster.hosts if i != old.id)
    new = cluster.hosts[new_id].node
    # One entry a slice on the next leader, each write's apply taking 0.4 s.
    object.__setattr__(new.core.config, "max_apply_bytes", 1)
    applying = new.kv.apply

    def slow_apply(index: int, command: LogCommand, **kwargs: Any) -> Any:
        if isinstance(command, Put) and command.key.startswith("slow/"):
            autojump_clock.jump(0.4)
        return applying(index, command, **kwargs)

    new.kv.apply = slow_apply  # type: ignore[method-assign]
    # The old leader's entries reach the next leader only, uncommitted.
    cluster.hosts[other_id].freeze()
    cluster.hosts[new_id].muted = True
    stamp = int(time.time() * 1000)
    lease = old._propose(encode_command(LeaseGrant(ttl, ts=stamp)))
    for n in range(6):
        last = old._propose(encode_command(Put(f"slow/{n}", "v", ts=stamp)))
    old.wake()
    with trio.fail_after(1):
        await wait_for(lambda: new.last_log_index >= last)
    cluster.hosts[old.id].freeze()
    cluster.hosts[other_id].thaw()
    cluster.hosts[new_id].muted = False
    assert await cluster.wait_for_leader(within=3 * ELECTION_MAX_S) is new
    with trio.fail_after(5):
        await wait_for(lambda: lease in new.kv.leases and new.kv.get("slow/5") is not None)
    with trio.fail_after(5):  # whatever the new leader proposed is applied
        await wait_for(lambda: new.kv.applied_index >= new.last_log_index)
    sent = trio.current_time()
    assert await new.keep_lease_alive(lease) == ttl
    await new.transfer_leadership(other_id)
    nodes = [cluster.hosts[new_id].node, cluster.hosts[other_id].node]
    gone_at = await revoked_at(nodes, lease, within=ttl + 3 * ELECTION_MAX_S)
    assert gone_at >= sent + ttl


async def test_a_lease_is_late_by_the_time_its_leader_led_after_its_last_record(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The bound in docs/coordination.md ("How late"): the leader that left
    had recorded the lease (4 s left at 4 s), and led on for 1.9 s before
    it handed over; the next counts the 4 s from its takeover. The lease
    is late by those 1.9 s, not only by the time without a leader."""
    ttl = 8
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    lease = (await leader.grant_lease(ttl)).id
    granted_at = trio.current_time()
    await trio.sleep(5.9)
    assert all(node.kv.leases[lease].remaining_ms == 4000 for node in live_nodes(cluster))
    await leader.transfer_leadership(next(i for i in cluster.hosts if i != leader.id))
    lived = await revoked_at(live_nodes(cluster), lease, within=2 * ttl) - granted_at
    assert 9.8 <= lived <= 10.0, f"lived {lived:.2f} s"


async def leaders_changing_every(cluster: Cluster, period: float, lease: int) -> float:
    """Hand leadership on every ``period`` seconds from just before the
    lease's first record at half its TTL; when the lease ran out."""

    async def transfer_every_period() -> None:
        await trio.sleep(TTL - 1.2)
        while True:
            current = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
            await current.transfer_leadership(next(i for i in cluster.hosts if i != current.id))
            await trio.sleep(period)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(transfer_every_period)
        gone_at = await revoked_at(live_nodes(cluster), lease, within=6 * TTL)
        nursery.cancel_scope.cancel()
    return gone_at


async def test_a_lease_nobody_keeps_alive_runs_out_while_leaders_change_every_second_or_so(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Records go on at halves down to MIN_CHECKPOINT_S: the last time
    recorded for a lease of 5 s is 0.625 s, shorter than each leader's
    1.2 s in office, so one of them sees it run out (a floor of 1 s left
    1.25 s, and the lease lived for ever: the review's strict xfail)."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    lease = (await leader.grant_lease(TTL)).id
    granted_at = trio.current_time()
    gone_at = await leaders_changing_every(cluster, 1.2, lease)
    assert TTL <= gone_at - granted_at <= 2 * TTL


@pytest.mark.xfail(strict=True, reason="no time left under 2 * MIN_CHECKPOINT_S is recorded")
async def test_a_lease_nobody_keeps_alive_runs_out_while_leaders_change_twice_a_second(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Leaders in office for less than the last time recorded (0.5 to 1 s)
    keep a lease nobody renews alive while they change that fast (docs:
    "How late"); no election is that quick, only transfers in a loop."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    lease = (await leader.grant_lease(TTL)).id
    granted_at = trio.current_time()
    gone_at = await leaders_changing_every(cluster, 0.4, lease)
    assert gone_at - granted_at <= 2 * TTL
