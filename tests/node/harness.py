"""The in-memory world of the runtime tests on Trio's fake clock: three
real ``RaftNode`` runtimes in one Trio run, an in-memory transport (a
paused peer's POST never returns, as with SIGSTOP) and an in-memory disk
whose fsync can be made slow."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import trio

from raft_trio.core import Entry, HardState, Membership, MemoryStorage, Role, Snapshot, SnapshotMeta
from raft_trio.node import RaftNode, Timing
from raft_trio.peer.transport import decode_batch

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
