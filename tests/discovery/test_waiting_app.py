"""The page a node serves while it waits for its cluster: alive for the
liveness probe, not ready for the readiness probe (it is no member yet)."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from raft_trio import schema
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


def waiting_status() -> schema.Status:
    return schema.Status(
        id="node-0",
        role="follower",
        term=0,
        leader_id=None,
        leader_url=None,
        commit_index=0,
        applied_index=0,
        last_log_index=0,
        members=[],
        bootstrap=schema.Bootstrap(expect=3, ack=None, seen=["node-0"]),
    )


async def test_waiting_node_is_alive_but_not_ready() -> None:
    app = WaitingApp(waiting_status)
    assert await get(app, "/healthz") == (200, {"ok": True})
    status, body = await get(app, "/readyz")
    assert status == 503
    assert msgspec.convert(body, schema.Readiness) == schema.Readiness(
        False, "waiting for the cluster to form (bootstrap)", "node-0", "follower", 0, None, 0, None
    )
    status, body = await get(app, "/api/status")
    assert status == 200
    assert msgspec.convert(body, schema.Status) == waiting_status()


async def test_anything_else_is_unavailable_with_a_code() -> None:
    status, body = await get(WaitingApp(waiting_status), "/api/kv/k")
    assert status == 503
    assert body["code"] == "unavailable" and body["indeterminate"] is False
