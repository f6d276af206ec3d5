"""The lean ASGI routes and the Quart routes answer the same request with
the same bytes: status, the headers that matter, and body. Both map node
outcomes through raft_trio.http.answers; these tests send each request
down both paths of real apps over three in-memory nodes (on Trio's fake
clock), and every kind of outcome through both adapters."""

from __future__ import annotations

import json
from typing import Any, get_args

import httpx
import pytest
import trio
import trio.testing

from raft_trio import schema
from raft_trio.core import AlreadyMember, ConfigChangeRejected, NotMember, RaftError
from raft_trio.http._respond import quart_response
from raft_trio.http.answers import Answer, Target, for_exception, for_result
from raft_trio.http.app import create_app
from raft_trio.http.auth import AuthGate
from raft_trio.http.cors import MemberOrigins
from raft_trio.http.lean import LeanRoutes, send_answer
from raft_trio.kv import (
    AuthChanged,
    AuthFailure,
    AuthRefused,
    CasFailed,
    Deleted,
    LeaseGranted,
    LeaseNotFound,
    LeaseRevoked,
    PermissionDenied,
    Result,
    TxnDone,
    Written,
)
from raft_trio.node import (
    LeaseMissing,
    NotLeaderError,
    RaftNode,
    ReadAborted,
    Unavailable,
    WriteFailed,
    WriteIndeterminate,
)
from raft_trio.node.watches import TooManyWatchers, WatchClosed, WatchCompacted
from tests.node.harness import Cluster

#: Headers whose presence and value are part of an answer (hypercorn adds
#: date and server to both alike).
HEADERS = ("content-type", "content-length", "x-raft-revision", "location", "x-raft-leader", "retry-after")

Sent = tuple[int, dict[str, str], bytes]


def scope_of(method: str, path: str, headers: dict[str, str], query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 9001),
    }


async def call(
    app: Any,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    keep: tuple[str, ...] | None = HEADERS,
    query: bytes = b"",
) -> Sent:
    """One request to an ASGI app (with the query string ``query``); what
    it sent back (of the headers, those in ``keep``; None: all)."""
    headers = dict(headers or {})
    if body:
        headers.setdefault("content-type", "application/json")
        headers["content-length"] = str(len(body))
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        await trio.sleep_forever()
        raise AssertionError

    status = 0
    sent_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for name, value in message.get("headers", []):
                sent_headers[name.decode().lower()] = value.decode()
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope_of(method, path, headers, query), receive, send)
    kept = {name: value for name, value in sent_headers.items() if keep is None or name in keep}
    return status, kept, b"".join(chunks)


def both_paths(node: RaftNode) -> tuple[LeanRoutes, Any, list[str]]:
    """The app as served (CORS outermost, then the auth gate, then the lean
    routes), Quart's own app, and the paths the lean routes handed over to
    Quart."""
    served = create_app(node).asgi_app
    assert isinstance(served, MemberOrigins)  # CORS headers for both alike, outermost
    gate = served.app
    assert isinstance(gate, AuthGate)
    lean = gate.app
    assert isinstance(lean, LeanRoutes)
    quart = lean.app
    handed_over: list[str] = []

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        handed_over.append(scope["path"])
        await quart(scope, receive, send)

    lean.app = spy
    return lean, quart, handed_over


async def test_the_same_request_gets_the_same_bytes_on_both_paths(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=10.0)
    lean, quart, handed_over = both_paths(leader)
    put = json.dumps({"value": "v1"}).encode()
    cas = json.dumps({"value": "v2", "expect": "not v1"}).encode()
    requests: list[tuple[str, str, bytes, dict[str, str]]] = [
        # A write retried under its Idempotency-Key answers its first outcome.
        ("PUT", "/api/kv/k1", put, {"Idempotency-Key": "write-1"}),
        ("PUT", "/api/kv/k1", cas, {"Idempotency-Key": "cas-1"}),
        ("GET", "/api/kv/k1", b"", {}),
        ("GET", "/api/kv/absent", b"", {}),
        ("PUT", "/api/kv/k1", json.dumps({"value": "v", "lease": "ab"}).encode(), {"Idempotency-Key": "l-1"}),
        ("PUT", "/api/kv/k1", put, {"Idempotency-Key": "x" * 300}),
    ]
    seen = []
    for method, path, body, headers in requests:
        first = await call(lean, method, path, body, headers)
        second = await call(quart, method, path, body, headers)
        assert first == second, (method, path, body)
        seen.append((first[0], json.loads(first[2]).get("code")))
    assert seen == [
        (200, None),
        (409, "compare_failed"),
        (200, None),
        (404, "key_not_found"),
        (404, "lease_not_found"),
        (400, "bad_request"),
    ]
    assert handed_over == [], "the lean routes served none of these themselves"
    # A follower's answer: the same 307 from both.
    follower = next(h.node for h in cluster.hosts.values() if h.node is not leader)
    lean, quart, _ = both_paths(follower)
    first = await call(lean, "GET", "/api/kv/k1")
    assert first == await call(quart, "GET", "/api/kv/k1")
    assert first[0] == 307 and first[1]["location"] == f"{leader.url}/api/kv/k1"


def outcomes(node: RaftNode) -> list[Answer]:
    """Every kind of outcome a request can have, as answered."""
    target = Target("", "/api/kv/a key", b"x=1")
    errors: list[Exception] = [
        NotLeaderError("n2", "http://n2:9001"),
        NotLeaderError(None, None),
        Unavailable("a leadership transfer is under way"),
        ReadAborted("leadership lost"),
        WriteFailed("overwritten"),
        WriteIndeterminate("timed out"),
        TooManyWatchers("too many"),
        WatchClosed("stopping"),
        AlreadyMember("n2 is already a member"),
        NotMember("n9 is not a member"),
        ConfigChangeRejected("another membership change is still in progress"),
        RaftError("n9 cannot take leadership"),
        LeaseMissing("lease ab not found"),
        WatchCompacted(17),
    ]
    results: list[Result] = [
        Written("k", "v", 5, 3, 2, 0xAB),
        CasFailed("k", None, 6),
        Deleted("k", True, 7),
        LeaseNotFound(0xAB, 8),
        TxnDone(True, [Written("k", "v", 9, 9, 1)], 9),
        LeaseGranted(0xAB, 10),
        LeaseRevoked(0xAB, True, ["k"], 11),
        LeaseRevoked(0xAB, False, [], 12),
        PermissionDenied("no write permission on 'k'", 13),
        AuthChanged(14),
        *(AuthRefused(code, f"refused: {code}", 15) for code in get_args(AuthFailure)),
    ]
    return [for_exception(e, node, target) for e in errors] + [for_result(r) for r in results]


async def test_every_outcome_is_sent_alike_by_both_adapters(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    node = cluster.hosts["n1"].node
    codes = []
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for answer in outcomes(node):
        sent.clear()
        await send_answer(send, answer)
        lean_headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
        response = quart_response(answer)
        quart_headers = {k.lower(): v for k, v in response.headers.items()}
        quart_body = await response.get_data()
        assert (sent[0]["status"], sent[1]["body"]) == (response.status_code, quart_body), answer
        assert {k: v for k, v in lean_headers.items() if k in HEADERS} == {
            k: v for k, v in quart_headers.items() if k in HEADERS
        }, answer
        body = json.loads(quart_body)
        if answer.status >= 300:
            assert isinstance(body["error"], str) and body["error"], answer
            codes.append((answer.status, body["code"]))
            assert body["code"] in set(schema.Code), answer
            if answer.status == 503 and body["indeterminate"] is False:
                assert quart_headers["retry-after"] == "1"
    assert codes == [
        (307, "not_leader"),
        (503, "no_leader"),
        (503, "unavailable"),
        (503, "unavailable"),
        (503, "unavailable"),
        (503, "indeterminate"),
        (503, "unavailable"),
        (503, "unavailable"),
        (409, "already_member"),
        (409, "not_member"),
        (409, "change_rejected"),
        (400, "bad_request"),
        (404, "lease_not_found"),
        (410, "compacted"),
        (409, "compare_failed"),
        (404, "lease_not_found"),
        (404, "lease_not_found"),
        (403, "permission_denied"),
        (409, "user_exists"),
        (404, "user_not_found"),
        (409, "role_exists"),
        (404, "role_not_found"),
        (404, "grant_not_found"),
        (409, "root_protected"),
        (409, "root_missing"),
    ]


def test_a_redirect_keeps_the_path_quoted_and_the_query() -> None:
    target = Target("/root", "/api/kv/a key/ü", b"consistency=linearizable")
    assert (
        target.on("http://n2:9001/") == "http://n2:9001/root/api/kv/a%20key/%C3%BC?consistency=linearizable"
    )


def test_an_unknown_exception_is_not_hidden_behind_an_answer(cluster_free_node: RaftNode) -> None:
    with pytest.raises(ZeroDivisionError):
        for_exception(ZeroDivisionError("a bug"), cluster_free_node, Target("", "/api/kv/k"))


@pytest.fixture
def cluster_free_node() -> RaftNode:
    from raft_trio.core import Membership, Snapshot, SnapshotMeta
    from raft_trio.node import Timing
    from tests.node.harness import MemoryNodeStorage

    storage = MemoryNodeStorage(Snapshot(SnapshotMeta(0, 0, Membership.of({"n1": "http://n1"}))))
    return RaftNode("n1", "http://n1", storage, Timing(), seed=1)


def test_a_redirect_keeps_dot_segments_of_a_key() -> None:
    """A follower's redirect for the key ``x/../y`` (sent as ``x/%2E%2E/y``)
    must not say ``/api/kv/x/../y``: any client that follows it (httpx,
    curl, browsers) removes the dot segments and writes the key ``y``."""
    for key in ("x/../y", "..", ".", "a/./b"):
        location = Target("/root", "/api/kv/" + key, b"").on("http://n2:9001")
        assert httpx.URL(location).path == "/root/api/kv/" + key
