"""The ``raft-trio`` console script against real node processes: what a
person meets in the first hour. No command ends with a traceback: a busy
port, a reader that stops early (``| head``) and an unreachable cluster
each end it with (at most) one line and a documented exit status."""

from __future__ import annotations

import json
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


@pytest.mark.parametrize("output", [["-o", "json"], ["--print-value-only"]])
def test_a_reader_that_stops_early_ends_the_command_quietly(
    shared_cluster: Cluster, output: list[str]
) -> None:
    """``raft-trio kv get K | head``: the value is larger than a pipe
    holds, the reader closes after a few bytes; the command ends with
    exit status 141 (as if by SIGPIPE) and says nothing."""
    shared_cluster.write("large", "line\n" * 60_000)
    command = subprocess.Popen(
        [*cli_command(), "kv", "get", "large", *output],
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


# -- values of any allowed size ------------------------------------------------------

#: The largest value there is: 1 MiB of UTF-8 (two bytes a character here).
LARGEST_VALUE = "é" * (1 << 19)


def test_kv_put_reads_a_megabyte_from_stdin_and_does_not_echo_it(shared_cluster: Cluster) -> None:
    assert len(LARGEST_VALUE.encode()) == 1 << 20
    put = cli("kv", "put", "from-stdin", "-", cluster=shared_cluster, stdin=LARGEST_VALUE)
    assert put.returncode == 0, put.stderr
    answer = json.loads(put.stdout)
    assert answer["key"] == "from-stdin" and "value" not in answer and answer["version"] == 1
    assert len(put.stdout) < 200
    got = shared_cluster.follow.get(shared_cluster.kv_url("n1", "from-stdin"))
    assert got.status_code == 200 and got.json()["value"] == LARGEST_VALUE


def test_kv_put_reads_a_file_and_get_prints_the_value_back_exactly(
    shared_cluster: Cluster, tmp_path: Path
) -> None:
    source = tmp_path / "value.txt"
    source.write_bytes(LARGEST_VALUE.encode())
    put = cli("kv", "put", "from-file", "--file", str(source), "-o", "table", cluster=shared_cluster)
    assert put.returncode == 0, put.stderr
    assert put.stdout.splitlines()[0].split() == ["KEY", "REVISION", "VERSION", "LEASE"]
    printed = subprocess.run(
        [*cli_command(), "kv", "get", "from-file", "--print-value-only"],
        capture_output=True,
        timeout=30,
        env=cli_env(shared_cluster),
        stdin=subprocess.DEVNULL,
    )
    assert printed.returncode == 0 and printed.stdout == source.read_bytes()


@pytest.mark.parametrize(
    ("how", "content", "problem"),
    [
        ("stdin", LARGEST_VALUE.encode() + b"\n", "the value on stdin is larger than 1,048,576 bytes"),
        ("file", LARGEST_VALUE.encode() + b"!", "is larger than 1,048,576 bytes"),
        ("file", b"caf\xe9", "is not UTF-8 text (byte 3)"),
    ],
)
def test_a_value_that_cannot_be_stored_is_refused_before_it_is_sent(
    shared_cluster: Cluster, tmp_path: Path, how: str, content: bytes, problem: str
) -> None:
    key = f"refused-{how}-{len(content)}"
    source = tmp_path / "value"
    source.write_bytes(content)
    args = ["kv", "put", key, "-"] if how == "stdin" else ["kv", "put", key, "--file", str(source)]
    with open(source, "rb") as stdin:
        result = subprocess.run(
            [*cli_command(), *args], stdin=stdin, capture_output=True, text=True, timeout=30,
            env=cli_env(shared_cluster),
        )  # fmt: skip
    assert result.returncode == 2, result
    assert problem in one_line(result.stderr)
    assert shared_cluster.follow.get(shared_cluster.kv_url("n1", key)).status_code == 404


def test_keys_and_values_print_as_they_are(shared_cluster: Cluster) -> None:
    """No \\u escapes: JSON is UTF-8, a table shows the characters (and a
    line break escaped, so that the table keeps its lines)."""
    assert cli("kv", "put", "ключ/日本", "значение\nzweite Zeile", cluster=shared_cluster).returncode == 0
    as_json = cli("kv", "get", "ключ/日本", cluster=shared_cluster)
    assert '"key":"ключ/日本","value":"значение\\nzweite Zeile"' in as_json.stdout, as_json
    table = cli("kv", "get", "ключ/日本", "-o", "table", cluster=shared_cluster)
    assert table.stdout.splitlines()[1].split()[:2] == ["ключ/日本", "значение\\nzweite"], table


# -- help -------------------------------------------------------------------------


def test_a_bare_raft_trio_prints_its_usage() -> None:
    bare = cli()
    assert bare.returncode == 0 and bare.stderr == "", bare
    assert bare.stdout.startswith("usage: raft-trio [-h] COMMAND ...")
    for command in ("node", "up", "kv", "status", "members", "transfer-leader", "snapshot"):
        assert f"\n    {command}" in bare.stdout, command
    # Without its subcommand a command is a usage error naming what is missing.
    result = cli("kv")
    assert result.returncode == 2 and "SUBCOMMAND" in one_line(result.stderr), result
