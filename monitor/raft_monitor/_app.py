"""The monitor's web app (Quart-Trio): the page, its merged event stream,
a JSON snapshot, and a small proxy so the page's form can write and read
keys through the cluster.

Routes:

- ``GET /``: the page (``index.html``), ``GET /static/<file>``: its script
  and style. Both come from ``TEMPLATES_DIR`` when set (a file missing
  there falls back to the one shipped in the package).
- ``GET /events``: server-sent events. First ``snapshot`` (every node, the
  leader, the timeline, the chart's recent samples), then ``node`` (one
  node's whole card), ``removed`` (a card to take away), ``timeline`` (one
  entry) as they happen, and ``sample`` (the chart's next point, every
  ``REFRESH_RATE_MILLIS``); a keep-alive comment after 15 s of quiet.
- ``GET /api/nodes``: the snapshot as JSON.
- ``PUT /kv/<key>`` body ``{"value": ...}``, ``GET /kv/<key>``: forwarded to
  the cluster (leader first, following its redirects); the node's answer
  and status code come back as they are, with ``X-Raft-Node`` naming the
  node that answered.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import trio
from quart import Response, request, send_from_directory
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import PathConverter

from ._client import HttpNodeClient
from ._hub import Hub, encode_sse
from ._state import UNREACHABLE, ClusterView
from ._watch import Watcher

log = logging.getLogger(__name__)

PACKAGE_STATIC = Path(__file__).resolve().parent / "static"
#: A page's stream gets a comment after this long without events, so that
#: proxies keep it open.
PAGE_KEEPALIVE_SECONDS = 15.0
#: The largest body the form may send (a node takes values up to 1 MiB,
#: JSON-escaped up to 6 bytes a character).
MAX_BODY_BYTES = 8 << 20


class KeyConverter(PathConverter):
    """A key as a node takes it (its own ``KeyConverter``): any characters,
    ``/`` included, even first. Werkzeug's ``path`` (``[^/].*?``) answered
    404 to a key holding a newline and redirected ``/kv//a`` to ``/kv/a``,
    so the form wrote key ``a`` when asked for ``/a``."""

    regex = r"[\s\S]+?"
    part_isolating = False


@dataclasses.dataclass(frozen=True)
class PageSettings:
    service_name: str | None = None
    templates_dir: Path | None = None
    refresh_ms: int = 500


def create_app(
    view: ClusterView,
    hub: Hub,
    watcher: Watcher | None,
    client: HttpNodeClient | None,
    settings: PageSettings | None = None,
    clock: Callable[[], float] = trio.current_time,
) -> QuartTrio:
    """The app; ``watcher`` and ``client`` may be None in tests (no chart
    samples, no key-value proxy)."""
    settings = settings or PageSettings()
    app = QuartTrio(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.url_map.converters["key"] = KeyConverter
    # ``//`` inside a key is part of the key, not a typo to redirect away.
    app.url_map.merge_slashes = False

    def asset_dir(name: str) -> Path:
        custom = settings.templates_dir
        if custom is not None and (custom / name).is_file():
            return custom
        return PACKAGE_STATIC

    async def send_asset(name: str) -> Response:
        response = await send_from_directory(asset_dir(name), name)
        response.headers["Cache-Control"] = "no-cache"
        return response

    def snapshot() -> dict[str, Any]:
        doc = view.snapshot_json(clock())
        doc["service"] = settings.service_name
        doc["refresh_ms"] = settings.refresh_ms
        doc["samples"] = watcher.sampler.history_json() if watcher is not None else []
        return doc

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> tuple[dict[str, Any], int]:
        return {"error": exc.description or exc.name}, exc.code or 500

    @app.get("/")
    async def index() -> Response:
        return await send_asset("index.html")

    @app.get("/static/<path:name>")
    async def static_file(name: str) -> Response:
        if name == "index.html":
            raise NotFound()
        return await send_asset(name)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/api/nodes")
    async def nodes() -> dict[str, Any]:
        return snapshot()

    @app.get("/events")
    async def events() -> Response:
        async def stream() -> AsyncIterator[bytes]:
            # Subscribe before taking the snapshot: an event published in
            # between then arrives twice, which the page tolerates (node
            # events are whole states, timeline entries carry a sequence
            # number), rather than not at all.
            async with hub.subscribe() as channel:
                yield b"retry: 1000\n" + encode_sse("snapshot", snapshot())
                while True:
                    with trio.move_on_after(PAGE_KEEPALIVE_SECONDS) as waited:
                        try:
                            chunk = await channel.receive()
                        except (trio.EndOfChannel, trio.ClosedResourceError):
                            return
                    yield b": keep-alive\n\n" if waited.cancelled_caught else chunk

        response = Response(stream(), content_type="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"
        response.timeout = None
        return response

    def candidate_urls() -> list[str]:
        """The leader first, then the nodes that answer, then the rest."""
        leader = view.leader()
        ordered = sorted(
            view.nodes.values(),
            key=lambda n: (n is not leader, n.role == UNREACHABLE, n.key),
        )
        return [n.url for n in ordered]

    async def forward(method: str, key: str, body: bytes | None) -> Response:
        if client is None:
            return _json_response({"error": "this monitor has no cluster client"}, 503)
        urls = candidate_urls()
        if not urls:
            return _json_response({"error": "no node is known yet"}, 503)
        answer = await client.kv(method, urls, key, body)
        response = Response(
            msgspec.json.encode(answer.body), status=answer.status, content_type="application/json"
        )
        for name, value in answer.headers.items():
            response.headers[name] = value
        if answer.node_url is not None:
            node = view.node_for(answer.node_url)
            response.headers["X-Raft-Node"] = node.key if node is not None else answer.node_url
        return response

    @app.put("/kv/<key:key>")
    async def put_key(key: str) -> Response:
        body = await request.get_data(as_text=False)
        assert isinstance(body, bytes)
        return await forward("PUT", key, body)

    @app.get("/kv/<key:key>")
    async def get_key(key: str) -> Response:
        return await forward("GET", key, None)

    return app


def _json_response(body: Any, status: int) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
