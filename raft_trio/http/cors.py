"""CORS for the cluster's own origins: a node's ``/docs`` page reaches
the leader.

Swagger UI on a follower's ``/docs`` sends a write to the leader (see
:mod:`raft_trio.http.docs`), another port and so another origin: the
leader must say that the follower's origin may read its answers, and
answer the browser's preflight. It says so for the origins of the
cluster's members' URLs only, the pages the cluster serves itself:

- any other origin gets no CORS header at all, so a page elsewhere can
  neither read an answer nor send a preflighted request (PUT, DELETE,
  JSON bodies, an ``Authorization`` header);
- ``Access-Control-Allow-Credentials`` is never sent: a browser sends no
  cookie or stored credential along; the admin token travels only when
  the person at the docs page typed it in (its Authorize button);
- ``Origin: null`` (what a browser sends after a redirect to another
  origin, and what any sandboxed page sends) is never allowed;
- the peer endpoints (``/raft/messages``, ``/raft/stream``) are left alone.

A browser's request that needs no preflight (a form's POST) is refused
separately when its body is not labelled JSON (raft_trio.http.bodies).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..peer.wire import PEER_PATHS
from .answers import route_path

#: Methods and request headers the docs page uses (and a watch resumes with).
ALLOW_METHODS = b"GET, PUT, POST, DELETE"
ALLOW_HEADERS = b"content-type, authorization, idempotency-key, last-event-id"
#: Answer headers a page may read besides the simple ones.
EXPOSE_HEADERS = b"x-raft-revision, x-raft-leader, location, retry-after"
#: How long a browser may keep a preflight's answer, in seconds.
MAX_AGE = b"600"
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` as a browser writes it in ``Origin``
    (no default port, host in lower case); None for what is not a URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


class MemberOrigins:
    """ASGI middleware: CORS answers for the origins ``allowed()`` gives
    (the members' URLs, asked for each request that carries ``Origin``,
    so that a member added or removed counts at once)."""

    def __init__(self, app: Any, allowed: Callable[[], set[str]]) -> None:
        self.app = app
        self.allowed = allowed

    def allowed_origin(self, scope: Any) -> bytes | None:
        if scope["type"] != "http" or route_path(scope) in PEER_PATHS:
            return None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
                known = {origin_of(url) for url in self.allowed()}
                return value if origin_of(origin) in known and origin_of(origin) == origin else None
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        origin = self.allowed_origin(scope)
        if origin is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        (b"access-control-allow-origin", origin),
                        (b"access-control-allow-methods", ALLOW_METHODS),
                        (b"access-control-allow-headers", ALLOW_HEADERS),
                        (b"access-control-max-age", MAX_AGE),
                        (b"vary", b"Origin"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Any) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"access-control-allow-origin", origin),
                    (b"access-control-expose-headers", EXPOSE_HEADERS),
                    (b"vary", b"Origin"),
                ]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_cors)
