"""Starting and stopping one node process: storage recovery, the runtime,
the HTTP server, the payload supervisor and joining a cluster, all in one
nursery; SIGTERM or Ctrl-C stops it cleanly."""

from __future__ import annotations

import dataclasses
import logging
import signal
from functools import partial

import httpx
import trio

from ..core import Membership, Snapshot, SnapshotMeta
from ..http.app import HttpSettings, create_app
from ..http.server import serve_app
from ..storage import DurableStorage, SnapshotPolicy
from .payload import PayloadSupervisor
from .runtime import RaftNode, Timing

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class NodeSettings:
    node_id: str
    listen_host: str
    listen_port: int
    data_dir: str
    #: Static initial membership, id -> URL (used only by a new data dir).
    peers: dict[str, str]
    #: How the others reach this node (its entry in ``peers``, or --advertise).
    url: str
    join: str | None = None
    timing: Timing = dataclasses.field(default_factory=Timing)
    http: HttpSettings = dataclasses.field(default_factory=HttpSettings)
    root_path: str = ""
    leader_script: str | None = None
    follower_script: str | None = None
    snapshot_entries: int = 10_000


async def run_node(
    settings: NodeSettings, *, task_status: trio.TaskStatus[RaftNode] = trio.TASK_STATUS_IGNORED
) -> None:
    bootstrap = None
    if settings.peers:
        bootstrap = Snapshot(SnapshotMeta(0, 0, Membership.of(settings.peers)))
    storage = await trio.to_thread.run_sync(
        partial(
            DurableStorage.open,
            settings.data_dir,
            settings.node_id,
            initial_snapshot=bootstrap,
            policy=SnapshotPolicy(max_entries=settings.snapshot_entries),
        )
    )
    try:
        node = RaftNode(settings.node_id, settings.url, storage, settings.timing)
        if bootstrap is not None and node.core.membership != bootstrap.meta.membership:
            log.info("data dir already holds a cluster; --peers is ignored")
        payload = PayloadSupervisor(settings.leader_script, settings.follower_script, settings.node_id)
        node.on_role_change(
            lambda *_: payload.role_changed(node.role_name, node.core.term, node.leader_url())
        )
        app = create_app(node, settings.http)
        stop = trio.Event()
        http_shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signals, stop)
            await nursery.start(node.run)
            nursery.start_soon(payload.run)
            if settings.join and not node.core.membership.members:
                nursery.start_soon(_join, settings.join, settings.node_id, settings.url)
            async with trio.open_nursery() as http:
                addresses = await http.start(
                    serve_app,
                    app,
                    settings.listen_host,
                    settings.listen_port,
                    http_shutdown,
                    settings.root_path,
                )
                log.info("node %s serving on %s as %s", settings.node_id, ", ".join(addresses), settings.url)
                task_status.started(node)
                await stop.wait()
                log.info("stopping")
                node.close()
                http_shutdown.set()
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(storage.close)
    log.info("stopped")


async def _stop_on_signals(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            stop.set()
            return


async def _join(cluster_url: str, node_id: str, url: str) -> None:
    """Ask the cluster to add this node (as a learner) until it answers."""
    async with httpx.AsyncClient(follow_redirects=True, timeout=10, trust_env=False) as client:
        while True:
            try:
                response = await client.post(
                    cluster_url.rstrip("/") + "/api/members", json={"id": node_id, "url": url}
                )
                if response.status_code == 200:
                    log.info("joined the cluster through %s", cluster_url)
                    return
                if response.status_code == 409 and "already a member" in response.text:
                    return
                log.warning("join: %s answered %s %s", cluster_url, response.status_code, response.text[:200])
            except httpx.HTTPError as error:
                log.warning("join: %s unreachable: %r", cluster_url, error)
            await trio.sleep(1.0)
