"""A signed snapshot batch as the peer endpoint takes it: one that takes
longer than the signature's window to upload is accepted (its freshness is
judged when its head arrives: a review found every such snapshot refused
at the end of its upload, so a follower behind a slow link never caught
up), and a stranger's is refused before any of its body is read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from raft_trio.core import Membership, Snapshot, SnapshotMeta
from raft_trio.core._messages import AppendEntries
from raft_trio.http.app import create_app
from raft_trio.node import RaftNode, Timing
from raft_trio.peer.auth import MAX_CLOCK_SKEW_S, SIGNATURE_HEADER, PeerAuthenticator
from raft_trio.peer.wire import FROM_HEADER, MESSAGES_PATH, encode_batch
from raft_trio.security import Security
from tests.node.harness import MemoryNodeStorage

SECRET = b"a-cluster-secret-for-tests"
MEMBERS = {"n1": "http://n1", "n2": "http://n2", "n3": "http://n3"}


def signed_node(clock: Callable[[], float]) -> RaftNode:
    storage = MemoryNodeStorage(Snapshot(SnapshotMeta(0, 0, Membership.of(MEMBERS))))
    node = RaftNode("n1", MEMBERS["n1"], storage, Timing(), seed=1, security=Security(cluster_secret=SECRET))
    assert node.peer_auth is not None
    node.peer_auth._clock = clock  # the node's wall clock, under the test's hand
    node.peer_auth.not_before = clock() - 60
    return node


def peer_post(signature: str, length: int | None = None) -> dict[str, Any]:
    """The ASGI scope of ``POST /raft/messages`` from n2 to n1."""
    headers = [
        (FROM_HEADER.lower().encode(), b"n2"),
        (b"content-type", b"application/msgpack"),
        (SIGNATURE_HEADER.lower().encode(), signature.encode()),
    ]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": MESSAGES_PATH,
        "raw_path": MESSAGES_PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("10.0.0.2", 4242),
        "server": ("n1", 80),
        "extensions": {},
    }


async def test_an_honest_batch_uploaded_for_longer_than_the_window_is_accepted() -> None:
    now = [1_800_000_000.0]

    def clock() -> float:
        return now[0]

    node = signed_node(clock)
    app: Any = create_app(node)
    body = encode_batch([AppendEntries(5, "n2", "n1", 0, 0, (), 0)])
    # A heartbeat stands in for a snapshot: only the upload's duration matters.
    headers = PeerAuthenticator(SECRET, "n2", clock).sign("n1", body)
    pieces = [body[i : i + 1] for i in range(len(body))]
    step = (MAX_CLOCK_SKEW_S + 10) / len(pieces)
    status: int | None = None

    async def receive() -> dict[str, Any]:
        now[0] += step
        piece = pieces.pop(0)
        return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app.asgi_app(peer_post(headers[SIGNATURE_HEADER]), receive, send)
    assert status == 204, f"an honest peer request answered {status}"
    assert node.term == 5


async def test_a_strangers_batch_is_refused_before_its_body_is_read() -> None:
    """Someone without the secret announces a GiB: the 401 comes from the
    head alone (version 1 signed the body itself, so its MAC could only be
    checked after reading and hashing all of it), and the connection is
    closed unread."""
    now = 1_800_000_000.0
    node = signed_node(lambda: now)
    app: Any = create_app(node)
    stranger = PeerAuthenticator(b"not-this-cluster-secret", "n2", lambda: now)
    body = encode_batch([AppendEntries(5, "n2", "n1", 0, 0, (), 0)])
    received: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        received.append({})
        return {"type": "http.request", "body": body, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    signature = stranger.sign("n1", body)[SIGNATURE_HEADER]
    await app.asgi_app(peer_post(signature, length=1 << 30), receive, send)
    assert received == [], "the body of a stranger's request was read"
    assert sent[0]["status"] == 401
    assert b"wrong peer signature" in sent[1]["body"]
    assert node.term == 0
