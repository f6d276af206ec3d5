"""The HTTP surface with a cluster secret and an admin token: peer requests
without a valid signature and admin requests without the token are refused
with 401 and change nothing; with them, they go through as before."""

from __future__ import annotations

from typing import Any

import prometheus_client
import pytest
from quart_trio import QuartTrio

from raft_trio.core import Membership, Snapshot, SnapshotMeta
from raft_trio.core._messages import AppendEntries
from raft_trio.http.app import create_app
from raft_trio.node import RaftNode, Timing
from raft_trio.peer.auth import SIGNATURE_HEADER, PeerAuthenticator
from raft_trio.peer.wire import FROM_HEADER, MESSAGES_PATH, encode_batch
from raft_trio.security import Security
from tests.node.harness import MemoryNodeStorage

SECRET = b"a-cluster-secret-for-tests"
TOKEN = b"an-admin-token-for-tests"
MEMBERS = {"n1": "http://n1", "n2": "http://n2", "n3": "http://n3"}


def make_app(security: Security) -> tuple[RaftNode, QuartTrio]:
    storage = MemoryNodeStorage(Snapshot(SnapshotMeta(0, 0, Membership.of(MEMBERS))))
    node = RaftNode("n1", MEMBERS["n1"], storage, Timing(), seed=1, security=security)
    return node, create_app(node)


def heartbeat_from_n2(term: int) -> bytes:
    return encode_batch([AppendEntries(term, "n2", "n1", 0, 0, (), 0)])


def counter(name: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name) or 0.0


async def post_messages(app: QuartTrio, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    response = await app.test_client().post(
        MESSAGES_PATH,
        data=body,
        headers={FROM_HEADER: "n2", "Content-Type": "application/msgpack", **headers},
    )
    return response.status_code, await response.get_json()


async def test_an_unsigned_peer_request_is_refused_and_changes_nothing() -> None:
    node, app = make_app(Security(cluster_secret=SECRET))
    before = counter("raft_peer_requests_refused_total")
    status, body = await post_messages(app, heartbeat_from_n2(50), {})
    assert status == 401
    assert SIGNATURE_HEADER in body["error"]
    assert node.term == 0
    assert counter("raft_peer_requests_refused_total") == before + 1


async def test_a_peer_signed_with_another_secret_is_refused() -> None:
    node, app = make_app(Security(cluster_secret=SECRET))
    body = heartbeat_from_n2(50)
    stranger = PeerAuthenticator(b"not-this-cluster's-secret", "n2")
    status, answer = await post_messages(app, body, stranger.sign("n1", body))
    assert status == 401
    assert "wrong peer signature" in answer["error"]
    assert node.term == 0


async def test_a_body_is_authenticated_before_it_is_parsed() -> None:
    """Garbage under a forged signature is a 401, not a 400: bytes from a
    stranger are never decoded."""
    _, app = make_app(Security(cluster_secret=SECRET))
    garbage = b"\xc1 not msgpack at all"
    stranger = PeerAuthenticator(b"not-this-cluster's-secret", "n2")
    status, answer = await post_messages(app, garbage, stranger.sign("n1", garbage))
    assert status == 401, answer


async def test_a_signed_peer_request_is_stepped_and_its_replay_refused() -> None:
    node, app = make_app(Security(cluster_secret=SECRET))
    body = heartbeat_from_n2(5)
    headers = PeerAuthenticator(SECRET, "n2").sign("n1", body)
    status, _ = await post_messages(app, body, headers)
    assert status == 204
    assert node.term == 5
    assert node.leader_id == "n2"
    status, answer = await post_messages(app, body, headers)
    assert status == 401
    assert "replayed" in answer["error"]


async def test_without_a_secret_peers_are_trusted_as_before() -> None:
    node, app = make_app(Security())
    status, _ = await post_messages(app, heartbeat_from_n2(7), {})
    assert status == 204
    assert node.term == 7


@pytest.mark.parametrize(
    ("method", "path", "json"),
    [
        ("POST", "/api/members", {"id": "n4", "url": "http://n4"}),
        ("DELETE", "/api/members/n3", None),
        ("POST", "/api/leadership/transfer", {"to": None}),
    ],
)
async def test_admin_requests_need_the_token(method: str, path: str, json: Any) -> None:
    node, app = make_app(Security(admin_token=TOKEN))
    client = app.test_client()
    before = counter("raft_admin_requests_refused_total")
    for authorization in (None, "Bearer wrong-token", f"Basic {TOKEN.decode()}"):
        headers = {"Authorization": authorization} if authorization else {}
        response = await client.open(path, method=method, json=json, headers=headers)
        assert response.status_code == 401, authorization
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "admin token" in (await response.get_json())["error"]
    assert counter("raft_admin_requests_refused_total") == before + 3
    # With the token the request reaches the node (which is no leader: 503).
    response = await client.open(
        path, method=method, json=json, headers={"Authorization": f"Bearer {TOKEN.decode()}"}
    )
    assert response.status_code == 503
    assert node.membership.get("n3") is not None


async def test_reads_and_writes_need_no_admin_token() -> None:
    _, app = make_app(Security(admin_token=TOKEN))
    client = app.test_client()
    assert (await client.get("/api/members")).status_code == 200
    assert (await client.get("/api/status")).status_code == 200
    assert (await client.put("/api/kv/k", json={"value": "v"})).status_code == 503  # no leader yet
