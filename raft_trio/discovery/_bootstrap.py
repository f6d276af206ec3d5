"""The waiting phase of a node with a new data directory: it serves the
waiting page, looks at the replicas of its service twice a second, and
decides (:func:`._decision.decide`) until it knows how it starts; its ack
is kept durably in the data directory."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from functools import partial
from pathlib import Path

import trio

from .. import schema
from ..asgi import serve_app
from ._decision import Decision, decide
from ._dns import DnsError, DnsResolver
from ._probe import probe_all, same_cluster
from ._settings import DiscoverySettings
from ._waiting import WaitingApp

log = logging.getLogger("raft_trio.discovery")

#: How often a waiting node looks again.
WAIT_ROUND_S = 0.5
#: The seed this node acked, in its data directory.
ACK_FILE = "bootstrap-ack.json"
#: How often the same "still waiting" line is logged again.
REPEAT_LOG_S = 10.0


class Bootstrap:
    """The waiting phase of one node: see the module's documentation."""

    def __init__(
        self,
        node_id: str,
        url: str,
        data_dir: str | os.PathLike[str],
        settings: DiscoverySettings,
        resolver: DnsResolver | None = None,
        cluster_id: str | None = None,
    ) -> None:
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.url = url
        self.settings = settings
        self.resolver = resolver or settings.resolver()
        self._ack_path = Path(data_dir) / ACK_FILE
        self.ack = self._load_ack()
        self.seen: frozenset[str] = frozenset([node_id])

    def status(self) -> schema.Status:
        """What this node answers on ``/api/status`` while it waits: no
        members yet, and its bootstrap state."""
        return schema.Status(
            id=self.node_id,
            role="follower",
            term=0,
            leader_id=None,
            leader_url=None,
            commit_index=0,
            applied_index=0,
            last_log_index=0,
            members=[],
            url=self.url,
            bootstrap=schema.Bootstrap(self.settings.expect, self.ack, sorted(self.seen)),
            cluster_id=self.cluster_id,
        )

    def _load_ack(self) -> str | None:
        try:
            doc = json.loads(self._ack_path.read_bytes())
        except (OSError, ValueError):
            return None
        seed = doc.get("seed") if isinstance(doc, dict) else None
        return seed if isinstance(seed, str) and seed else None

    def _save_ack(self, seed: str) -> None:
        """Durably: an ack must survive a restart to stay the only one."""
        temporary = self._ack_path.with_name(ACK_FILE + ".tmp")
        with open(temporary, "wb") as f:
            f.write(json.dumps({"seed": seed}).encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self._ack_path)
        directory = os.open(self._ack_path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    async def serve_and_decide(
        self, host: str, port: int, root_path: str = "", *, listener: socket.socket | None = None
    ) -> Decision:
        """Serve the waiting page on ``host:port`` (on ``listener`` when
        the port is bound already) until this node knows how it starts:
        bootstrap, adopt or join."""
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            app = WaitingApp(self.status, self.settings.api_prefix)
            await nursery.start(
                partial(
                    serve_app,
                    app,
                    host,
                    port,
                    shutdown,
                    root_path,
                    tls=self.settings.security,
                    listener=listener,
                )
            )
            try:
                return await self.decide_loop()
            finally:
                shutdown.set()

    async def decide_loop(self) -> Decision:
        settings = self.settings
        last_view: frozenset[str] | None = None
        said: tuple[str, float] = ("", -REPEAT_LOG_S)
        round_s = min(WAIT_ROUND_S, settings.interval)
        log.info(
            "bootstrap: looking for %d replicas of %s (this node: %s at %s)",
            settings.expect,
            settings.name,
            self.node_id,
            self.url,
        )
        async with settings.client() as client:
            while True:
                urls: list[str] = []
                try:
                    urls = await self.resolver.resolve(settings.name, settings.port)
                except DnsError as error:
                    said = self._say(
                        said, f"bootstrap: cannot resolve {settings.name}: {error}", logging.WARNING
                    )
                others = {u for u in urls if u != self.url}
                answered = await probe_all(client, others)
                statuses = same_cluster(answered, self.cluster_id)
                # Listed under its own URL, or at an address that answers as it.
                listed = self.url in urls or any(s.id == self.node_id for s in statuses.values())
                decision, last_view = decide(
                    self.node_id,
                    self.url,
                    settings.expect,
                    self.ack,
                    statuses.values(),
                    last_view,
                    silent=others - answered.keys(),
                    listed=listed,
                )
                self.seen = last_view
                if decision.action == "ack":
                    assert decision.seed is not None
                    await trio.to_thread.run_sync(self._save_ack, decision.seed)
                    self.ack = decision.seed
                    log.info("bootstrap: %s; acked", decision.reason)
                    continue
                if decision.action in ("bootstrap", "adopt", "join"):
                    log.info("bootstrap: %s: %s", decision.action, decision.reason)
                    return decision
                level = logging.ERROR if decision.action == "refuse" else logging.INFO
                said = self._say(said, f"bootstrap: {decision.reason}", level)
                await trio.sleep(round_s)

    @staticmethod
    def _say(said: tuple[str, float], line: str, level: int) -> tuple[str, float]:
        """Log ``line`` when it differs from the last one, or now and then."""
        now = time.monotonic()
        if line != said[0] or now - said[1] >= REPEAT_LOG_S:
            log.log(level, "%s", line)
            return line, now
        return said
