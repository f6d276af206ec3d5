"""Lean ASGI routes in front of the Quart app for the hot paths.

Quart's per-request machinery (request and response objects, contexts,
signals, the before/after hooks, quart-schema's validation wrappers) cost
about 1 ms of CPU a request on these machines, more than everything Raft
does for a write. :class:`LeanRoutes` wraps ``app.asgi_app`` and serves the
peer endpoint ``POST /raft/messages`` with plain ASGI; every other request
goes to Quart unchanged. The Quart route for the same path stays (hidden
from the docs) for ``app.test_client()``; both go through
:class:`PeerReceiver`, that is :func:`raft_trio.transport.check_peer_head`
and :func:`raft_trio.transport.accept_batch`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..node import RaftNode
from ..node import metrics as node_metrics
from ..peer_auth import RefusalLog
from ..transport import MESSAGES_PATH, PeerRequestError, accept_batch, check_peer_head

#: Peer batches: up to 256 messages of up to 1 MiB of entries, or a snapshot.
MAX_PEER_BODY_BYTES = 1 << 30

_json = msgspec.json.Encoder()
#: ``Connection: close`` for an answer given with the request body unread
#: (see ``raft_trio.http.app.BODY_LEFT_UNREAD``).
BODY_LEFT_UNREAD = [(b"connection", b"close")]


def route_path(scope: dict[str, Any]) -> str:
    """The request path the way Quart matches it: without ``root_path``."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path != root and path.startswith(root):
        return path[len(root) :]
    return path


def request_headers(scope: dict[str, Any]) -> dict[str, str]:
    """The request's headers, names in lower case (the last of repeats)."""
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


async def send_json(
    send: Any, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = _json.encode(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def read_body(receive: Any, limit: int) -> bytes | None:
    """The whole request body, or None if it exceeds ``limit`` bytes or
    the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # http.disconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class PeerReceiver:
    """The receiving side of ``POST /raft/messages`` (lean and Quart route):
    the checks of the transport, and refused signatures logged and counted."""

    def __init__(self, node: RaftNode, refusals: RefusalLog) -> None:
        self.node = node
        self.refusals = refusals

    def head(self, headers: dict[str, str]) -> str:
        return check_peer_head(headers, self.node.peer_auth)

    def accept(self, sender: str, headers: dict[str, str], body: bytes) -> None:
        self.node.step(accept_batch(sender, headers, body, self.node.peer_auth))

    def refused(self, exc: PeerRequestError, remote: str) -> None:
        if exc.status == 401:
            node_metrics.PEER_REQUESTS_REFUSED.inc()
            self.refusals.refused("a peer request", f"{remote} claiming to be {exc.sender!r}", exc.message)


class LeanRoutes:
    def __init__(self, app: Any, peers: PeerReceiver, too_large_message: str) -> None:
        self.app = app
        self.peers = peers
        self.too_large_message = too_large_message

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and route_path(scope) == MESSAGES_PATH:
            await self.peer_messages(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def peer_messages(self, scope: Any, receive: Any, send: Any) -> None:
        headers = request_headers(scope)
        body_read = False
        try:
            sender = self.peers.head(headers)
            length = headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > MAX_PEER_BODY_BYTES:
                await send_json(send, 413, {"error": self.too_large_message}, BODY_LEFT_UNREAD)
                return
            body = await read_body(receive, MAX_PEER_BODY_BYTES)
            if body is None:
                await send_json(send, 413, {"error": self.too_large_message}, BODY_LEFT_UNREAD)
                return
            body_read = True
            self.peers.accept(sender, headers, body)
        except PeerRequestError as exc:
            client = scope.get("client")
            self.peers.refused(exc, str(client[0]) if client else "unknown")
            # As the Quart route: a refusal, or an answer before the body
            # was read, closes the connection (the unread body is in the way).
            close = exc.status == 401 or not body_read
            await send_json(send, exc.status, {"error": exc.message}, BODY_LEFT_UNREAD if close else None)
            return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
