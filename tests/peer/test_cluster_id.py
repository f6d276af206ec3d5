"""Peer traffic names its cluster: a node of another cluster is refused.

A cluster restored from a backup next to a live node of the one the
backup came from (its ``--peers`` naming that node's address, the same
cluster secret) deposed that node: nothing in a peer message said which
cluster it belonged to (a review's finding). Requests and streams now
carry ``X-Raft-Cluster`` when the sender has an id, and a node whose own
id differs refuses them (412), as etcd's ``X-Etcd-Cluster-ID``; either
side without an id checks nothing (clusters started before there was
one, a node joining before it learnt it).
"""

from __future__ import annotations

import pytest

from raft_trio.peer.transport import naming_cluster
from raft_trio.peer.wire import CLUSTER_HEADER, FROM_HEADER, PeerRequestError, check_peer_head


def head(cluster: str | None) -> dict[str, str]:
    headers = {FROM_HEADER.lower(): "n1"}
    if cluster is not None:
        headers[CLUSTER_HEADER.lower()] = cluster
    return headers


def test_a_peer_of_another_cluster_is_refused_with_412() -> None:
    with pytest.raises(PeerRequestError) as refused:
        check_peer_head(head("restored-1"), None, "old-cluster")
    assert refused.value.status == 412 and refused.value.sender == "n1"
    assert "'restored-1'" in refused.value.message and "'old-cluster'" in refused.value.message


@pytest.mark.parametrize(("theirs", "ours"), [("c", "c"), (None, "c"), ("c", None), (None, None)])
def test_the_same_cluster_or_an_unknown_one_passes(theirs: str | None, ours: str | None) -> None:
    assert check_peer_head(head(theirs), None, ours) == "n1"


async def test_every_request_and_stream_of_a_transport_names_its_cluster() -> None:
    seen: list[dict[str, str]] = []

    async def request(url: str, headers: dict[str, str], body: object) -> int:
        seen.append(headers)
        return 204

    async def open_stream(url: str, headers: dict[str, str]) -> int:
        seen.append(headers)
        return 404

    named_request, named_open = naming_cluster("c1", request, open_stream)
    await named_request("http://n2/raft/messages", {FROM_HEADER: "n1"}, b"")
    await named_open("http://n2/raft/stream", {FROM_HEADER: "n1"})
    assert seen == [{FROM_HEADER: "n1", CLUSTER_HEADER: "c1"}] * 2
