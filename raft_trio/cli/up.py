"""``raft-trio up``: the embedded default, a local cluster on 127.0.0.1.

Starts N node processes (ids n1..nN on consecutive ports, data under
``--data-dir``) and the monitor (``python -m raft_monitor`` on
``--monitor-port``), waits until every one of them serves, prints their
URLs, and stops them all on Ctrl-C or SIGTERM. Re-running it on the same
data dir resumes the same cluster: each node recovers its own directory.

It tells the truth: when a process cannot start (a busy port, a data
directory another process holds) it says which and why in one line,
stops the others and exits 1; asked for another cluster than the one its
data dir holds (``--nodes`` or ``--base-port`` differing from what it
recorded) it refuses with exit status 2 and starts nothing.

Stopping sends the nodes SIGINT, a node's fast stop: they all stop
together, so no leader hands leadership over to a follower that is
stopping too (raft_trio.server.StopRequest).

It records the nodes' URLs in ``<data-dir>/cluster.json``; the client
commands run in the same directory find the cluster there (with the
default ``./raft-data``) when neither ``--endpoints`` nor
``RAFT_TRIO_ENDPOINTS`` names one.
"""

from __future__ import annotations

import dataclasses
import errno
import http.client
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ..testing.processes import Process

#: A node stops within about a second, or, with writes in flight, once they
#: are answered: a hand-over (at most 1 s) plus a drain bounded by the write
#: timeout (5 s) and a second. SIGKILL only after that.
STOP_GRACE_SECONDS = 10.0
#: How long the processes get to serve (three interpreters start on two
#: busy cores in a few seconds); one that neither serves nor exits by
#: then is reported and everything is stopped.
START_TIMEOUT_SECONDS = 60.0
#: In the data dir: the nodes (and monitor) of the cluster ``up`` runs there.
CLUSTER_FILE = "cluster.json"
#: The data dir of ``up`` by default, where the client commands look.
UP_DATA_DIR = "./raft-data"
DEFAULT_NODES = 3
DEFAULT_BASE_PORT = 9001
DEFAULT_MONITOR_PORT = 8000
MAX_NODES = 9

#: Exit statuses of ``up`` (README, "Quick start").
EXIT_STOPPED = 0
EXIT_NOT_STARTED = 1
EXIT_REFUSED = 2


class UpRefused(Exception):
    """``up`` was asked for something it will not do: one line, exit 2."""


class NotStarted(Exception):
    """A process of the cluster could not start: one line, exit 1."""


def record_cluster(root: Path, nodes: dict[str, str], monitor: str) -> None:
    """Write ``cluster.json`` (to a temporary name first, so that a reader
    never sees half of it)."""
    text = json.dumps({"nodes": nodes, "monitor": monitor}, indent=2) + "\n"
    temporary = root / (CLUSTER_FILE + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, root / CLUSTER_FILE)


def recorded_nodes(root: Path) -> dict[str, str]:
    """Node id -> URL as ``up`` recorded them in ``root`` (empty when it
    holds no readable record)."""
    try:
        doc = json.loads((root / CLUSTER_FILE).read_text())
    except (OSError, ValueError):
        return {}
    nodes = doc.get("nodes") if isinstance(doc, dict) else None
    if not isinstance(nodes, dict):
        return {}
    return {
        str(node_id): url
        for node_id, url in nodes.items()
        if isinstance(url, str) and urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc
    }


def recorded_monitor_port(root: Path) -> int | None:
    """The port of the monitor ``up`` recorded in ``root`` (None when it
    holds no readable record)."""
    try:
        doc = json.loads((root / CLUSTER_FILE).read_text())
        monitor = doc.get("monitor") if isinstance(doc, dict) else None
        return urlsplit(monitor).port if isinstance(monitor, str) else None
    except (OSError, ValueError):
        return None


def recorded_endpoints(root: Path) -> list[str]:
    """The node URLs ``up`` recorded in ``root`` (none when it holds no
    readable record)."""
    return list(recorded_nodes(root).values())


@dataclasses.dataclass(frozen=True)
class UpPlan:
    """The cluster ``up`` runs: its size, ports and data dir."""

    nodes: int
    base_port: int
    monitor_port: int
    root: Path

    @property
    def urls(self) -> dict[str, str]:
        return {f"n{i + 1}": f"http://127.0.0.1:{self.base_port + i}" for i in range(self.nodes)}

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"


def existing_nodes(root: Path) -> list[str]:
    """The ids of the nodes whose data ``root`` holds: those ``up``
    recorded, else the ``nN`` directories that hold a node's data."""
    recorded = recorded_nodes(root)
    if recorded:
        return list(recorded)
    try:
        found = [p.name for p in root.iterdir() if p.name[:1] == "n" and (p / "meta.json").exists()]
    except OSError:
        return []
    return sorted(found, key=lambda name: (len(name), name))


def plan_up(nodes: int | None, base_port: int | None, monitor_port: int | None, data_dir: str) -> UpPlan:
    """What to run, from the flags (None: not given) and what the data
    dir holds: an existing cluster is resumed as it was made, and a flag
    asking for another one is refused (:class:`UpRefused`)."""
    root = Path(data_dir)
    existing = existing_nodes(root)
    if existing and nodes is not None and nodes != len(existing):
        raise UpRefused(
            f"{data_dir} holds a cluster of {len(existing)} nodes ({', '.join(existing)}), not {nodes}; "
            "leave out --nodes to resume it, grow it with 'raft-trio members add', "
            "or start another cluster with another --data-dir"
        )
    recorded = recorded_nodes(root)
    recorded_base = urlsplit(recorded["n1"]).port if "n1" in recorded else None
    if recorded_base is not None and base_port is not None and base_port != recorded_base:
        raise UpRefused(
            f"{data_dir} holds a cluster whose members are at ports {recorded_base}-"
            f"{recorded_base + len(recorded) - 1}, not from {base_port}; leave out --base-port to resume "
            "it, or start another cluster with another --data-dir"
        )
    plan = UpPlan(
        nodes=nodes if nodes is not None else len(existing) or DEFAULT_NODES,
        base_port=base_port if base_port is not None else recorded_base or DEFAULT_BASE_PORT,
        # The monitor moves with --monitor-port, and stays where it was without.
        monitor_port=monitor_port
        if monitor_port is not None
        else recorded_monitor_port(root) or DEFAULT_MONITOR_PORT,
        root=root,
    )
    if not 1 <= plan.nodes <= MAX_NODES:
        raise UpRefused(f"--nodes must be between 1 and {MAX_NODES}, not {plan.nodes}")
    ports = range(plan.base_port, plan.base_port + plan.nodes)
    if plan.base_port < 1 or ports[-1] > 65535 or not 1 <= plan.monitor_port <= 65535:
        raise UpRefused(f"the ports {ports[0]}-{ports[-1]} and {plan.monitor_port} must be within 1-65535")
    if plan.monitor_port in ports:
        raise UpRefused(
            f"--monitor-port {plan.monitor_port} is one of the nodes' ports {ports[0]}-{ports[-1]}"
        )
    return plan


def check_ports_free(plan: UpPlan) -> None:
    """Every port is free to bind, before anything starts or is created
    (a node checks again, and the start is watched for the race)."""
    owners = {urlsplit(url).port: node_id for node_id, url in plan.urls.items()}
    owners[plan.monitor_port] = "the monitor"
    for port, owner in owners.items():
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as error:
                busy = error.errno == errno.EADDRINUSE
                reason = (
                    "is in use (is another 'raft-trio up' running?)" if busy else f"cannot be bound: {error}"
                )
                flag = "--monitor-port" if owner == "the monitor" else "--base-port"
                raise NotStarted(f"port {port} for {owner} {reason}; {flag} chooses another") from None


class Cluster:
    """The processes ``up`` started, each with its log file (their own
    output only: ``up`` notes nothing in them)."""

    def __init__(self, plan: UpPlan, monitor_user: str | None = None) -> None:
        self.plan = plan
        self.monitor_user = monitor_user
        self.processes: dict[str, Process] = {}

    def log_path(self, name: str) -> Path:
        return self.plan.root / f"{name}.log"

    def start(self) -> None:
        # The launcher is imported here, not at the top: every CLI command
        # reads this module's defaults, and only ``up`` starts processes.
        from ..testing.processes import node_argv, peers_flag, python_module

        urls = self.plan.urls
        peers = peers_flag(urls)
        for node_id, url in urls.items():
            listen = f"127.0.0.1:{urlsplit(url).port}"
            self.spawn(node_id, node_argv(node_id, listen, self.plan.root / node_id, "--peers", peers))
        monitor_env = {**os.environ, "RAFT_TRIO_USER": self.monitor_user} if self.monitor_user else None
        self.spawn("monitor", [
            *python_module("raft_monitor"),
            "--listen", f"127.0.0.1:{self.plan.monitor_port}",
            "--nodes", ",".join(urls.values()),
        ], monitor_env)  # fmt: skip

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        from ..testing.processes import Process

        # In a session of its own: Ctrl-C reaches up alone, which stops them all.
        process = Process(name, argv, self.log_path(name), env, notes=False)
        process.start()
        self.processes[name] = process

    def wait_serving(self, stopping: list[int]) -> None:
        """Until every process answers ``/healthz``; :class:`NotStarted`
        naming the first that exits (with its one line of why) or does
        not answer in time. Returns early when ``stopping`` fills."""
        addresses = {**self.plan.urls, "monitor": self.plan.monitor_url}
        waiting = dict(addresses)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while waiting and not stopping:
            for name in list(waiting):
                code = self.processes[name].returncode
                if code is not None:
                    raise NotStarted(f"{name} could not start: {self.why_exited(name, code)}")
                if serves(addresses[name]):
                    del waiting[name]
            if waiting and time.monotonic() > deadline:
                name = next(iter(waiting))
                raise NotStarted(
                    f"{name} did not answer at {addresses[name]} within {START_TIMEOUT_SECONDS:.0f} s; "
                    f"see {self.log_path(name)}"
                )
            if waiting:
                time.sleep(0.1)

    def why_exited(self, name: str, code: int) -> str:
        """The one line a process ended with (``raft-trio: ...``), else its status."""
        lines = self.processes[name].log_text(this_run=True).splitlines()
        for line in reversed(lines):
            for prefix in ("raft-trio: ", "raft-monitor: "):
                if line.startswith(prefix):
                    return line[len(prefix) :]
        return f"exited with status {code}; see {self.log_path(name)}"

    def stop(self, stopping: list[int]) -> None:
        """SIGINT to the nodes (a fast stop: no hand-over, they all stop),
        SIGTERM to the monitor; SIGKILL for what is left after the grace
        period, or at once on another Ctrl-C."""
        for name, process in self.processes.items():
            if process.running:
                process.send(signal.SIGTERM if name == "monitor" else signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        asked = len(stopping)
        while self.running() and time.monotonic() < deadline and len(stopping) == asked:
            time.sleep(0.02)
        for process in self.processes.values():
            process.kill()

    def running(self) -> bool:
        return any(process.running for process in self.processes.values())


def serves(url: str) -> bool:
    """``GET /healthz`` answers 200 (a node's waiting page does too)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=1.0)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def run_up(
    nodes: int | None,
    base_port: int | None,
    monitor_port: int | None,
    data_dir: str,
    monitor_user: str | None = None,
) -> int:
    """``monitor_user`` (``NAME:PASSWORD``, from ``--user``): the user the
    monitor logs in as once auth is on (handed over in the monitor's
    environment, never on its command line, where ``ps`` would show it)."""
    try:
        plan = plan_up(nodes, base_port, monitor_port, data_dir)
        check_ports_free(plan)
    except UpRefused as error:
        print(f"raft-trio: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except NotStarted as error:
        print(f"raft-trio: {error}", file=sys.stderr)
        return EXIT_NOT_STARTED
    stopping: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    try:
        plan.root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"raft-trio: cannot make the data dir {plan.root}: {error.strerror or error}", file=sys.stderr)
        return EXIT_NOT_STARTED
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    cluster = Cluster(plan, monitor_user)
    try:
        cluster.start()
        cluster.wait_serving(stopping)
    except NotStarted as error:
        print(f"raft-trio: {error}; the others are stopped", file=sys.stderr)
        cluster.stop(stopping)
        return EXIT_NOT_STARTED
    except BaseException:
        cluster.stop(stopping)
        raise
    status = EXIT_STOPPED
    try:
        if not stopping:
            record_cluster(plan.root, plan.urls, plan.monitor_url)
            print_banner(plan)
            status = watch(cluster, stopping)
    finally:
        cluster.stop(stopping)
    print("raft-trio: stopped")
    return status


def print_banner(plan: UpPlan) -> None:
    print(f"raft-trio: {plan.nodes} nodes, data and logs in {plan.root.resolve()}")
    for node_id, url in plan.urls.items():
        print(f"  {node_id}  {url}   (docs: {url}/docs)")
    print(f"  monitor: {plan.monitor_url}")
    if plan.root.resolve() == Path(UP_DATA_DIR).resolve():
        print("try: raft-trio kv put hello world && raft-trio status")
    else:
        listed = ",".join(plan.urls.values())
        print(
            f"try: raft-trio kv put hello world --endpoints {listed} && raft-trio status --endpoints {listed}"
        )
    print("Ctrl-C stops the cluster.", flush=True)


def watch(cluster: Cluster, stopping: list[int]) -> int:
    """Until Ctrl-C: a node that exits (killed by hand to watch a
    failover, say) is reported and the rest keep running. Exit status 0
    when stopped, 1 when every process exited by itself."""
    reported: set[str] = set()
    while not stopping:
        for name, process in cluster.processes.items():
            code = process.returncode
            if code is not None and name not in reported:
                reported.add(name)
                print(
                    f"raft-trio: {name} exited with status {code}; see {cluster.log_path(name)}", flush=True
                )
        if len(reported) == len(cluster.processes):
            print("raft-trio: every process has exited", file=sys.stderr)
            return EXIT_NOT_STARTED
        time.sleep(0.2)
    return EXIT_STOPPED
