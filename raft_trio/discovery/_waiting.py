"""The page a node serves while it waits for its cluster to form."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from .. import schema


class WaitingApp:
    """The ASGI app a node serves while it waits for its cluster: its id and
    bootstrap state on ``/api/status``, ``/healthz``, and 503 for the rest."""

    def __init__(self, status: Callable[[], schema.Status], api_prefix: str = "/api") -> None:
        self.status = status
        self.api_prefix = api_prefix

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        root: str = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root) :]
        headers = [(b"content-type", b"application/json")]
        body: msgspec.Struct
        if path == f"{self.api_prefix}/status" and scope["method"] in ("GET", "HEAD"):
            status, body = 200, self.status()
        elif path == "/healthz":
            status, body = 200, schema.Health(True)
        elif path == "/readyz":
            # Not a member of any cluster yet: not ready (the kubelet keeps
            # the pod out of the client Service).
            me = self.status()
            reason = "waiting for the cluster to form (bootstrap)"
            status, body = 503, schema.Readiness(False, reason, me.id, me.role, me.term, None, 0, None)
        else:
            status = 503
            message = "this node is waiting for its cluster to form (bootstrap); try again shortly"
            body = schema.UnavailableAnswer(message, schema.Code.UNAVAILABLE, False)
            headers.append((b"retry-after", b"1"))
        data = msgspec.json.encode(body) + b"\n"
        headers.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})
