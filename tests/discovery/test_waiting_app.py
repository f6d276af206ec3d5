"""The page a node serves while it waits for its cluster: alive for the
liveness probe, not ready for the readiness probe (it is no member yet)."""

from __future__ import annotations

import json
from typing import Any

from raft_trio.discovery import WaitingApp


async def get(app: WaitingApp, path: str) -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
    await app(scope, receive, send)
    start, body = sent
    return start["status"], json.loads(body["body"])


async def test_waiting_node_is_alive_but_not_ready() -> None:
    app = WaitingApp(lambda: {"id": "node-0", "bootstrap": {"ack": None}})
    assert await get(app, "/healthz") == (200, {"ok": True})
    status, body = await get(app, "/readyz")
    assert status == 503
    assert body == {"ready": False, "reason": "waiting for the cluster to form (bootstrap)"}
    assert (await get(app, "/api/status"))[0] == 200
