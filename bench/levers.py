"""A/B driver for the performance levers: starts a 3-node cluster of the
raft_trio on PYTHONPATH, finds the leader, runs wrk (bench/put.lua) at the
given connection counts and prints one line per run; optionally records a
py-spy profile of the leader under load.

    PYTHONPATH=$PWD python -m bench.levers --clients 1,64 --seconds 10 [--profile out.txt]

The nodes run in their data directory, so ``python -m raft_trio.cli``
imports the raft_trio of PYTHONPATH, not one in the caller's directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from raft_trio.testing.processes import NodeCluster

from ._common import PUT_LUA, run_wrk, scrape


def start(base_port: int, data: str) -> NodeCluster:
    """n1-n3 on ports from ``base_port``, each run in ``data`` (see above)."""
    cluster = NodeCluster(Path(data), 3, ports=range(base_port, base_port + 3))
    for node in cluster.nodes.values():
        node.cwd = Path(data)
    cluster.start_processes()
    return cluster


def wrk(port: int, clients: int, seconds: int, tag: str) -> dict[str, float]:
    r, _ = run_wrk(PUT_LUA, f"http://127.0.0.1:{port}", clients, seconds, [tag])
    return {
        "wps": r["requests"] / (r["duration_us"] / 1e6),
        "p50_ms": r["p50_us"] / 1e3,
        "p99_ms": r["p99_us"] / 1e3,
        "non_2xx": r["non_2xx"],
        "errors": r["socket_errors"],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", default="1,64")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--base-port", type=int, default=9711)
    p.add_argument("--profile", help="py-spy record the leader during the last run (raw folded output)")
    p.add_argument(
        "--profile-role", choices=("leader", "follower"), default="leader", help="whom --profile records"
    )
    p.add_argument("--rate", type=int, default=200, help="py-spy's samples a second for --profile")
    p.add_argument("--label", default=os.environ.get("PYTHONPATH", "?"))
    a = p.parse_args()
    data = tempfile.mkdtemp(prefix="levers-", dir="/work")
    cluster = start(a.base_port, data)
    procs = cluster.nodes
    try:
        lid, _ = cluster.wait_for_leader(timeout=30.0)
        port = procs[lid].port
        wrk(port, 4, 2, "warm")
        runs = [int(c) for c in a.clients.split(",")]
        for k, c in enumerate(runs):
            spy = None
            if a.profile and k == len(runs) - 1:
                spy = subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "--gil",
                        "-r",
                        str(a.rate),
                        "-d",
                        str(a.seconds),
                        "-f",
                        "raw",
                        "-o",
                        a.profile,
                        "--pid",
                        str(
                            procs[
                                lid if a.profile_role == "leader" else next(n for n in procs if n != lid)
                            ].pid
                        ),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            t0 = {n: pr.cpu_seconds() for n, pr in procs.items()}
            m0 = {n: scrape(pr.port) for n, pr in procs.items()}
            r = wrk(port, c, a.seconds, f"{int(time.time())}-{c}")
            t1 = {n: pr.cpu_seconds() for n, pr in procs.items()}
            n_req = r["wps"] * a.seconds
            cpu = {n: (t1[n] - t0[n]) for n in procs}
            r["leader_cpu_ms_per_write"] = cpu[lid] * 1e3 / max(n_req, 1)
            r["follower_cpu_ms_per_write"] = (
                sum(v for n, v in cpu.items() if n != lid) / 2 * 1e3 / max(n_req, 1)
            )
            r["leader_cpu_util"] = cpu[lid] / a.seconds
            m1 = {n: scrape(pr.port) for n, pr in procs.items()}
            key = "raft_fsync_seconds"
            lc = m1[lid][key + "_count"] - m0[lid][key + "_count"]
            ls = m1[lid][key + "_sum"] - m0[lid][key + "_sum"]
            r["leader_fsync_ms"] = ls * 1e3 / max(lc, 1)
            r["leader_fsync_per_write"] = lc / max(n_req, 1)
            fc = sum(m1[n][key + "_count"] - m0[n][key + "_count"] for n in procs if n != lid)
            fs = sum(m1[n][key + "_sum"] - m0[n][key + "_sum"] for n in procs if n != lid)
            r["follower_fsync_ms"] = fs * 1e3 / max(fc, 1)
            for key, label in (
                ("raft_peer_frames_sent_total", "frames"),
                ("raft_peer_messages_sent_total", "messages"),
            ):
                r[f"leader_{label}_per_write"] = (m1[lid][key] - m0[lid][key]) / max(n_req, 1)
            print(
                json.dumps({"label": a.label, "clients": c, **{k2: round(v, 3) for k2, v in r.items()}}),
                flush=True,
            )
            if spy is not None:
                spy.wait()
    finally:
        cluster.stop(grace=5.0)
        cluster.close()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
