"""What the benches share: the environment of their node processes, wrk,
the fsync probe, /metrics, and one small HTTP request.

The processes themselves are started, stopped and waited for by
:mod:`raft_trio.testing.processes` (the launcher the tests use too).
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from raft_trio.testing.processes import inherited_env

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
#: wrk scripts: distinct keys written (put.lua), and each system's reads
#: and writes (load.lua).
PUT_LUA = HERE / "put.lua"
LOAD_LUA = HERE / "load.lua"


class BenchError(Exception):
    """A bench could not measure what it set out to: one line of why."""


def bench_env(extra: Mapping[str, str] | None = None, *, logging: str = "WARNING") -> dict[str, str]:
    """A node's environment: this one without the ``RAFT_``, ``SCRIPT_``
    and ``APP_NAME`` settings of the caller's shell (a bench measures the
    defaults unless it says otherwise), logging at ``logging``, ``extra``
    on top."""
    return inherited_env(
        drop_prefixes=("RAFT_", "SCRIPT_", "APP_NAME"), extra={"LOGGING": logging, **(extra or {})}
    )


def http_request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 2.0
) -> tuple[int, bytes]:
    """One request to 127.0.0.1:``port`` on a connection of its own: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def parse_metrics(text: str, names: Iterable[str] | None = None) -> dict[str, float]:
    """Prometheus samples by name, each the sum over its label sets:
    those of ``names`` (0 when absent), or every sample."""
    found: dict[str, float] = dict.fromkeys(names, 0.0) if names is not None else {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if "{" in line.split(" ", 1)[0]:  # labels (whose values may hold spaces), then the value
            name, rest = line.split("{", 1)[0], line.rsplit("}", 1)[1]
        else:
            name, _, rest = line.partition(" ")
        if names is None or name in found:
            found[name] = found.get(name, 0.0) + float(rest.split()[0])
    return found


def scrape(port: int, names: Iterable[str] | None = None, timeout: float = 5.0) -> dict[str, float]:
    """:func:`parse_metrics` of the node's ``/metrics``."""
    code, body = http_request(port, "GET", "/metrics", timeout=timeout)
    if code != 200:
        raise BenchError(f"/metrics on port {port} answered {code}")
    return parse_metrics(body.decode(), names)


def run_wrk(
    script: Path,
    url: str,
    connections: int,
    seconds: float,
    script_args: Sequence[str],
    *,
    request_timeout: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """wrk with one thread and the Lua ``script``, which prints one line
    ``WRK_JSON {...}``: those fields, and the command line."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s"]
    if request_timeout is not None:
        argv += ["--timeout", request_timeout]
    argv += ["-s", str(script), url, "--", *script_args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    fields: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    return fields, argv


def fsync_probe(directory: Path, count: int = 50) -> float:
    """Median latency, in ms, of a 4 KiB write + fsync in ``directory``'s
    file system (where the data directories are)."""
    times = []
    with tempfile.NamedTemporaryFile(dir=directory) as f:
        for _ in range(count):
            os.write(f.fileno(), b"x" * 4096)
            started = time.perf_counter()
            os.fsync(f.fileno())
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)
