"""The limits that bound hostile clients (docs/hostile.md states them):
an oversized body, a slowloris client, a flood of idle connections."""

from __future__ import annotations

import contextlib
import socket
import time

import pytest

from raft_trio.asgi import KEEP_ALIVE_TIMEOUT_S, MAX_HEAD_BYTES
from raft_trio.http.app import MAX_BODY_BYTES

from ..integration.cluster import Cluster
from ._support import assert_serving

pytestmark = pytest.mark.integration


def connect(node_url: str) -> socket.socket:
    host, port = node_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def read_all(sock: socket.socket, limit_s: float) -> bytes:
    sock.settimeout(limit_s)
    out = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            out += chunk
    return out


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_oversized_body_is_413_quickly(node_cluster: Cluster) -> None:
    node = node_cluster["n1"]
    size = 20 * 1024 * 1024
    before = rss_kib(node.pid)
    started = time.monotonic()
    with connect(node.url) as sock:
        head = (
            f"PUT /api/kv/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n"
        ).encode()
        sock.sendall(head)
        sent = 0
        chunk = b"x" * 65536
        # Send until the server answers or stops reading.
        sock.settimeout(0.5)
        answer = b""
        with contextlib.suppress(OSError):
            while sent < size:
                sock.sendall(chunk)
                sent += len(chunk)
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    answer += sock.recv(65536)
                sock.settimeout(0.5)
                if answer:
                    break
        answer += read_all(sock, 2.0)
    elapsed = time.monotonic() - started
    after = rss_kib(node.pid)
    print(
        f"\n20 MiB PUT: {answer[:12]!r} after {sent} bytes sent, {elapsed:.2f} s, RSS {before} -> {after} KiB"
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"error"' in answer and str(MAX_BODY_BYTES).encode() in answer, answer[:300]
    assert elapsed < 5, elapsed
    assert after - before < 64 * 1024, (before, after)
    assert_serving(node_cluster)


def test_oversized_head_is_refused(node_cluster: Cluster) -> None:
    node = node_cluster["n1"]
    with connect(node.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEAD_BYTES + 1024))
        answer = read_all(sock, 5.0)
    print(f"\noversized head: {answer[:40]!r}")
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:200]
    assert_serving(node_cluster)


@pytest.mark.parametrize("header_bytes", [MAX_HEAD_BYTES + 1024, 100_000, 130_000])
@pytest.mark.parametrize("first", [True, False], ids=["first request", "after another"])
def test_a_whole_head_over_the_limit_is_refused(
    node_cluster: Cluster, header_bytes: int, first: bool
) -> None:
    """A head that arrives whole: h11 measured only an incomplete one, so
    heads up to about 128 KiB were served (an audit sent 100,000 bytes of
    one header and got 200). The head just under the limit is served."""
    node = node_cluster["n1"]
    with connect(node.url) as sock:
        if not first:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * header_bytes + b"\r\n\r\n")
        answer = read_all(sock, 5.0)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"connection: close" in answer.lower(), answer[:300]
    with connect(node.url) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEAD_BYTES - 200) + b"\r\n\r\n"
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    assert_serving(node_cluster)


def test_slowloris_is_cut_by_keep_alive_timeout(node_cluster: Cluster) -> None:
    """A request head sent one byte a second never completes; Hypercorn's
    idle timer (keep_alive_timeout), which runs until the head is parsed,
    closes the connection. Meanwhile the node answers others."""
    node = node_cluster["n1"]
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    started = time.monotonic()
    closed_after: float | None = None
    with connect(node.url) as sock:
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(1.0)
                data = sock.recv(1024)
            except TimeoutError:
                pass
            except OSError:
                closed_after = time.monotonic() - started
                break
            else:
                if data == b"" or data.startswith(b"HTTP/"):
                    closed_after = time.monotonic() - started
                    break
            if time.monotonic() - started > KEEP_ALIVE_TIMEOUT_S * 3:
                break
            r = node_cluster.http.get(node.url + "/healthz", timeout=2)
            assert r.status_code == 200
    print(f"\nslowloris closed after {closed_after} s (keep_alive_timeout {KEEP_ALIVE_TIMEOUT_S} s)")
    assert closed_after is not None, "the slow client was never cut off"
    assert closed_after < KEEP_ALIVE_TIMEOUT_S + 3, closed_after
    assert_serving(node_cluster)


def test_connection_flood(node_cluster: Cluster) -> None:
    """500 idle connections at once: /healthz and a write still answer
    promptly, and the idle ones are closed after keep_alive_timeout."""
    node = node_cluster["n1"]
    socks: list[socket.socket] = []
    try:
        socks.extend(connect(node.url) for _ in range(500))
        started = time.monotonic()
        r = node_cluster.http.get(node.url + "/healthz", timeout=5)
        healthz_s = time.monotonic() - started
        assert r.status_code == 200
        started = time.monotonic()
        w = node_cluster.put("n1", "flood", "still writing")
        write_s = time.monotonic() - started
        assert w.status_code == 200, w.text
        print(
            f"\n500 idle connections: /healthz in {healthz_s * 1000:.0f} ms, a write in {write_s * 1000:.0f} ms"
        )
        assert healthz_s < 1.0 and write_s < 2.0
        # Hypercorn closes the idle ones.
        time.sleep(KEEP_ALIVE_TIMEOUT_S + 2)
        closed = 0
        for s in socks:
            s.settimeout(0.01)
            with contextlib.suppress(OSError):
                if s.recv(1) == b"":
                    closed += 1
        print(f"closed by the server after {KEEP_ALIVE_TIMEOUT_S + 2:.0f} s: {closed} of {len(socks)}")
        assert closed == len(socks)
    finally:
        for s in socks:
            s.close()
    assert_serving(node_cluster)
