"""Auth decisions on three real runtimes (fake clock): a change to users
and roles reaches every node through the log; a node cut off from the
cluster stops deciding within one minimum election timeout (the
staleness bound the README states), and decides again once back."""

from __future__ import annotations

import trio
import trio.testing

from raft_trio.kv import (
    ROOT,
    AuthEnable,
    Caller,
    Grant,
    PermissionDenied,
    Put,
    RoleAdd,
    RoleGrant,
    RoleRevoke,
    UserAdd,
    UserGrantRole,
    Written,
)
from raft_trio.node import RaftNode
from raft_trio.testing.waiting import wait_for

from .harness import ELECTION_MAX_S, TIMING, Cluster

ELECTION_MIN_S = TIMING.election_min_ms / 1000
HEARTBEAT_S = TIMING.heartbeat_ms / 1000


async def applied_everywhere(cluster: Cluster, index: int, within: float) -> None:
    with trio.fail_after(within):
        await wait_for(
            lambda: all(h.node.kv.applied_index >= index for h in cluster.hosts.values() if not h.paused)
        )


async def test_a_revocation_reaches_every_node_and_a_write_checked_before_it_is_denied(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    for command in (
        UserAdd(ROOT, "h"),
        UserAdd("alice", "h"),
        RoleAdd("app"),
        RoleGrant("app", Grant("readwrite", "app/", "prefix")),
        UserGrantRole("alice", "app"),
        AuthEnable(b"k" * 32),
    ):
        await leader.write(command)
    nodes = [h.node for h in cluster.hosts.values()]
    await applied_everywhere(cluster, leader.kv.applied_index, within=2 * HEARTBEAT_S)
    assert all(n.kv.permissions.may_key("alice", "write", "app/x") for n in nodes)
    checked = Caller("alice")
    await leader.write(RoleRevoke("app", "app/", "prefix"))
    await applied_everywhere(cluster, leader.kv.applied_index, within=2 * HEARTBEAT_S)
    assert not any(n.kv.permissions.may_key("alice", "write", "app/x") for n in nodes)
    # A write checked before the revocation and proposed after it changes nothing.
    result = await leader.write(Put("app/x", "v", caller=checked))
    assert isinstance(result, PermissionDenied)
    assert isinstance(await leader.write(Put("app/x", "v", caller=Caller(ROOT))), Written)


async def wait_out_of_touch(node: RaftNode, within: float) -> float:
    started = trio.current_time()
    with trio.fail_after(within):
        await wait_for(lambda: node.out_of_touch() is not None)
    return trio.current_time() - started


async def test_a_cut_off_follower_stops_deciding_within_an_election_timeout(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    follower_id = next(i for i in cluster.hosts if i != leader.id)
    follower = cluster.hosts[follower_id].node
    with trio.fail_after(2 * HEARTBEAT_S):
        await wait_for(lambda: follower.out_of_touch() is None)
    cluster.hosts[follower_id].paused = True
    # The last heartbeat came at most a heartbeat interval before the cut.
    waited = await wait_out_of_touch(follower, within=ELECTION_MIN_S + 0.02)
    assert ELECTION_MIN_S - HEARTBEAT_S <= waited <= ELECTION_MIN_S + 0.02, waited
    cluster.hosts[follower_id].paused = False
    with trio.fail_after(3 * HEARTBEAT_S):
        await wait_for(lambda: follower.out_of_touch() is None)


async def test_a_leader_cut_off_from_its_followers_stops_deciding_within_an_election_timeout(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A deposed leader that does not know it yet is the dangerous case:
    the others may elect a new leader and revoke a user there."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    with trio.fail_after(2 * HEARTBEAT_S):
        await wait_for(lambda: leader.out_of_touch() is None)
    for node_id, host in cluster.hosts.items():
        if node_id != leader.id:
            host.paused = True
    waited = await wait_out_of_touch(leader, within=ELECTION_MIN_S + 0.02)
    assert waited <= ELECTION_MIN_S + 0.02, waited
    assert "lease lapsing" in (leader.out_of_touch() or "")
