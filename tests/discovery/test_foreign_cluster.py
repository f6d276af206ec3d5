"""Replicas of one service that formed a cluster of their own are in DNS
beside this cluster's members: their leader says nothing about this
cluster, and no member sets its data aside for it (a review's finding:
every member, leader included, did). With cluster ids, a new replica does
not join another cluster's, nor does a leader add another cluster's
replica."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from raft_trio.discovery import (
    Bootstrap,
    DiscoverySettings,
    MemberView,
    PeerStatus,
    _bootstrap,
    _reconcile,
    manage_membership,
)


def url(node_id: str) -> str:
    return f"http://{node_id}:9001"


def status(
    node_id: str, members: str, leader: str, leader_log: tuple[int, int, int] | None = None
) -> PeerStatus:
    views = tuple(MemberView(m, url(m)) for m in members)
    return PeerStatus(url(node_id), node_id, views, url(leader), leader_log=leader_log)


@dataclasses.dataclass
class Member:
    id: str
    url: str
    voter: bool = True


@dataclasses.dataclass
class Configuration:
    members: list[Member]


@dataclasses.dataclass
class NodeOfABC:
    """What manage_membership reads of a node of the cluster a, b, c."""

    id: str
    role_name: str
    leader_id: str = "a"
    cluster_id: str | None = None

    def __post_init__(self) -> None:
        self.url = url(self.id)
        self.membership = self.committed_membership = Configuration([Member(i, url(i)) for i in "abc"])
        self.changes: list[Any] = []

    def use_found_addresses(self, found: dict[str, str]) -> None:
        pass

    async def change_membership(self, change: Any) -> None:
        self.changes.append(change)


class AllSix:
    async def resolve(self, name: str, port: int) -> list[str]:
        return [url(i) for i in "abcdef"]

    def addresses(self, name: str) -> list[str]:
        return []


@pytest.mark.parametrize(("me", "role"), [("a", "leader"), ("b", "follower")])
async def test_no_member_sets_its_data_aside_for_another_clusters_leader(
    me: str, role: str, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    statuses = [status("a", "abc", "a", (3, 40, 40)), status("d", "def", "d", (2, 5, 5))]
    statuses += [status(i, "abc", "a") for i in "bc"] + [status(i, "def", "d") for i in "ef"]

    async def probe_all(client: Any, urls: Any) -> dict[str, PeerStatus]:
        return {s.url: s for s in statuses}

    monkeypatch.setattr(_reconcile, "probe_all", probe_all)
    removed: list[str] = []
    with trio.move_on_after(30):
        await manage_membership(NodeOfABC(me, role), DiscoverySettings("node"), AllSix(), removed.append)  # type: ignore[arg-type]
    assert removed == []


def green(node_id: str, members: str = "", waiting: bool = False) -> PeerStatus:
    views = tuple(MemberView(m, url(m)) for m in members)
    leader = url(members[0]) if members else None
    return PeerStatus(url(node_id), node_id, views, leader, waiting=waiting, cluster_id="green")


async def test_a_new_replica_does_not_join_a_cluster_of_another_cluster_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    """Its peers refuse this one's messages (412): a node of cluster blue
    that joined cluster green, found under the same DNS name, stayed its
    learner for ever. It forms its own (BOOTSTRAP_EXPECT=1) instead."""

    class BothClusters:
        async def resolve(self, name: str, port: int) -> list[str]:
            return [url("a"), url("d")]

    async def probe_all(client: Any, urls: Any) -> dict[str, PeerStatus]:
        return {url("d"): green("d", "d")}

    monkeypatch.setattr(_bootstrap, "probe_all", probe_all)
    settings = DiscoverySettings("node", expect=1)
    bootstrap = Bootstrap("a", url("a"), tmp_path, settings, BothClusters(), cluster_id="blue")  # type: ignore[arg-type]
    with trio.fail_after(10):
        decision = await bootstrap.decide_loop()
    assert (decision.action, [m.id for m in decision.members]) == ("bootstrap", ["a"])
    assert bootstrap.status().cluster_id == "blue"


async def test_the_leader_does_not_add_a_replica_of_another_cluster_id(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    statuses = [status(i, "abc", "a", (3, 40, 40) if i == "a" else None) for i in "abc"]
    statuses.append(green("e", waiting=True))

    async def probe_all(client: Any, urls: Any) -> dict[str, PeerStatus]:
        return {s.url: s for s in statuses}

    monkeypatch.setattr(_reconcile, "probe_all", probe_all)
    leader = NodeOfABC("a", "leader", cluster_id="blue")
    with trio.move_on_after(30):
        await manage_membership(leader, DiscoverySettings("node"), AllSix())  # type: ignore[arg-type]
    assert leader.changes == []
