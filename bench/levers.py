"""A/B driver for the performance levers: starts a 3-node cluster of the
raft_trio on PYTHONPATH, finds the leader, runs wrk (bench/put.lua) at the
given connection counts and prints one line per run; optionally records a
py-spy profile of the leader under load.

    PYTHONPATH=$PWD python bench/levers.py --clients 1,64 --seconds 10 [--profile out.txt]

The nodes run in their data directory, so ``python -m raft_trio.cli``
imports the raft_trio of PYTHONPATH, not one in the caller's directory.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from raft_trio.client import Client, ClientError

HERE = Path(__file__).resolve().parent


def start(base_port: int, data: str) -> dict[str, subprocess.Popen[bytes]]:
    ids = ["n1", "n2", "n3"]
    peers = ",".join(f"{n}=http://127.0.0.1:{base_port + i}" for i, n in enumerate(ids))
    procs = {}
    for i, n in enumerate(ids):
        argv = [
            sys.executable,
            "-m",
            "raft_trio.cli",
            "node",
            "--id",
            n,
            "--listen",
            f"127.0.0.1:{base_port + i}",
            "--data-dir",
            f"{data}/{n}",
            "--peers",
            peers,
        ]
        with open(f"{data}/{n}.log", "wb") as logf:
            procs[n] = subprocess.Popen(
                argv, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True, cwd=data
            )
    return procs


def leader(base_port: int) -> tuple[str, int]:
    deadline = time.time() + 30
    while time.time() < deadline:
        for i in range(3):
            try:
                with Client(f"http://127.0.0.1:{base_port + i}", timeout=1.0, retry=False) as client:
                    s = client.status()
            except ClientError:
                continue
            if s.role == "leader":
                return s.id, base_port + i
        time.sleep(0.2)
    raise SystemExit("no leader")


def wrk(port: int, clients: int, seconds: int, tag: str) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{clients}",
            f"-d{seconds}s",
            "-s",
            str(HERE / "put.lua"),
            f"http://127.0.0.1:{port}",
            "--",
            tag,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON"))
    r = json.loads(line.split(" ", 1)[1])
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
    p.add_argument("--label", default=os.environ.get("PYTHONPATH", "?"))
    a = p.parse_args()
    data = tempfile.mkdtemp(prefix="levers-", dir="/work")
    procs = start(a.base_port, data)
    try:
        lid, port = leader(a.base_port)
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
                        "200",
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
            t0 = {n: _cpu(pr.pid) for n, pr in procs.items()}
            m0 = {n: _metrics(a.base_port + int(n[1:]) - 1) for n in procs}
            r = wrk(port, c, a.seconds, f"{int(time.time())}-{c}")
            t1 = {n: _cpu(pr.pid) for n, pr in procs.items()}
            n_req = r["wps"] * a.seconds
            cpu = {n: (t1[n] - t0[n]) for n in procs}
            r["leader_cpu_ms_per_write"] = cpu[lid] * 1e3 / max(n_req, 1)
            r["follower_cpu_ms_per_write"] = (
                sum(v for n, v in cpu.items() if n != lid) / 2 * 1e3 / max(n_req, 1)
            )
            r["leader_cpu_util"] = cpu[lid] / a.seconds
            m1 = {n: _metrics(a.base_port + int(n[1:]) - 1) for n in procs}
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
        for pr in procs.values():
            pr.send_signal(signal.SIGTERM)
        for pr in procs.values():
            try:
                pr.wait(5)
            except subprocess.TimeoutExpired:
                pr.kill()
        shutil.rmtree(data, ignore_errors=True)


def _metrics(port: int) -> dict[str, float]:
    """Sums of histograms and counters (over all label values)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = collections.defaultdict(float)
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name.endswith(("_sum", "_count", "_total")):
            out[name] += float(line.rsplit(" ", 1)[1])
    return out


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
