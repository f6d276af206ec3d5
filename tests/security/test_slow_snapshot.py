"""A signed snapshot batch that takes longer than the signature's window
to upload is accepted: its freshness is judged when its head arrives (a
review found every such snapshot refused at the end of its upload, so a
follower behind a slow link never caught up)."""

from __future__ import annotations

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


async def test_an_honest_batch_uploaded_for_longer_than_the_window_is_accepted() -> None:
    now = [1_800_000_000.0]

    def clock() -> float:
        return now[0]

    storage = MemoryNodeStorage(Snapshot(SnapshotMeta(0, 0, Membership.of(MEMBERS))))
    node = RaftNode("n1", MEMBERS["n1"], storage, Timing(), seed=1, security=Security(cluster_secret=SECRET))
    assert node.peer_auth is not None
    node.peer_auth._clock = clock  # the node's wall clock, under the test's hand
    node.peer_auth.not_before = now[0] - 60
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

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": MESSAGES_PATH,
        "raw_path": MESSAGES_PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (FROM_HEADER.lower().encode(), b"n2"),
            (b"content-type", b"application/msgpack"),
            (SIGNATURE_HEADER.lower().encode(), headers[SIGNATURE_HEADER].encode()),
        ],
        "client": ("10.0.0.2", 4242),
        "server": ("n1", 80),
        "extensions": {},
    }
    await app.asgi_app(scope, receive, send)
    assert status == 204, f"an honest peer request answered {status}"
    assert node.term == 5
