"""Running the monitor: the watcher, DNS discovery and the web server in
one nursery, stopped by an event (SIGTERM and Ctrl-C set it)."""

from __future__ import annotations

import dataclasses
import logging
import socket
import ssl
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import trio

from raft_trio.asgi import serve_app

from ._app import PageSettings, create_app
from ._client import HttpNodeClient, resolve_addresses
from ._hub import Hub
from ._state import ClusterView
from ._watch import Watcher, WatchSettings

log = logging.getLogger(__name__)

#: How often DNS discovery looks for new addresses.
DISCOVERY_PERIOD_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class MonitorSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    #: Node URLs to watch from the start (membership adds the others).
    nodes: tuple[str, ...] = ()
    #: DNS name whose A records are the nodes (the container way).
    discover: str | None = None
    node_port: int = 9001
    api_prefix: str = "/api"
    templates_dir: Path | None = None
    refresh_ms: int = 500
    watch: WatchSettings = dataclasses.field(default_factory=WatchSettings)
    #: ``RAFT_TLS_CA``: verify the nodes' HTTPS against this bundle; with it
    #: set, discovered addresses become ``https://`` URLs too.
    tls_ca: str | None = None
    #: With auth on: the user the monitor logs in as (``--user`` or
    #: ``RAFT_TRIO_USER``), or the admin token (``RAFT_ADMIN_TOKEN``).
    user: str | None = None
    password: str | None = None
    admin_token: str | None = None


async def run_monitor(
    settings: MonitorSettings,
    stop: trio.Event,
    *,
    listener: socket.socket | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``stop`` is set, on ``listener`` if the port is bound
    already (:func:`raft_trio.asgi.bind_listener`); reports the bound
    addresses."""
    view = ClusterView(wall_offset=time.time() - trio.current_time())
    hub = Hub()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=32)
    verify = ssl.create_default_context(cafile=settings.tls_ca)
    async with httpx.AsyncClient(trust_env=False, limits=limits, verify=verify) as http:
        client = HttpNodeClient(
            http,
            settings.api_prefix,
            user=settings.user,
            password=settings.password,
            admin_token=settings.admin_token,
        )
        watcher = Watcher(view, hub, client, settings.watch)
        page = PageSettings(settings.discover, settings.templates_dir, settings.refresh_ms)
        app = create_app(view, hub, watcher, client, page)
        http_shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(watcher.run, settings.nodes)
            if settings.discover:
                scheme = "https" if settings.tls_ca else "http"
                nursery.start_soon(
                    partial(discover_nodes, watcher, settings.discover, settings.node_port, scheme=scheme)
                )
            async with trio.open_nursery() as server:
                addresses = await server.start(
                    partial(serve_app, app, settings.host, settings.port, http_shutdown, listener=listener)
                )
                log.info("monitor serving on %s", ", ".join(addresses))
                task_status.started(addresses)
                await stop.wait()
                log.info("stopping")
                hub.close()  # end the pages' streams first, then the server
                http_shutdown.set()
            nursery.cancel_scope.cancel()
    log.info("stopped")


async def discover_nodes(
    watcher: Watcher,
    name: str,
    port: int,
    period: float = DISCOVERY_PERIOD_SECONDS,
    resolve: Callable[[str], list[str]] = resolve_addresses,
    scheme: str = "http",
) -> None:
    """Watch every address ``name`` resolves to, now and as replicas come;
    forget those that leave (a replica stopped or scaled away): the page
    drops them once they are unreachable and no longer members.

    dnspython's asyncio resolver does not run on Trio: the blocking one runs
    in a thread."""
    seen: set[str] = set()
    while True:
        addresses = set(await trio.to_thread.run_sync(resolve, name))
        if not addresses and not seen:
            log.warning("discovery: %s resolves to nothing (yet)", name)
        for address in sorted(addresses - seen):
            log.info("discovery: %s has %s", name, address)
        if addresses:  # (no answer at all may be a DNS failure: forget nothing then)
            for address in sorted(seen - addresses):
                log.info("discovery: %s no longer has %s", name, address)
                watcher.forget(f"{scheme}://{address}:{port}")
            seen = addresses
        for address in sorted(addresses):
            watcher.add(f"{scheme}://{address}:{port}")
        await trio.sleep(period)
