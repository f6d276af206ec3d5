"""``raft-trio up``: the embedded default, a local cluster on 127.0.0.1.

Starts N node processes (ids n1..nN on consecutive ports, data under
``--data-dir``) and the monitor (``python -m raft_monitor`` on
``--monitor-port``), prints their URLs, and stops them all cleanly on Ctrl-C
or SIGTERM. Re-running it on the same data dir resumes the same cluster: each
node recovers its own directory and ignores ``--peers``.

It records the nodes' URLs in ``<data-dir>/cluster.json``; the client
commands run in the same directory find the cluster there (with the
default ``./raft-data``) when neither ``--endpoints`` nor
``RAFT_TRIO_ENDPOINTS`` names one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

#: A node stops within about a second, or, with writes in flight, once they
#: are answered: a hand-over (at most 1 s) plus a drain bounded by the write
#: timeout (5 s) and a second. SIGKILL only after that.
STOP_GRACE_SECONDS = 10.0
#: In the data dir: the nodes (and monitor) of the cluster ``up`` runs there.
CLUSTER_FILE = "cluster.json"
#: The data dir of ``up`` by default, where the client commands look.
UP_DATA_DIR = "./raft-data"


def record_cluster(root: Path, nodes: dict[str, str], monitor: str) -> None:
    """Write ``cluster.json`` (to a temporary name first, so that a reader
    never sees half of it)."""
    text = json.dumps({"nodes": nodes, "monitor": monitor}, indent=2) + "\n"
    temporary = root / (CLUSTER_FILE + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, root / CLUSTER_FILE)


def recorded_endpoints(root: Path) -> list[str]:
    """The node URLs ``up`` recorded in ``root`` (none when it holds no
    readable record)."""
    try:
        doc = json.loads((root / CLUSTER_FILE).read_text())
    except (OSError, ValueError):
        return []
    nodes = doc.get("nodes") if isinstance(doc, dict) else None
    if not isinstance(nodes, dict):
        return []
    urls = [url for url in nodes.values() if isinstance(url, str)]
    return [url for url in urls if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc]


def run_up(
    nodes: int, base_port: int, monitor_port: int, data_dir: str, monitor_user: str | None = None
) -> int:
    """``monitor_user`` (``NAME:PASSWORD``, from ``--user``): the user the
    monitor logs in as once auth is on (it is handed over in the monitor's
    environment, never on its command line, where ``ps`` would show it)."""
    if not 1 <= nodes <= 9:
        print("raft-trio: --nodes must be between 1 and 9", file=sys.stderr)
        return 2
    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    ids = [f"n{i + 1}" for i in range(nodes)]
    urls = {node_id: f"http://127.0.0.1:{base_port + i}" for i, node_id in enumerate(ids)}
    peers = ",".join(f"{node_id}={url}" for node_id, url in urls.items())
    processes: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for i, node_id in enumerate(ids):
        argv = [
            sys.executable, "-m", "raft_trio.cli", "node",
            "--id", node_id,
            "--listen", f"127.0.0.1:{base_port + i}",
            "--data-dir", str(root / node_id),
            "--peers", peers,
        ]  # fmt: skip
        log_path = root / f"{node_id}.log"
        with open(log_path, "ab") as log:
            processes[node_id] = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
    monitor_argv = [
        sys.executable, "-m", "raft_monitor",
        "--listen", f"127.0.0.1:{monitor_port}",
        "--nodes", ",".join(urls.values()),
    ]  # fmt: skip
    monitor_env = {**os.environ, "RAFT_TRIO_USER": monitor_user} if monitor_user else None
    with open(root / "monitor.log", "ab") as log:
        processes["monitor"] = subprocess.Popen(
            monitor_argv,
            env=monitor_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record_cluster(root, urls, f"http://127.0.0.1:{monitor_port}")
    print(f"raft-trio: {nodes} nodes, data and logs in {root.resolve()}")
    for node_id, url in urls.items():
        print(f"  {node_id}  {url}   (docs: {url}/docs)")
    print(f"  monitor: http://127.0.0.1:{monitor_port}")
    if root.resolve() == Path(UP_DATA_DIR).resolve():
        print("try: raft-trio kv put hello world && raft-trio status")
    else:
        listed = ",".join(urls.values())
        print(
            f"try: raft-trio kv put hello world --endpoints {listed} && raft-trio status --endpoints {listed}"
        )
    print("Ctrl-C stops the cluster.")
    try:
        # A node that exits (killed by hand to watch a failover, say) is
        # reported and the rest keep running; Ctrl-C stops everything.
        reported: set[str] = set()
        while not stopping:
            for name, process in processes.items():
                code = process.poll()
                if code is not None and name not in reported:
                    reported.add(name)
                    print(f"raft-trio: {name} exited with status {code}; see {root / (name + '.log')}")
            if len(reported) == len(processes):
                break
            time.sleep(0.2)
    finally:
        _stop_all(processes)
    print("raft-trio: stopped")
    return 0


def _stop_all(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes.values():
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
