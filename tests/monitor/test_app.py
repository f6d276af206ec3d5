"""The monitor's web app through Quart's test client: the merged stream
(``/events``), the snapshot, the page's files and ``TEMPLATES_DIR``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest
import trio
from quart.testing.connections import HTTPDisconnectError
from quart_trio.testing.connections import TestHTTPConnection as HttpConnection

from raft_monitor import ClusterView, Hub, create_app
from raft_monitor._app import PageSettings
from raft_monitor._client import HttpNodeClient, KvAnswer
from raft_trio import schema
from raft_trio.schema import quote_path

from .helpers import URLS, report


def cluster_view() -> ClusterView:
    view = ClusterView()
    for node_id in ("n1", "n2"):
        view.add_source(URLS[node_id], 0.0, seed=True)
    view.apply(
        URLS["n1"], report("status", node_id="n1", role="leader", term=3, leader_id="n1", commit=7), 0.0
    )
    view.apply(URLS["n2"], report("status", node_id="n2", term=3, leader_id="n1", commit=7), 0.0)
    return view


def parse_sse(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        name, data = "message", None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
        if data is not None:
            events.append((name, data))
    return events


async def read_events(connection: HttpConnection, count: int) -> list[tuple[str, Any]]:
    text = ""
    with trio.fail_after(5):
        while len(parse_sse(text)) < count:
            text += (await connection.receive()).decode()
    return parse_sse(text)


async def test_events_open_with_a_snapshot_then_push_changes() -> None:
    view, hub = cluster_view(), Hub()
    app = create_app(view, hub, None, None, PageSettings(service_name="raft"), clock=lambda: 0.5)
    client = app.test_client()
    async with client.request("/events") as opened:
        connection = cast(HttpConnection, opened)
        await connection.send_complete()
        [(name, snapshot)] = await read_events(connection, 1)
        assert connection.status_code == 200
        assert connection.headers is not None
        assert connection.headers["Content-Type"].startswith("text/event-stream")
        assert name == "snapshot"
        assert snapshot["service"] == "raft"
        assert [(n["id"], n["role"]) for n in snapshot["nodes"]] == [("n1", "leader"), ("n2", "follower")]
        assert snapshot["leader"] == {"id": "n1", "term": 3}
        assert [e["kind"] for e in snapshot["timeline"]][:3] == ["role", "term", "leader"]

        changes = view.mark_unreachable(URLS["n1"], 1.0, "connection refused")
        for key in changes.nodes:
            hub.publish_event("node", view.node_json(view.nodes[key], 1.0))
        for entry in changes.timeline:
            hub.publish_event("timeline", view.entry_json(entry))
        events = await read_events(connection, 2)
        assert events[0] == ("node", {**events[0][1], "id": "n1", "role": "unreachable"})
        assert events[0][1]["reason"] == "connection refused"
        assert events[1][0] == "timeline" and events[1][1]["new"] == "unreachable"

        hub.close()  # shutdown ends the page's stream
        with trio.fail_after(5), pytest.raises((HTTPDisconnectError, trio.EndOfChannel)):  # noqa: PT012
            while True:  # the rest of the body, then its end
                await connection.receive()
    assert len(hub) == 0


async def test_api_nodes_is_the_snapshot() -> None:
    app = create_app(cluster_view(), Hub(), None, None)
    response = await app.test_client().get("/api/nodes")
    assert response.status_code == 200
    body = await response.get_json()
    assert [n["id"] for n in body["nodes"]] == ["n1", "n2"]


async def test_the_page_and_its_files_are_served_from_the_package() -> None:
    client = create_app(ClusterView(), Hub(), None, None).test_client()
    page = await client.get("/")
    html = await page.get_data(as_text=True)
    assert page.status_code == 200 and "static/app.js" in html and "card-template" in html
    for name, marker in (("app.js", "data-node-id"), ("style.css", "data-role")):
        asset = await client.get(f"/static/{name}")
        assert asset.status_code == 200
        assert marker in await asset.get_data(as_text=True)
    assert (await client.get("/static/nope.js")).status_code == 404
    assert (await client.get("/static/../_app.py")).status_code == 404


async def test_templates_dir_overrides_what_it_holds(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>custom</title>")
    app = create_app(ClusterView(), Hub(), None, None, PageSettings(templates_dir=tmp_path))
    client = app.test_client()
    assert "custom" in await (await client.get("/")).get_data(as_text=True)
    # What it does not hold still comes from the package.
    assert (await client.get("/static/app.js")).status_code == 200


async def test_the_form_proxy_without_a_cluster_answers_503() -> None:
    client = create_app(ClusterView(), Hub(), None, None).test_client()
    response = await client.put("/kv/hello", json={"value": "x"})
    assert response.status_code == 503
    assert "error" in await response.get_json()


class RecordingKv:
    """Stands for the monitor's cluster client: records the key each form
    request names, and answers as a node would."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def kv(self, method: str, urls: Sequence[str], key: str, body: bytes | None = None) -> KvAnswer:
        self.keys.append(key)
        return KvAnswer(200, schema.KeyAnswer(key, "v", 1, 1, 1, 1), urls[0])


@pytest.mark.parametrize("key", ["/lead", "a//b", "line\nbreak", "trail/"])
async def test_the_form_proxy_passes_any_key_as_it_is(key: str) -> None:
    """A node takes any key (a leading ``/``, ``//``, a newline: its
    KeyConverter); the proxy in front of it must not drop or merge slashes,
    nor answer 404, for a key the CLI can write."""
    recorder = RecordingKv()
    app = create_app(cluster_view(), Hub(), None, cast(HttpNodeClient, recorder))
    client = app.test_client()
    path = "/kv/" + quote_path(key)
    for response in (await client.put(path, json={"value": "v"}), await client.get(path)):
        assert response.status_code == 200, await response.get_data(as_text=True)
    assert recorder.keys == [key, key]
