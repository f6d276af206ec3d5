"""A member that joins (``--join``, discovery) reads the cluster's term
before it asks to be added, and takes it: a leader of an older term that
slept through this id's removal and re-adding, and still counts it as its
old server, is then refused instead of followed (the core's side is
tests/core/test_membership.py::test_a_member_that_took_the_clusters_term_refuses_a_stale_leader)."""

from __future__ import annotations

from typing import Any

from raft_trio import schema
from raft_trio.client import ClientError
from raft_trio.core import Membership, Snapshot, SnapshotMeta
from raft_trio.discovery import request_membership
from raft_trio.node import RaftNode, Timing
from tests.node.harness import MemoryNodeStorage


class _Cluster:
    """The cluster as the joining node's client sees it: a status at term
    7, and an add that fails this time (the node asks again later)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def at(self, url: str, *, timeout: float | None = None) -> _Cluster:
        return self

    async def status(self) -> schema.Status:
        self.asked.append("status")
        return schema.Status(
            id="n1",
            role="leader",
            term=7,
            leader_id="n1",
            leader_url="http://n1:9001",
            commit_index=40,
            applied_index=40,
            last_log_index=40,
            members=[],
        )

    async def add_member(self, member_id: str, url: str) -> Any:
        self.asked.append("add")
        raise ClientError("the leader is busy")


async def test_a_joining_node_takes_the_clusters_term_before_it_asks_to_be_added() -> None:
    storage = MemoryNodeStorage(Snapshot(SnapshotMeta(0, 0, Membership())))
    node = RaftNode("n4", "http://n4:9001", storage, Timing(), seed=1)
    cluster = _Cluster()

    joined = await request_membership(cluster, "http://n1:9001", node)  # type: ignore[arg-type]

    assert not joined and cluster.asked == ["status", "add"]
    assert node.core.term == 7
