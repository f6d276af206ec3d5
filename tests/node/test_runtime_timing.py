"""The runtime's own timing on Trio's fake clock: ticker, one stream per
peer with a deadline per write, the leader pump, the disk-stall watchdog.

Three real ``RaftNode`` runtimes share one Trio run; between them is an
in-memory transport (a paused peer reads nothing of its streams once their
buffers are full, and answers nothing, as with SIGSTOP) and an in-memory
disk whose fsync can be made slow. ``autojump_clock`` makes
minutes of virtual time pass in milliseconds, and every wait is bounded in
virtual time.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from raft_trio.core import Role
from raft_trio.kv import Put, Written
from raft_trio.node import WriteFailed, WriteIndeterminate
from raft_trio.node.runtime import COMPACTION_MIN_WRITE_RATE
from raft_trio.peer import stream as stream_module
from raft_trio.testing.waiting import wait_for

from .harness import ELECTION_MAX_S, TIMING, Cluster


async def test_a_leader_is_elected_within_one_election_timeout_round(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    elapsed = trio.current_time() - start
    # Pre-vote then vote: the first timeout to fire wins, at most the upper bound plus a few round trips.
    assert elapsed <= ELECTION_MAX_S + 0.5, elapsed
    assert {h.node.leader_id for h in cluster.hosts.values()} == {leader.id}


async def test_writes_commit_and_answer_with_their_index(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    result = await leader.write(Put("k", "v"))
    assert isinstance(result, Written), result
    assert result.key == "k" and result.index == leader.commit_index


@pytest.mark.parametrize("buffer_frames", [0, 64], ids=["no buffer", "socket buffers"])
async def test_a_paused_follower_costs_the_leader_nothing(
    cluster: Cluster, autojump_clock: trio.testing.MockClock, buffer_frames: int
) -> None:
    """The ancestor's weakness 4: heartbeats went to peers one after another,
    so a paused peer unseated the leader. Here each peer has its own stream
    and a deadline per write: with one follower stopped, writes keep
    committing and no election happens for ten election timeouts. Once its
    connection takes no more frames (no buffer at all, or full socket
    buffers) its stream is dropped at the deadline and reopened with
    backoff; the leader holds at most the bounded outbox for it. Once it
    resumes it catches up under the same leader."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    follower = next(i for i in cluster.hosts if i != leader.id)
    other = next(i for i in cluster.hosts if i not in (leader.id, follower))
    cluster.hosts[follower].buffer_frames = buffer_frames
    cluster.hosts[follower].paused = True
    stream = leader._transport.senders[follower]  # type: ignore[union-attr]
    opened_before = stream.streams_opened
    terms_before = cluster.terms(exclude=follower)
    deadline = trio.current_time() + 10 * ELECTION_MAX_S
    writes = 0
    while trio.current_time() < deadline:
        with trio.fail_after(1.0):
            await leader.write(Put(f"key{writes}", "v" * 1000))
        writes += 1
        await trio.sleep(0.05)
        assert len(stream._queue) <= stream_module.MAX_QUEUED
        assert stream._queued_bytes <= stream_module.MAX_QUEUED_BYTES
    assert cluster.terms(exclude=follower) == terms_before
    assert leader.is_leader
    assert writes > 100
    if buffer_frames == 0:
        assert stream.streams_opened > opened_before + 1  # dropped, reopened
    cluster.hosts[follower].paused = False
    with trio.fail_after(3 * ELECTION_MAX_S):
        await wait_for(
            lambda: cluster.hosts[follower].node.kv.applied_index >= leader.commit_index, poll=0.05
        )
    assert leader.is_leader and cluster.terms() == {**terms_before, follower: leader.term}
    assert cluster.hosts[other].node.leader_id == leader.id


async def test_a_frozen_leader_is_replaced_once_the_followers_leases_end(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A paused leader (SIGSTOP, ``docker pause``) says nothing and its
    port still accepts. Its followers, once the lower election timeout has
    passed without a word from it (the lease each promised it), take
    turns: a new leader within that timeout plus a window, five freezes
    in a row, never at a random point of the 1-2 s range (with random
    draws, each freeze comes out this quick one time in five). And not
    sooner: the leases hold."""
    lease_s = TIMING.election_min_ms / 1000
    window_s = TIMING.raft_config().refused_stagger_ticks * TIMING.tick_ms / 1000
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    took = []
    for _ in range(5):
        await trio.sleep(0.5)  # a few heartbeat rounds under this leader
        frozen = cluster.hosts[leader.id]
        frozen_at = trio.current_time()
        frozen.freeze()
        with trio.fail_after(2 * ELECTION_MAX_S):
            await wait_for(lambda: bool(cluster.leaders()))  # the frozen one is left out
        took.append(trio.current_time() - frozen_at)
        leader = cluster.leaders()[0]
        frozen.thaw()
        with trio.fail_after(ELECTION_MAX_S):
            await wait_for(lambda: frozen.node.leader_id == leader.id)  # noqa: B023 (awaited at once)
    heartbeat_s = TIMING.heartbeat_ms / 1000
    print(f"new leaders {', '.join(f'{t:.3f}' for t in took)} s after each freeze")
    assert all(lease_s - heartbeat_s <= t <= lease_s + window_s + 0.05 for t in took), took


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
    assert leader.is_leader


async def test_a_leader_replicates_and_commits_a_write_while_its_own_fsync_runs(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """§10.2.1: the leader writes to its disk in parallel with replicating
    to its followers. A write's AppendEntries leave in the Ready's
    ``messages`` (or in a Ready of messages only, if another is in flight)
    before the leader's own fsync ends, and the followers' two
    acknowledgements commit it meanwhile; the leader answers once its own
    write is durable and the entry applied."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    followers = [h.node for h in cluster.hosts.values() if h.node is not leader]
    fsync_s = TIMING.election_min_ms / 2000
    cluster.hosts[leader.id].fsync_seconds = fsync_s
    before = leader.last_log_index
    answered_at: list[float] = []

    async def write() -> None:
        await leader.write(Put("parallel", "v"))
        answered_at.append(trio.current_time())

    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(write)
        await trio.sleep(fsync_s / 10)
        index = leader.last_log_index
        assert index > before
        assert all(f.last_log_index >= index for f in followers)
        assert leader.commit_index >= index, "the followers' acknowledgements commit it"
        assert answered_at == []
    assert answered_at[0] - started >= fsync_s


@pytest.mark.parametrize("stalled", ["fsync", "compaction"])
async def test_a_leader_whose_disk_stalls_steps_down(
    cluster: Cluster, autojump_clock: trio.testing.MockClock, stalled: str
) -> None:
    """No zombie leader: a leader that cannot make entries durable for
    longer than an election timeout steps down, and a working node leads.
    A compaction that stalls counts too (found by review: a leader stuck
    in one heartbeated on, kept the others from electing, and applied
    nothing while its followers committed, every write timing out)."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    host = cluster.hosts[leader.id]
    if stalled == "fsync":
        host.fsync_seconds = 60.0
    else:
        host.compaction_seconds = 60.0
        storage: Any = leader.storage
        storage.needs_snapshot = lambda applied: True
    stalled_write = trio.CancelScope()

    async def write_into_the_stall() -> None:
        with stalled_write:
            await leader.write(Put("stalled", "v"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write_into_the_stall)
        with trio.fail_after(3 * ELECTION_MAX_S):
            await wait_for(lambda: leader.core.basic_status().role is not Role.LEADER)
        stalled_write.cancel()
    with trio.fail_after(3 * ELECTION_MAX_S):
        await wait_for(lambda: any(n.id != leader.id for n in cluster.leaders()))


async def test_a_compaction_of_a_large_state_may_take_longer_than_an_election_timeout(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A large snapshot file takes a while to write: the watch allows
    COMPACTION_MIN_WRITE_RATE on top of the election timeout, so a leader
    whose 8 MiB compaction takes 2 s (the timeout is 1 s) keeps leading."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    term = leader.term
    for n in range(8):
        assert isinstance(await leader.write(Put(f"big{n}", "v" * (1 << 20))), Written)
    host = cluster.hosts[leader.id]
    host.compaction_seconds = 2.0
    allowance_s = (8 << 20) / COMPACTION_MIN_WRITE_RATE
    assert (
        TIMING.election_min_ms / 1000 < host.compaction_seconds < TIMING.election_min_ms / 1000 + allowance_s
    )
    storage: Any = leader.storage
    compacted = trio.Event()
    real_compact_cache = storage.compact_cache

    def compact_cache(snapshot: Any) -> None:
        real_compact_cache(snapshot)
        compacted.set()

    storage.compact_cache = compact_cache
    storage.needs_snapshot = lambda applied: not compacted.is_set()
    with trio.fail_after(3 * ELECTION_MAX_S):
        assert isinstance(await leader.write(Put("after", "v")), Written)
        await compacted.wait()
    assert leader.is_leader and leader.term == term
    assert [n.id for n in cluster.leaders()] == [leader.id]


async def test_a_write_without_a_quorum_times_out_at_its_timeout(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The ticker keeps the write timeout (no cancel scope a write): with
    both followers paused, a write is answered indeterminate once its
    timeout passed, within a heartbeat interval and a half, and leaves no
    waiter behind."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    for host in cluster.hosts.values():
        host.paused = host.node is not leader
    start = trio.current_time()
    with pytest.raises(WriteIndeterminate, match="timed out"), trio.fail_after(2 * leader.write_timeout):
        await leader.write(Put("unreplicated", "v"))
    waited = trio.current_time() - start
    heartbeat_s = TIMING.heartbeat_ms / 1000
    assert leader.write_timeout <= waited <= leader.write_timeout + 1.5 * heartbeat_s, waited
    assert len(leader._writes) == 0


async def test_a_node_at_rest_wakes_its_ticker_once_a_heartbeat_not_every_tick(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The core still gets every tick (its logical time keeps up with the
    clock), but the ticker wakes only when one matters or after a heartbeat
    interval without input: a leader's about 10 times a second (its
    heartbeats) instead of 100, a follower's hardly ever (each heartbeat it
    hears pushes the wake on)."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    ticks = {i: h.node._ticks for i, h in cluster.hosts.items()}
    before = {i: (t.wakeups, t.delivered) for i, t in ticks.items()}
    rest_s = 10.0
    await trio.sleep(rest_s)
    for node_id, t in ticks.items():
        wakeups = t.wakeups - before[node_id][0]
        delivered = t.delivered - before[node_id][1]
        assert delivered >= rest_s * 1000 / TIMING.tick_ms - 2, (node_id, delivered)
        assert wakeups <= rest_s * 1000 / TIMING.heartbeat_ms + 2, (node_id, wakeups)
        if node_id != leader.id:
            assert wakeups <= 2, (node_id, wakeups)


async def test_writes_left_waiting_by_a_step_down_are_answered_by_their_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A leader cut off from its followers steps down with writes waiting;
    they keep waiting (a later leader may commit them). Once it follows a
    new leader whose log never got them, every one is answered by its
    timeout: a follower that hears its leader does not wake its ticker on
    its own, so the ticker wakes for the first waiter's deadline."""
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery)
        for host in cluster.hosts.values():
            host.buffer_frames = 0  # a paused follower gets none of the entries
        await cluster.start()
        await _step_down_with_writes_waiting(cluster)
        for host in cluster.hosts.values():
            host.node.close()


async def _step_down_with_writes_waiting(cluster: Cluster) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await leader.write(Put("a", "1"))
    old = cluster.hosts[leader.id]
    others = [host for host in cluster.hosts.values() if host is not old]
    for host in others:
        host.paused = True
    answers: list[str] = []

    async def client(n: int) -> None:
        try:
            await leader.write(Put(f"k{n}", "v"))
            answers.append("written")
        except (WriteIndeterminate, WriteFailed) as error:
            answers.append(type(error).__name__)

    async with trio.open_nursery() as clients:
        started = trio.current_time()
        for n in range(3):
            clients.start_soon(client, n)
        with trio.fail_after(3 * ELECTION_MAX_S):
            await wait_for(lambda: not leader.is_leader)  # check-quorum
        old.paused = True
        for host in others:
            host.paused = False
        with trio.fail_after(3 * ELECTION_MAX_S):
            await wait_for(lambda: any(host.node.is_leader for host in others))
        old.paused = False
        with trio.fail_after(leader.write_timeout + 1.0 - (trio.current_time() - started)):
            await wait_for(lambda: len(answers) == 3)
    assert "written" not in answers, answers
    assert len(leader._writes) == 0
