"""The runtime's own timing on Trio's fake clock: ticker, parallel fan-out
with a deadline per peer, the leader pump, the disk-stall watchdog.

Three real ``RaftNode`` runtimes share one Trio run; between them is an
in-memory transport (a paused peer's POST never returns, as with SIGSTOP)
and an in-memory disk whose fsync can be made slow. ``autojump_clock`` makes
minutes of virtual time pass in milliseconds, and every wait is bounded in
virtual time.
"""

from __future__ import annotations

import trio
import trio.testing

from raft_trio.core import Role
from raft_trio.kv import Put

from .harness import ELECTION_MAX_S, TIMING, Cluster


async def test_a_leader_is_elected_within_one_election_timeout_round(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    elapsed = trio.current_time() - start
    # Pre-vote then vote: the first timeout to fire wins, at most the upper bound plus a few round trips.
    assert elapsed <= ELECTION_MAX_S + 0.5, elapsed
    assert {h.node.core.leader_id for h in cluster.hosts.values()} == {leader.id}


async def test_writes_commit_and_answer_with_their_index(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    result = await leader.write(Put("k", "v"))
    assert result.key == "k" and result.index == leader.core.log.committed


async def test_a_paused_follower_costs_the_leader_nothing(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The ancestor's weakness 4: heartbeats went to peers one after another,
    so a paused peer unseated the leader. Here each peer has its own sender
    and deadline: with one follower stopped, writes keep committing and no
    election happens for ten election timeouts."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    follower = next(i for i in cluster.hosts if i != leader.id)
    cluster.hosts[follower].paused = True
    terms_before = cluster.terms(exclude=follower)
    deadline = trio.current_time() + 10 * ELECTION_MAX_S
    writes = 0
    while trio.current_time() < deadline:
        with trio.fail_after(1.0):  # each write commits well within a second
            await leader.write(Put(f"key{writes}", "v"))
        writes += 1
        await trio.sleep(0.05)
    assert cluster.terms(exclude=follower) == terms_before
    assert leader.core.role is Role.LEADER
    assert writes > 100


async def test_a_slow_leader_disk_does_not_delay_heartbeats(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Heartbeats never wait on the disk: with every fsync of the leader
    taking half an election timeout, nobody times out."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    cluster.hosts[leader.id].fsync_seconds = TIMING.election_min_ms / 2000
    terms_before = cluster.terms()
    async with trio.open_nursery() as writers:
        for n in range(20):
            writers.start_soon(leader.write, Put(f"slow{n}", "v"))
        await trio.sleep(10 * ELECTION_MAX_S)
    assert cluster.terms() == terms_before
    assert leader.core.role is Role.LEADER


async def test_a_leader_whose_disk_stalls_steps_down(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """No zombie leader: a leader that cannot make entries durable for
    longer than an election timeout steps down, and a working node leads."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    cluster.hosts[leader.id].fsync_seconds = 60.0
    stalled_write = trio.CancelScope()

    async def write_into_the_stall() -> None:
        with stalled_write:
            await leader.write(Put("stalled", "v"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write_into_the_stall)
        with trio.fail_after(3 * ELECTION_MAX_S):
            while leader.core.role is Role.LEADER:
                await trio.sleep(0.01)
        stalled_write.cancel()
    with trio.fail_after(3 * ELECTION_MAX_S):
        while not any(n.id != leader.id for n in cluster.leaders()):
            await trio.sleep(0.01)
