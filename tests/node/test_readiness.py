"""``/readyz`` on Trio's fake clock: a node is ready when it is a member
caught up with a live leader (the leader: while it holds its check-quorum
lease), and not otherwise; and a leadership hand-over turns none of the old
leader's writes in flight into an unknown outcome.

Three real ``RaftNode`` runtimes share one Trio run through the in-memory
transport and disk of ``tests.node.harness``; every test asks for
``autojump_clock``, so the times asserted are virtual and exact.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from raft_trio.kv import Put
from raft_trio.node import NotLeaderError, RaftNode, Unavailable, WriteFailed, WriteIndeterminate
from raft_trio.node.runtime import READY_MAX_LAG
from raft_trio.testing.waiting import wait_for

from .harness import ELECTION_MAX_S, TIMING, Cluster

ELECTION_MIN_S = TIMING.election_min_ms / 1000
HEARTBEAT_S = TIMING.heartbeat_ms / 1000


def ready(node: RaftNode) -> bool:
    return node.readiness().ready


async def wait_ready(nodes: list[RaftNode], within: float) -> None:
    with trio.fail_after(within):
        await wait_for(lambda: all(ready(n) for n in nodes))


async def test_no_node_is_ready_before_a_leader_then_every_node_is(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    nodes = [h.node for h in cluster.hosts.values()]
    assert [n.readiness().reason for n in nodes] == ["no leader is known"] * 3
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    # The new leader is ready once its no-op commits (a round trip), the
    # followers once they hear the commit index (the next append or heartbeat).
    await wait_ready(nodes, within=2 * HEARTBEAT_S)
    doc = leader.readiness()
    assert doc.role == "leader" and doc.leader_commit_index == leader.commit_index
    for follower in (n for n in nodes if n is not leader):
        state = follower.readiness()
        assert state.leader_id == leader.id
        assert state.reason == f"caught up with the leader {leader.id}"


async def test_a_follower_that_stops_hearing_the_leader_is_unready_after_the_lease(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The leader's lease is the minimum election timeout: a follower that
    heard nothing for that long no longer knows a live leader."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    follower_id = next(i for i in cluster.hosts if i != leader.id)
    follower = cluster.hosts[follower_id].node
    await wait_ready([follower], within=2 * HEARTBEAT_S)
    cut_at = trio.current_time()
    cluster.hosts[follower_id].paused = True  # nothing reaches it any more
    # The last heartbeat arrived at most one heartbeat interval before the cut.
    await trio.sleep(ELECTION_MIN_S - HEARTBEAT_S - 0.05)
    assert ready(follower), follower.readiness()
    with trio.fail_after(HEARTBEAT_S + 0.1):
        await wait_for(lambda: not ready(follower))
    silent_for = trio.current_time() - cut_at
    assert ELECTION_MIN_S - HEARTBEAT_S <= silent_for <= ELECTION_MIN_S + 0.02, silent_for
    reason = follower.readiness().reason
    assert "silent" in reason or reason == "no leader is known", reason
    # Messages flow again: ready within a heartbeat or two (the same leader).
    cluster.hosts[follower_id].paused = False
    await wait_ready([follower], within=3 * HEARTBEAT_S)
    assert leader.is_leader


async def test_a_follower_behind_the_leaders_commit_index_is_unready_until_it_applied(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A follower whose disk stalls still hears the leader (and its commit
    index) but applies nothing: more than READY_MAX_LAG entries behind it is
    not ready; once its disk works again it catches up and is ready."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    follower_id = next(i for i in cluster.hosts if i != leader.id)
    follower = cluster.hosts[follower_id].node
    await wait_ready([follower], within=2 * HEARTBEAT_S)
    cluster.hosts[follower_id].fsync_seconds = 30.0
    batches, per_batch = 8, 40
    assert batches * per_batch > 2 * READY_MAX_LAG
    for batch in range(batches):
        async with trio.open_nursery() as writers:
            for n in range(per_batch):
                writers.start_soon(leader.write, Put(f"b{batch}-{n}", "v"))
    state = follower.readiness()
    assert not state.ready, state
    assert state.reason.startswith("behind:"), state
    assert state.leader_commit_index is not None
    assert state.leader_commit_index > state.applied_index + READY_MAX_LAG
    cluster.hosts[follower_id].fsync_seconds = 0.0
    # The stalled fsync ends (30 s), then the backlog is written and applied.
    await wait_ready([follower], within=30.0 + 5.0)
    assert follower.kv.applied_index + READY_MAX_LAG >= leader.commit_index


async def test_a_leader_is_ready_only_while_it_holds_its_check_quorum_lease(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The lease: a majority answered within the minimum election timeout.
    Cut off from both followers, the leader is unready once the last
    answers are that old, before check-quorum steps it down."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await wait_ready([leader], within=2 * HEARTBEAT_S)
    cut_at = trio.current_time()
    for node_id in cluster.hosts:
        if node_id != leader.id:
            cluster.hosts[node_id].paused = True
    # The last answers came at most a heartbeat interval before the cut.
    await trio.sleep(ELECTION_MIN_S - HEARTBEAT_S - 0.05)
    assert ready(leader), leader.readiness()
    with trio.fail_after(HEARTBEAT_S + 0.1):
        await wait_for(lambda: not ready(leader))
    assert trio.current_time() - cut_at <= ELECTION_MIN_S + 0.02
    assert leader.readiness().reason.startswith("lease lapsing: 1 of 3 voters"), leader.readiness()
    # Check-quorum steps it down later (within two rounds); it stays unready.
    with trio.fail_after(2 * ELECTION_MIN_S):
        while leader.is_leader:
            assert not ready(leader)
            await trio.sleep(0.01)


async def test_a_stopping_node_is_unready_and_refuses_new_writes(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await wait_ready([leader], within=2 * HEARTBEAT_S)
    leader.begin_stop()
    state = leader.readiness()
    assert (state.ready, state.reason, state.id, state.role) == (
        False,
        "the node is stopping",
        leader.id,
        "leader",
    )
    with pytest.raises(Unavailable):
        await leader.write(Put("late", "v"))
    assert await leader.drain(timeout=0.1)


async def test_a_leadership_transfer_turns_no_write_in_flight_indeterminate(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Writes in flight at the old leader when it hands over keep waiting
    for the entry at their index: the new leader commits them and the old
    one answers them as successes. Writes arriving during the hand-over
    wait for it to end and are sent to the new leader (NotLeaderError, a
    307 in HTTP). None ends indeterminate, none is refused.

    The leader's own disk is slow and the third node unreachable, so the
    writes are on the target but not yet committed when it gets TimeoutNow:
    the old leader steps down with them pending (it answered them
    indeterminate before)."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await wait_ready([leader], within=2 * HEARTBEAT_S)
    target, third = sorted(i for i in cluster.hosts if i != leader.id)
    cluster.hosts[third].paused = True
    cluster.hosts[leader.id].fsync_seconds = 0.05
    outcomes: dict[str, str] = {}

    async def write(key: str) -> None:
        try:
            await leader.write(Put(key, "v"))
            outcomes[key] = "ok"
        except NotLeaderError:
            outcomes[key] = "redirected"
        except Unavailable:
            outcomes[key] = "refused"
        except WriteIndeterminate:
            outcomes[key] = "indeterminate"
        except WriteFailed:
            outcomes[key] = "failed"

    async with trio.open_nursery() as nursery:
        for n in range(30):
            nursery.start_soon(write, f"before-{n}")
        await trio.sleep(0.01)  # proposed, on the target, not durable on the leader
        assert len(leader._writes) > 0
        committed_before = leader.commit_index
        assert leader.core.transfer_leadership(target) == target
        leader.wake()
        for n in range(10):
            nursery.start_soon(write, f"during-{n}")
    assert {outcomes[f"before-{n}"] for n in range(30)} == {"ok"}, outcomes
    assert {outcomes[f"during-{n}"] for n in range(10)} == {"redirected"}, outcomes
    assert leader.leader_id == target
    assert leader.commit_index > committed_before
    # The new leader learns the commit index once its own no-op commits.
    new_leader = cluster.hosts[target].node
    with trio.fail_after(2 * HEARTBEAT_S):
        await wait_for(lambda: new_leader.kv.applied_index >= leader.kv.applied_index)
    for n in range(30):
        assert new_leader.kv.get(f"before-{n}") is not None
