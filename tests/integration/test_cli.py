"""The ``raft-trio`` console script against real node processes: what a
person meets in the first hour. No command ends with a traceback: a busy
port, a reader that stops early (``| head``) and an unreachable cluster
each end it with (at most) one line and a documented exit status."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster import Cluster, cli_command, free_ports

#: What a shell reports for a process ended by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141


def cli_env(cluster: Cluster | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAFT_TRIO_ENDPOINTS", "APP_NAME")}
    if cluster is not None:
        env["RAFT_TRIO_ENDPOINTS"] = ",".join(node.url for node in cluster.nodes.values())
    return env


def cli(
    *args: str, cluster: Cluster | None = None, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli_command(), *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        env=cli_env(cluster),
        cwd=cwd,
    )


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield int(busy.getsockname()[1])


# -- busy ports -----------------------------------------------------------------


def test_a_node_on_a_busy_port_is_one_line_and_creates_no_data_dir(tmp_path: Path, busy_port: int) -> None:
    data_dir = tmp_path / "n1"
    result = cli(
        "node", "--id", "n1", "--listen", f"127.0.0.1:{busy_port}", "--data-dir", str(data_dir),
        "--peers", f"n1=http://127.0.0.1:{busy_port}",
    )  # fmt: skip
    assert result.returncode == 2, result
    assert one_line(result.stderr) == (
        f"raft-trio: cannot serve on 127.0.0.1:{busy_port}: Address already in use "
        "(is another process serving there?)"
    )
    assert not data_dir.exists()


def test_the_monitor_on_a_busy_port_is_one_line(busy_port: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "raft_monitor", "--listen", f"127.0.0.1:{busy_port}"],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result
    assert one_line(result.stderr).startswith(f"raft-monitor: cannot serve on 127.0.0.1:{busy_port}: ")


# -- a reader that stops early -------------------------------------------------------


@pytest.mark.parametrize("output", ["json", "table"])
def test_a_reader_that_stops_early_ends_the_command_quietly(shared_cluster: Cluster, output: str) -> None:
    """``raft-trio kv get K | head``: the value is larger than a pipe
    holds, the reader closes after a few bytes; the command ends with
    exit status 141 (as if by SIGPIPE) and says nothing."""
    shared_cluster.write("large", "line\n" * 60_000)
    command = subprocess.Popen(
        [*cli_command(), "kv", "get", "large", "-o", output],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=cli_env(shared_cluster),
    )
    assert command.stdout is not None
    assert command.stdout.read(5)
    command.stdout.close()
    _, stderr = command.communicate(timeout=30)
    assert command.returncode == EXIT_BROKEN_PIPE, stderr
    assert stderr == b""


# -- unreachable clusters ------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["transfer-leader"],
        ["snapshot", "save", "backup.snap"],
        ["members", "add", "n9", "http://127.0.0.1:1"],
    ],
)
def test_every_client_command_names_the_endpoints_it_tried(tmp_path: Path, args: list[str]) -> None:
    dead = [f"http://127.0.0.1:{port}" for port in free_ports(2)]
    result = cli(*args, "--endpoints", ",".join(dead), cwd=tmp_path)
    assert result.returncode == 2, result
    line = one_line(result.stderr)
    assert all(f"{url} (connection refused)" in line for url in dead), line
    assert result.stdout == "" and not (tmp_path / "backup.snap").exists()
