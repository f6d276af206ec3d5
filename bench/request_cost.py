"""CPU cost of one request on a node, measured from outside: starts a
single-node cluster, sends N requests over one keep-alive connection
(a plain blocking socket client, so the client costs little), and reports
the node's CPU time per request (from /proc), which contention on the
machine moves much less than wall time.

    PYTHONPATH=$PWD python bench/request_cost.py [--requests 2000] [--kind peer|put|get]
"""

from __future__ import annotations

import argparse
import http.client
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

from raft_trio.core import Heartbeat
from raft_trio.peer.wire import encode_batch


def cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--kind", default="peer", choices=["peer", "put", "get", "healthz"])
    p.add_argument("--port", type=int, default=9791)
    a = p.parse_args()
    data = tempfile.mkdtemp(prefix="reqcost-", dir="/work")
    url = f"http://127.0.0.1:{a.port}"
    argv = [
        sys.executable,
        "-m",
        "raft_trio.cli",
        "node",
        "--id",
        "n1",
        "--listen",
        f"127.0.0.1:{a.port}",
        "--data-dir",
        f"{data}/n1",
        "--peers",
        f"n1={url}",
    ]
    with open(f"{data}/n1.log", "wb") as logf:
        proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True, cwd=data)
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/api/status", timeout=1) as r:
                    if json.load(r)["role"] == "leader":
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("no leader")
            time.sleep(0.2)
        conn = http.client.HTTPConnection("127.0.0.1", a.port)
        # A heartbeat of an old term from a stranger: decoded and stepped, ignored.
        body = encode_batch([Heartbeat(term=0, src="ghost", dst="n1", commit=0, seq=1)])
        headers = {"X-Raft-From": "ghost", "Content-Type": "application/msgpack"}

        def one(i: int) -> None:
            if a.kind == "peer":
                conn.request("POST", "/raft/messages", body=body, headers=headers)
            elif a.kind == "put":
                conn.request(
                    "PUT",
                    f"/api/kv/k{i}",
                    body=b'{"value":"' + b"v" * 100 + b'"}',
                    headers={"Content-Type": "application/json"},
                )
            elif a.kind == "get":
                conn.request("GET", "/api/kv/k1")
            else:
                conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()

        for i in range(200):
            one(i)
        c0, t0 = cpu(proc.pid), time.perf_counter()
        for i in range(a.requests):
            one(i)
        c1, t1 = cpu(proc.pid), time.perf_counter()
        print(
            json.dumps(
                {
                    "kind": a.kind,
                    "requests": a.requests,
                    "server_cpu_ms_per_request": round((c1 - c0) * 1e3 / a.requests, 3),
                    "wall_ms_per_request": round((t1 - t0) * 1e3 / a.requests, 3),
                }
            )
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
