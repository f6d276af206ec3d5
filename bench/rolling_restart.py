"""Write availability during a rolling restart, run by hand (never part of
the tests).

Starts a 3-node cluster of real ``raft-trio node`` processes on 127.0.0.1
with the production timings (heartbeat 100 ms, election timeout
1000-2000 ms; ``--heartbeat-ms`` etc. change them), lets 8 clients write
(``raft_trio.testing.load``: distinct keys, idempotency keys, redirects
followed, retries of what certainly had no effect), and restarts every node
in turn the way a StatefulSet's rolling update does: SIGTERM, start again on
the same data directory, wait until ``/readyz`` answers 200, go on with the
next (highest id first). Then it prints:

- the longest gap between two acknowledged writes (over all clients), and
  the longest within the second around each restart (what a stop costs);
- write latency p50 / p99 / max (first attempt to the 200, retries included);
- the counts of writes ok, failed for certain and indeterminate, and of
  retries.

The goal (issue 9): the longest gap below one heartbeat round plus a round
trip, far below the election timeout that a leader's crash costs.

Usage (from the repository root, with raft-trio installed)::

    python -m bench.rolling_restart
    python -m bench.rolling_restart --clients 8 --rounds 2 --settle 3

Every process this starts is stopped (SIGTERM, then SIGKILL) by its pid.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import platform
import shutil
import signal
import tempfile
import time
from pathlib import Path

from raft_trio.client import Client, ClientError
from raft_trio.testing.load import Ack, WriteLoad
from raft_trio.testing.processes import NodeCluster
from raft_trio.testing.waiting import wait_until

from ._common import bench_env


def node_is_ready(url: str) -> bool:
    """Whether the node at ``url`` says it is ready (``/readyz``)."""
    try:
        with Client(url, timeout=1.0, retry=False) as client:
            return client.readiness().ready
    except ClientError:
        return False


def node_role(url: str) -> str:
    try:
        with Client(url, timeout=1.0, retry=False) as client:
            return client.status().role
    except ClientError:
        return "?"


def wait_ready(url: str, what: str, timeout: float = 60.0) -> None:
    wait_until(lambda: (node_is_ready(url), "not ready"), timeout, what)


def longest_gap(acks: list[Ack], start: float, end: float) -> float:
    times = sorted(a.acked for a in acks if start <= a.acked <= end)
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="rolling restarts of every node")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds of load before, between, after")
    parser.add_argument("--heartbeat-ms", type=int, default=100)
    parser.add_argument("--election-min-ms", type=int, default=1000)
    parser.add_argument("--election-max-ms", type=int, default=2000)
    parser.add_argument(
        "--signal",
        choices=["TERM", "KILL"],
        default="TERM",
        help="how each node is stopped; KILL shows what a crash costs instead",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directories and logs")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="raft-rolling-"))
    timing = {
        "HEARTBEAT_REPEAT_MILLIS": str(args.heartbeat_ms),
        "ELECTION_TIMEOUT_LOWER_MILLIS": str(args.election_min_ms),
        "ELECTION_TIMEOUT_UPPER_MILLIS": str(args.election_max_ms),
    }
    cluster = NodeCluster(root, 3, bench_env(timing, logging="INFO"))
    nodes = cluster.nodes
    print(
        f"# rolling restart: 3 nodes, {args.clients} clients, {args.rounds} round(s), "
        f"each node stopped with SIG{args.signal}"
    )
    print(
        f"# timings: heartbeat {args.heartbeat_ms} ms, election {args.election_min_ms}-"
        f"{args.election_max_ms} ms; {platform.python_version()}, {os.cpu_count()} cores; data in {root}"
    )
    load: WriteLoad | None = None
    try:
        cluster.start_processes()
        for node in nodes.values():
            wait_ready(node.url, f"{node.id} ready")
        load = WriteLoad([n.url for n in nodes.values()], clients=args.clients, prefix="bench")
        load.start()
        time.sleep(args.settle)
        restarts: list[tuple[str, str, float, float, float]] = []
        for _ in range(args.rounds):
            for node_id in sorted(nodes, reverse=True):
                node = nodes[node_id]
                was = node_role(node.url)
                stopped = time.monotonic()
                if args.signal == "KILL":
                    node.kill()
                    code = node.wait(timeout=30.0)
                else:
                    code = node.stop(signal.SIGTERM, grace=30.0)
                exited = time.monotonic()
                if code != 0 and args.signal == "TERM":
                    print(f"{node_id} exited with status {code}; see {node.log_path}")
                node.start()
                wait_ready(node.url, f"{node_id} ready")
                ready = time.monotonic()
                restarts.append((node_id, was, stopped, exited, ready))
                time.sleep(args.settle)
        load.stop()
        summary = load.summary()
        for line in summary.lines():
            print(line)
        for node_id, role, stopped, exited, ready in restarts:
            gap = longest_gap(load.acks, stopped - 0.2, ready + 0.5)
            print(
                f"restart of {node_id} ({role}): exited {(exited - stopped) * 1000:.0f} ms after "
                f"SIG{args.signal}, ready {ready - exited:.2f} s after its exit; "
                f"longest gap from its stop until it was ready {gap * 1000:.0f} ms"
            )
        events = sorted(
            [(stopped, f"SIG{args.signal} to {n}") for n, _, stopped, _, _ in restarts]
            + [(exited, f"{n} exited") for n, _, _, exited, _ in restarts]
            + [(ready, f"{n} ready again") for n, _, _, _, ready in restarts]
        )
        times = sorted(a.acked for a in load.acks)
        long_gaps = [(a, b - a) for a, b in itertools.pairwise(times) if b - a > args.heartbeat_ms / 1000]
        print(f"gaps longer than a heartbeat ({args.heartbeat_ms} ms): {len(long_gaps)}")
        for at, gap in sorted(long_gaps, key=lambda g: -g[1])[:8]:
            before = [(t, what) for t, what in events if t <= at]
            where = f"{at - before[-1][0]:.2f} s after {before[-1][1]}" if before else "before the roll"
            print(f"  {gap * 1000:.0f} ms, {where}")
        if load.errors:
            print(f"client errors: {load.errors[:3]}")
        return 0 if summary.failed == summary.indeterminate == 0 and not load.errors else 1
    finally:
        if load is not None:
            with contextlib.suppress(RuntimeError):
                load.stop()
        cluster.stop(grace=10.0)
        cluster.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
