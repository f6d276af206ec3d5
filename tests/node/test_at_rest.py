"""A cluster at rest wakes only for heartbeats: on this kind of machine a
task's wake-up, not what runs in it, is what a node at rest spends. Three
runtimes on Trio's fake clock; every task's steps counted by name. A
leader at rest reads its followers' answers at its own heartbeat rounds,
and goes back to reading them as they come as soon as anything waits for
them: a write or a read at rest waits for no round."""

from __future__ import annotations

import trio
import trio.testing

from raft_trio.kv import Put, Written
from raft_trio.peer.stream import MAX_BACKOFF_S
from raft_trio.testing.waiting import wait_for
from tests.node.harness import ELECTION_MAX_S, TIMING, Cluster, log_steps


async def test_at_rest_heartbeats_and_their_answers_wake_no_stream_and_no_ready_loop(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=10.0)
    await trio.sleep(3.0)  # settled: every stream open, the first commits done
    steps = (await log_steps(2.0)).counts()
    rounds = 2.0 / (TIMING.heartbeat_ms / 1000)
    # The leader's ticker sends each round's heartbeats itself, and each
    # follower's stream reader answers from where it read them: written at
    # once, with no turn of a stream's task or of a ready loop.
    assert steps["ticker"] <= rounds + 2, steps
    assert steps["ready-loop"] == 0, steps
    assert sum(n for name, n in steps.items() if name.startswith("stream-")) == 0, steps
    # The followers' answers wait for the leader's next round, read by its
    # ticker: the leader's stream readers take no step at rest.
    leader_readers = {name: n for name, n in steps.items() if name.endswith(f"-on-{leader.id}")}
    assert sum(leader_readers.values()) == 0, steps
    # Each follower's reader of the leader's stream wakes for each heartbeat.
    for follower in cluster.hosts:
        if follower != leader.id:
            assert steps[f"read-{leader.id}-on-{follower}"] >= rounds - 2, steps
    assert leader.is_leader, "the answers read a round late still count for check-quorum"


async def test_a_leader_at_rest_holds_its_lease_and_serves_writes_and_reads_without_waiting_a_round(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=10.0)
    term = leader.term
    for _ in range(5):
        await trio.sleep(7 * ELECTION_MAX_S)  # at rest: answers read a round late only
        assert leader.is_leader and leader.term == term
        assert leader.out_of_touch() is None
        # The disks and the network take no time here: a write or a read
        # that waited for the leader's next round would take a tenth of a
        # second, a heartbeat interval.
        started = trio.current_time()
        assert isinstance(await leader.write(Put("k", "v")), Written)
        await leader.linearizable_barrier()
        assert trio.current_time() - started < TIMING.heartbeat_ms / 1000 / 4


async def test_a_leader_is_at_rest_again_soon_after_a_paused_follower_resumes(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A pause breaks the leader's stream to the follower, which the core
    hears as the follower unreachable (PROBE, although it holds the whole
    log); once it answers again the leader is back at rest within a few
    rounds, without waiting for a write."""
    leader = await cluster.wait_for_leader(within=10.0)
    await trio.sleep(3.0)
    follower = next(node_id for node_id in cluster.hosts if node_id != leader.id)
    cluster.hosts[follower].paused = True
    await trio.sleep(10.0)
    assert leader.core.awaits_answers()
    cluster.hosts[follower].paused = False
    rounds = TIMING.heartbeat_ms / 1000
    with trio.fail_after(MAX_BACKOFF_S + 5 * rounds):  # the stream reopens, then a few rounds
        await wait_for(lambda: not leader.core.awaits_answers())
    assert leader.is_leader
    await trio.sleep(2 * rounds)  # each reader parks after the next answer it reads
    steps = (await log_steps(2.0)).counts()
    assert sum(n for name, n in steps.items() if name.endswith(f"-on-{leader.id}")) == 0, steps


async def test_the_leaders_lease_ends_within_the_minimum_election_timeout_of_the_last_answered_round(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """``out_of_touch`` (``/readyz``, authorised requests) counts a
    follower's answer from when the round it answers left, not from when
    the leader read it (up to a round later at rest): the lease never
    outlives the followers' promise not to elect another."""
    leader = await cluster.wait_for_leader(within=10.0)
    await trio.sleep(3.0)
    followers = [host for node_id, host in cluster.hosts.items() if node_id != leader.id]
    heard_before = followers[0].node._leader_heard_at
    with trio.fail_after(1.0):  # a round just reached the followers
        await wait_for(lambda: followers[0].node._leader_heard_at != heard_before, poll=0.001)
    await trio.sleep(0.001)
    last_heard = max(host.node._leader_heard_at for host in followers)
    for host in followers:
        host.paused = True
    with trio.fail_after(5.0):
        await wait_for(lambda: leader.out_of_touch() is not None, poll=0.001)
    assert trio.current_time() - last_heard <= TIMING.election_min_ms / 1000 + 0.002
