"""Replicas of one service that formed a cluster of their own are in DNS
beside this cluster's members: their leader says nothing about this
cluster, and no member sets its data aside for it (a review's finding:
every member, leader included, did)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import trio
import trio.testing

from raft_trio.discovery import DiscoverySettings, MemberView, PeerStatus, _reconcile, manage_membership


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

    def __post_init__(self) -> None:
        self.url = url(self.id)
        self.membership = self.committed_membership = Configuration([Member(i, url(i)) for i in "abc"])

    def use_found_addresses(self, found: dict[str, str]) -> None:
        pass


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
