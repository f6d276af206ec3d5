"""CPU cost of one request on a node, measured from outside: starts a
single-node cluster, sends N requests over one keep-alive connection
(a plain blocking socket client, so the client costs little), and reports
the node's CPU time per request (from /proc), which contention on the
machine moves much less than wall time.

    PYTHONPATH=$PWD python -m bench.request_cost [--requests 2000] [--kind peer|stream|put|get|healthz]

The node runs in its data directory, so ``python -m raft_trio.cli``
imports the raft_trio of PYTHONPATH, not one in the caller's directory.

``stream`` sends the same one-heartbeat batch as ``peer``, but as frames of
one peer stream (``GET /raft/stream`` switched to the ``raft-stream``
protocol; one frame every 0.5 ms, so that each arrives on its own, as a
lone heartbeat would): the node's CPU per frame against its CPU per
request.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import tempfile
import time
from pathlib import Path

from raft_trio.core import Heartbeat
from raft_trio.peer.framing import FrameWriter
from raft_trio.peer.wire import STREAM_PATH, STREAM_PROTOCOL, encode_batch
from raft_trio.testing.processes import NodeCluster, Process


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--kind", default="peer", choices=["peer", "stream", "put", "get", "healthz"])
    p.add_argument("--port", type=int, default=9791)
    a = p.parse_args()
    data = tempfile.mkdtemp(prefix="reqcost-", dir="/work")
    cluster = NodeCluster(Path(data), 1, ports=[a.port])
    node = cluster["n1"]
    node.cwd = Path(data)
    try:
        cluster.start_processes()
        cluster.wait_for_leader(timeout=30.0)
        if a.kind == "stream":
            stream_cost(a.port, node, a.requests)
            return
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
        c0, t0 = node.cpu_seconds(), time.perf_counter()
        for i in range(a.requests):
            one(i)
        c1, t1 = node.cpu_seconds(), time.perf_counter()
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
        cluster.stop(grace=5.0)
        cluster.close()
        shutil.rmtree(data, ignore_errors=True)


def stream_cost(port: int, node: Process, frames: int) -> None:
    """One stream, ``frames`` frames of one stale heartbeat each."""
    import socket

    payload = encode_batch([Heartbeat(term=0, src="ghost", dst="n1", commit=0, seq=1)])
    writer = FrameWriter()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(
        f"GET {STREAM_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Raft-From: ghost\r\n"
        f"Connection: Upgrade\r\nUpgrade: {STREAM_PROTOCOL}\r\n\r\n".encode()
    )
    answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101 "), answer

    def one() -> None:
        sock.sendall(writer.frame(payload))
        time.sleep(0.0005)

    for _ in range(200):
        one()
    c0, t0 = node.cpu_seconds(), time.perf_counter()
    for _ in range(frames):
        one()
    c1, t1 = node.cpu_seconds(), time.perf_counter()
    sock.shutdown(socket.SHUT_WR)
    sock.recv(4096)  # why the stream ended
    sock.close()
    print(
        json.dumps(
            {
                "kind": "stream",
                "frames": frames,
                "server_cpu_ms_per_frame": round((c1 - c0) * 1e3 / frames, 3),
                "wall_ms_per_frame": round((t1 - t0) * 1e3 / frames, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
