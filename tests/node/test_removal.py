"""Removing members through the runtime on Trio's fake clock: the senders
follow the configuration, and a member being removed keeps getting messages
until its removal commits (dissertation §4.2.2).

The regression: a follower that appended the configuration removing its
leader dropped its sender to that leader in the same pass, before the
acknowledgement it had just queued went out. The leader then never
committed its removal: the removal answered indeterminate after the write
timeout, and the cluster had no leader until check-quorum unseated the old
one."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from raft_trio.core import ConfigChangeRejected, RemoveMember, Role
from raft_trio.kv import Put, Written
from raft_trio.testing.waiting import wait_for

from .harness import ELECTION_MAX_S, TIMING, Cluster

HEARTBEAT_S = TIMING.heartbeat_ms / 1000
ELECTION_MIN_S = TIMING.election_min_ms / 1000


async def test_a_leader_removing_itself_commits_and_a_remaining_voter_leads_at_once(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await leader.write(Put("before", "v"))  # an entry of its term is committed
    old_term = leader.term
    remaining = sorted(i for i in cluster.hosts if i != leader.id)

    started = trio.current_time()
    with trio.fail_after(leader.write_timeout):
        index = await leader.change_membership(RemoveMember(leader.id))
    answered = trio.current_time() - started
    assert answered < 2 * HEARTBEAT_S, f"the removal took {answered:.3f} s"
    assert leader.core.basic_status().role is Role.FOLLOWER
    assert leader.commit_index >= index

    # Handed over, not waited out: a remaining voter leads well before any
    # election timeout could have fired.
    with trio.fail_after(ELECTION_MIN_S / 2):
        await wait_for(lambda: any(cluster.hosts[i].node.is_leader for i in remaining), poll=0.005)
    (new_leader,) = [cluster.hosts[i].node for i in remaining if cluster.hosts[i].node.is_leader]
    assert new_leader.term == old_term + 1
    assert trio.current_time() - started < ELECTION_MIN_S / 2
    for node_id in remaining:
        assert cluster.hosts[node_id].node.membership.ids == set(remaining)

    # The two that are left form the cluster; the removed node stays out.
    result = await new_leader.write(Put("after", "v"))
    assert isinstance(result, Written) and result.index > index, result
    await trio.sleep(10 * ELECTION_MAX_S)
    assert leader.core.basic_status().role is Role.FOLLOWER and not leader.core.status().promotable
    assert new_leader.is_leader and new_leader.term == old_term + 1


async def test_writes_during_a_leaders_removal_go_to_the_next_leader(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A leader being removed takes no new write: a write arriving then
    waits for the hand-over and is refused with "not the leader" (a
    redirect), never left indeterminate."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await leader.write(Put("before", "v"))
    outcomes: list[str] = []

    async def write() -> None:
        try:
            await leader.write(Put("during", "v"))
            outcomes.append("ok")
        except Exception as error:  # the kind of failure is the result
            outcomes.append(type(error).__name__)

    for node_id in cluster.hosts:
        if node_id != leader.id:
            cluster.hosts[node_id].fsync_seconds = 0.05  # the removal commits 50 ms later
    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader.change_membership, RemoveMember(leader.id))
        await trio.sleep(0.01)
        assert leader.handing_over and leader.is_leader
        nursery.start_soon(write)
    assert outcomes == ["NotLeaderError"]


async def test_a_removed_follower_learns_it_is_out_and_never_campaigns(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The leader keeps replicating to a follower it removes until the
    removal commits, so the follower holds the configuration without it and
    stays quiet instead of timing out into pre-votes forever."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await leader.write(Put("before", "v"))
    removed = cluster.hosts[min(i for i in cluster.hosts if i != leader.id)].node
    await leader.change_membership(RemoveMember(removed.id))
    with trio.fail_after(2 * HEARTBEAT_S):
        await wait_for(lambda: removed.id not in removed.membership.ids, poll=0.005)
    assert removed.id not in leader._transport.senders  # type: ignore[union-attr]
    term = leader.term
    await trio.sleep(10 * ELECTION_MAX_S)
    assert removed.core.basic_status().role is Role.FOLLOWER and removed.term == term
    assert leader.is_leader and leader.term == term


async def test_a_removal_that_would_leave_no_live_quorum_is_refused(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """etcd's strict reconfiguration check: with one of three voters down,
    removing either live one (the leader itself too) leaves two voters of
    which one answers: that removal could not commit, and the two live
    voters, a majority before it, would have no leader until the third came
    back. It is refused, changing nothing; removing the one that is down is
    what helps, and is made."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await leader.write(Put("before", "v"))
    down, up = sorted(i for i in cluster.hosts if i != leader.id)
    cluster.hosts[down].paused = True
    await trio.sleep(2 * ELECTION_MIN_S)
    assert leader.is_leader
    for target in (up, leader.id):
        with pytest.raises(ConfigChangeRejected, match="leave 1 of the 2 remaining voters answering"):
            await leader.change_membership(RemoveMember(target))
    assert leader.membership.ids == set(cluster.hosts)
    with trio.fail_after(leader.write_timeout):
        await leader.change_membership(RemoveMember(down))
    assert leader.membership.ids == {leader.id, up} and leader.is_leader


async def test_a_released_member_learns_its_removal_and_its_stream_ends(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The removed member's answer comes after the removal committed (its
    disk is slower): the leader releases it then, in a Ready of messages
    alone, tells it the commit, and stops the stream to it though the
    cluster is idle from then on (a review found the stream kept, and
    reopened for ever once the member stopped)."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await leader.write(Put("before", "v"))
    removed_id = min(i for i in cluster.hosts if i != leader.id)
    removed = cluster.hosts[removed_id].node
    cluster.hosts[removed_id].fsync_seconds = 0.05
    await leader.change_membership(RemoveMember(removed_id))
    transport = leader._transport
    assert transport is not None
    with trio.fail_after(2 * ELECTION_MAX_S):
        await wait_for(lambda: removed_id not in leader.core.status().progress, poll=0.005)
        await wait_for(lambda: not removed.core.status().promotable, poll=0.005)
        # Its stream is retired at once and ends within its deadline.
        await wait_for(
            lambda: removed_id not in transport.senders and all(s.ended for s in transport._retiring.values())
        )
    assert removed.core.basic_status().role is Role.FOLLOWER and leader.is_leader


async def test_a_member_removed_after_a_node_joined_keeps_no_stream_from_it(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A node that joined was told its cluster's members outside the log
    (add_known_peers); once its configuration names it, those no longer
    count, so a member removed later is not streamed to for ever (a
    review found the stream reopening twice a second once it stopped)."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await leader.write(Put("before", "v"))
    joined, removed_id = sorted(h.node.id for h in cluster.hosts.values() if h.node is not leader)
    node = cluster.hosts[joined].node
    node.add_known_peers({i: f"mem://{i}" for i in cluster.hosts if i != joined})
    await leader.change_membership(RemoveMember(removed_id))
    transport = node._transport
    assert transport is not None
    with trio.fail_after(2 * ELECTION_MAX_S):
        await wait_for(lambda: removed_id not in node.core.status().committed_membership.ids, poll=0.005)
        await wait_for(lambda: removed_id not in transport.senders)
    assert leader.id in transport.senders
