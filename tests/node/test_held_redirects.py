"""A follower whose leader has gone quiet holds a client's write or read
until it has news of a leader, instead of sending the client to one that
does not answer: the client then reaches the next leader as soon as it is
elected, not after its own timeout on the paused one.

Three real ``RaftNode`` runtimes on Trio's fake clock (``tests.node.harness``);
a leader paused and muted reads and sends nothing, as under ``docker pause``.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from raft_trio.core import RemoveMember
from raft_trio.kv import Put
from raft_trio.node import NotLeaderError, RaftNode
from raft_trio.testing.waiting import wait_for

from .harness import ELECTION_MAX_S, TIMING, Cluster

QUIET_S = TIMING.quiet_leader_s
HEARTBEAT_S = TIMING.heartbeat_ms / 1000


def a_follower(cluster: Cluster, leader: RaftNode) -> RaftNode:
    return next(h.node for i, h in cluster.hosts.items() if i != leader.id)


async def test_a_follower_of_a_live_leader_redirects_at_once(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    follower = a_follower(cluster, leader)
    with trio.fail_after(2 * HEARTBEAT_S):  # it hears the leader in this term
        await wait_for(lambda: follower.readiness().leader_id == leader.id)
    asked = trio.current_time()
    with pytest.raises(NotLeaderError) as refused:
        await follower.write(Put("k", "v"))
    assert refused.value.leader_id == leader.id
    assert trio.current_time() == asked


async def test_a_write_held_while_the_leader_is_paused_goes_to_the_next_leader(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader, _ = await cluster.leader_gone_quiet()
    # The one of the other two that will not win the election: the write is
    # held there until it hears of the winner, then sent to it.
    others = [h.node for i, h in cluster.hosts.items() if i != leader.id]
    results: dict[str, BaseException | object] = {}

    async def write_to(node: RaftNode) -> None:
        try:
            results[node.id] = await node.write(Put(f"k-{node.id}", "v"))
        except NotLeaderError as refused:
            results[node.id] = refused

    with trio.fail_after(ELECTION_MAX_S + 1):
        async with trio.open_nursery() as nursery:
            for node in others:
                nursery.start_soon(write_to, node)
    new_leader = next(n for n in others if n.is_leader)
    loser = next(n for n in others if n is not new_leader)
    # The winner took the write it held; the other sent it to the winner.
    assert not isinstance(results[new_leader.id], BaseException), results
    refused = results[loser.id]
    assert isinstance(refused, NotLeaderError) and refused.leader_id == new_leader.id, refused


async def test_a_write_held_for_a_leader_that_speaks_again_goes_to_it(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader, follower = await cluster.leader_gone_quiet()
    resume_after = 0.2  # well within the minimum election timeout: no election

    async def resume_later() -> None:
        await trio.sleep(resume_after)
        cluster.hosts[leader.id].thaw()

    asked = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(resume_later)
        with pytest.raises(NotLeaderError) as refused:
            await follower.write(Put("k", "v"))
        held = trio.current_time() - asked
    assert refused.value.leader_id == leader.id and leader.is_leader
    assert resume_after - 1e-9 <= held <= resume_after + 2 * HEARTBEAT_S, held


async def test_a_read_is_held_like_a_write(cluster: Cluster, autojump_clock: trio.testing.MockClock) -> None:
    _, follower = await cluster.leader_gone_quiet()
    asked = trio.current_time()
    sent_to: str | None = None
    with trio.fail_after(ELECTION_MAX_S + 1):
        try:
            await follower.linearizable_barrier()
        except NotLeaderError as refused:
            sent_to = refused.leader_id
    assert trio.current_time() - asked > HEARTBEAT_S  # held, not answered at once
    new_leader = await cluster.wait_for_leader(within=ELECTION_MAX_S)
    # Read on the follower that won, or sent to the one that did.
    assert sent_to == (None if new_leader is follower else new_leader.id)


async def test_a_hold_ends_at_the_upper_election_timeout(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """With every other member stopped no leader can be elected: the
    follower answers once the upper election timeout has passed, with what
    it would have answered at once (no leader to name, or the quiet one)."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    follower = a_follower(cluster, leader)
    for host in cluster.hosts.values():
        if host.node is not follower:
            host.freeze()
    await trio.sleep(QUIET_S + HEARTBEAT_S)
    asked = trio.current_time()
    with pytest.raises(NotLeaderError) as refused:
        await follower.write(Put("k", "v"))
    held = trio.current_time() - asked
    assert refused.value.leader_id in (None, leader.id)
    assert ELECTION_MAX_S - 0.01 <= held <= ELECTION_MAX_S + 0.01, held


async def test_a_stop_answers_a_held_write_at_once(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A follower told to stop does not keep its clients for the hold."""
    _, follower = await cluster.leader_gone_quiet()
    stop_after = 0.1

    async def stop_follower() -> None:
        await trio.sleep(stop_after)
        follower.begin_stop()

    asked = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_follower)
        with pytest.raises(NotLeaderError):
            await follower.write(Put("k", "v"))
        held = trio.current_time() - asked
    assert held == pytest.approx(stop_after)


async def test_a_removed_member_redirects_at_once(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A member removed from the configuration hears nothing from the
    leader once it is released, and never campaigns: its leader is quiet
    for good, though alive, and no news can come. It sends clients there at
    once (as before holds), not after the upper election timeout each."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await leader.write(Put("before", "v"))
    removed = a_follower(cluster, leader)
    await leader.change_membership(RemoveMember(removed.id))
    with trio.fail_after(ELECTION_MAX_S):
        await wait_for(lambda: removed.id not in leader.core.status().progress, poll=0.005)
    await trio.sleep(QUIET_S + HEARTBEAT_S)  # released: the leader is quiet to it now
    assert removed.leader_id == leader.id and leader.is_leader
    for call in (lambda: removed.write(Put("k", "v")), removed.linearizable_barrier):
        asked = trio.current_time()
        with pytest.raises(NotLeaderError) as refused:
            await call()
        assert refused.value.leader_id == leader.id
        assert trio.current_time() == asked, trio.current_time() - asked


async def test_a_member_that_may_not_campaign_stops_holding_once_no_news_can_come(
    cluster: Cluster, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member that never campaigns (a learner, say) keeps its quiet leader
    for as long as it is cut off from it: after twice the upper election
    timeout with no news it answers at once again, as before holds."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    follower = a_follower(cluster, leader)
    monkeypatch.setattr(follower.core, "_promotable", lambda: False)
    for host in cluster.hosts.values():
        if host.node is not follower:
            host.freeze()
    await trio.sleep(2 * ELECTION_MAX_S)
    asked = trio.current_time()
    with pytest.raises(NotLeaderError) as refused:
        await follower.write(Put("k", "v"))
    assert refused.value.leader_id == leader.id
    assert trio.current_time() == asked
