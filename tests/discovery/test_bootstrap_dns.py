"""A waiting node forms no cluster on a DNS answer that is not about its
service: a lookup that failed (a slow DNS server), or an answer that does
not list the node itself (a mistyped name, DNS that lags). With
``BOOTSTRAP_EXPECT=1`` such a node formed a cluster of its own beside the
one it should have found: two clusters of one service."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from raft_trio.discovery import Bootstrap, DiscoverySettings, DnsError, decide


class FailingDns:
    async def resolve(self, name: str, port: int) -> list[str]:
        raise DnsError(f"{name}: The DNS operation timed out.")


class EmptyDns:
    async def resolve(self, name: str, port: int) -> list[str]:
        return []


class ListsMe:
    async def resolve(self, name: str, port: int) -> list[str]:
        return ["http://127.0.42.1:42001"]


@pytest.mark.parametrize("dns", [FailingDns(), EmptyDns()], ids=["failing", "empty"])
async def test_no_cluster_forms_on_dns_that_does_not_list_this_node(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, dns: FailingDns | EmptyDns
) -> None:
    bootstrap = Bootstrap("a", "http://127.0.42.1:42001", tmp_path, DiscoverySettings("node", expect=1), dns)  # type: ignore[arg-type]
    with trio.move_on_after(60):
        decision = await bootstrap.decide_loop()
        pytest.fail(f"decided on DNS that does not list this node: {decision}")
    assert bootstrap.ack is None and not (tmp_path / "bootstrap-ack.json").exists()


async def test_a_single_replica_listed_in_dns_forms_its_cluster(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    settings = DiscoverySettings("node", expect=1)
    bootstrap = Bootstrap("a", "http://127.0.42.1:42001", tmp_path, settings, ListsMe())  # type: ignore[arg-type]
    with trio.fail_after(10):
        decision = await bootstrap.decide_loop()
    assert decision.action == "bootstrap" and [m.id for m in decision.members] == ["a"]


def test_the_decision_waits_while_dns_does_not_list_this_node() -> None:
    decision, _ = decide("a", "http://a:9001", 1, None, [], frozenset({"a"}), listed=False)
    assert decision.action == "wait" and "does not list this node" in decision.reason
    seed, _ = decide("a", "http://a:9001", 1, "a", [], None, listed=False)
    assert seed.action == "wait"
