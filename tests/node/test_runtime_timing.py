"""The runtime's own timing on Trio's fake clock: ticker, parallel fan-out
with a deadline per peer, the leader pump, the disk-stall watchdog.

Three real ``RaftNode`` runtimes share one Trio run; between them is an
in-memory transport (a paused peer's POST never returns, as with SIGSTOP)
and an in-memory disk whose fsync can be made slow. ``autojump_clock`` makes
minutes of virtual time pass in milliseconds, and every wait is bounded in
virtual time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
import trio.testing

from raft_trio.core import Entry, HardState, Membership, MemoryStorage, Role, Snapshot, SnapshotMeta
from raft_trio.kv import Put
from raft_trio.node import RaftNode, Timing
from raft_trio.transport import decode_batch

TIMING = Timing()  # etcd's defaults: heartbeat 100 ms, election 1000-2000 ms
ELECTION_MAX_S = TIMING.election_max_ms / 1000


class MemoryNodeStorage(MemoryStorage):
    """The runtime's storage interface over MemoryStorage: the 'disk' half
    records nothing (there is no crash in these tests); the cache half
    applies the writes."""

    def write_to_disk(
        self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None
    ) -> None:
        pass

    def apply_to_cache(
        self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None
    ) -> None:
        if snapshot is not None:
            self.apply_snapshot(snapshot)
        if hard_state is not None:
            self.set_hard_state(hard_state)
        self.append(entries)

    def needs_snapshot(self, applied: int) -> bool:
        return False

    def compact_on_disk(self, snapshot: Snapshot) -> None:
        pass

    def compact_cache(self, snapshot: Snapshot) -> None:
        self.compact(snapshot)


@dataclasses.dataclass
class Host:
    node: RaftNode
    paused: bool = False
    fsync_seconds: float = 0.0


class Cluster:
    def __init__(self, nursery: trio.Nursery, size: int = 3) -> None:
        self.nursery = nursery
        urls = {f"n{i}": f"mem://n{i}" for i in range(1, size + 1)}
        membership = Membership.of(urls)
        self.hosts: dict[str, Host] = {}
        for seed, (node_id, url) in enumerate(urls.items()):
            storage = MemoryNodeStorage(Snapshot(SnapshotMeta(0, 0, membership)))
            node = RaftNode(
                node_id, url, storage, TIMING, seed=seed, run_disk=self._disk(node_id), post=self._post
            )
            self.hosts[node_id] = Host(node)

    def _disk(self, node_id: str) -> Callable[..., Any]:
        async def run_disk(function: Callable[..., Any], *args: Any) -> Any:
            await trio.sleep(self.hosts[node_id].fsync_seconds)
            return function(*args)

        return run_disk

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        target = self.hosts[url.removeprefix("mem://").split("/")[0]]
        if target.paused:
            await trio.sleep_forever()  # a stopped process never answers
        target.node.step(decode_batch(body))
        return 204

    async def start(self) -> None:
        for host in self.hosts.values():
            await self.nursery.start(host.node.run)

    def leaders(self) -> list[RaftNode]:
        return [h.node for h in self.hosts.values() if not h.paused and h.node.core.role is Role.LEADER]

    async def wait_for_leader(self, within: float) -> RaftNode:
        with trio.fail_after(within):
            while len(self.leaders()) != 1:
                await trio.sleep(0.01)
        return self.leaders()[0]

    def terms(self, exclude: str | None = None) -> dict[str, int]:
        return {i: h.node.core.term for i, h in self.hosts.items() if i != exclude}


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    """Three runtimes in this Trio run. (pytest-trio applies a clock only
    when the test itself asks for it: every test here takes autojump_clock.)"""
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery)
        await cluster.start()
        yield cluster
        for host in cluster.hosts.values():
            host.node.close()


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
