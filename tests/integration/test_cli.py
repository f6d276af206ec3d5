"""The ``raft-trio`` console script against real node processes: what a
person meets in the first hour. No command ends with a traceback: a busy
port, a reader that stops early (``| head``) and an unreachable cluster
each end it with (at most) one line and a documented exit status."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
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
    for command in ("node", "up", "kv", "watch", "status", "members", "transfer-leader", "snapshot"):
        assert f"\n    {command}" in bare.stdout, command
    # Without its subcommand a command is a usage error naming what is missing.
    result = cli("kv")
    assert result.returncode == 2 and "SUBCOMMAND" in one_line(result.stderr), result


# -- ranges and watches --------------------------------------------------------------


def test_kv_get_prefix_and_kv_ls_list_the_keys_in_order(shared_cluster: Cluster) -> None:
    for key in ("range/b", "range/a", "range/c/d", "rangeless"):
        shared_cluster.write(key, f"value of {key}")
    got = cli("kv", "get", "--prefix", "range/", cluster=shared_cluster)
    assert got.returncode == 0, got
    answer = json.loads(got.stdout)
    assert [item["key"] for item in answer["kvs"]] == ["range/a", "range/b", "range/c/d"]
    assert answer["kvs"][0]["value"] == "value of range/a" and answer["count"] == 3 and not answer["more"]
    table = cli(
        "kv",
        "get",
        "--prefix",
        "range/",
        "--limit",
        "2",
        "--keys-only",
        "-o",
        "table",
        cluster=shared_cluster,
    )
    assert [line.split()[0] for line in table.stdout.splitlines()] == ["KEY", "range/a", "range/b"], table
    listed = cli("kv", "ls", "range/", cluster=shared_cluster)
    assert listed.returncode == 0 and listed.stdout == "range/a\nrange/b\nrange/c/d\n", listed
    as_json = json.loads(cli("kv", "ls", "range/", "-o", "json", cluster=shared_cluster).stdout)
    assert [item["key"] for item in as_json["kvs"]] == ["range/a", "range/b", "range/c/d"]
    assert all("value" not in item for item in as_json["kvs"])
    both = cli("kv", "get", "range/a", "--prefix", "range/", cluster=shared_cluster)
    assert both.returncode == 2 and "a KEY or --prefix P" in one_line(both.stderr)


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Watch:
    """``raft-trio watch ...`` running, its lines read as they come."""

    def __init__(self, cluster: Cluster, *args: str) -> None:
        self.process = subprocess.Popen(
            [*cli_command(), "watch", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=cli_env(cluster),
            # As from an interactive shell: a test run started in the
            # background (`pytest ... &` in a script) ignores SIGINT, every
            # child inherits that, and Python then installs no Ctrl-C.
            preexec_fn=default_sigint,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_lines(self, count: int, timeout: float = 20.0) -> list[str]:
        return [self.lines.get(timeout=timeout) for _ in range(count)]

    def stop(self) -> tuple[int, str]:
        """Ctrl-C: exit status 130, nothing on stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        _, stderr = self.process.communicate(timeout=20)
        return self.process.returncode, stderr


def test_watch_prints_each_change_as_it_commits_from_a_revision(shared_cluster: Cluster) -> None:
    first = shared_cluster.write("watched/a", "one")["index"]
    watch = Watch(shared_cluster, "--prefix", "watched/", "--rev", str(first), "-o", "json", "--prev-value")
    try:
        shared_cluster.write("watched/b", "two")
        shared_cluster.write("unwatched", "x")
        deleted = shared_cluster.follow.delete(shared_cluster.kv_url("n1", "watched/a"))
        assert deleted.status_code == 200
        events = [json.loads(line) for line in watch.next_lines(3)]
    finally:
        status, stderr = watch.stop()
    assert [(e["event"], e["key"], e.get("value"), e["prev_value"]) for e in events] == [
        ("put", "watched/a", "one", None),
        ("put", "watched/b", "two", None),
        ("delete", "watched/a", None, "one"),
    ]
    assert events[0]["mod_revision"] == first and events[2]["mod_revision"] == deleted.json()["index"]
    assert (status, stderr) == (130, "")


def test_a_watch_goes_on_at_another_node_when_its_node_dies(cluster: Cluster) -> None:
    """Killed under the watch, a node costs it nothing: the client resumes
    at another endpoint after the last revision it printed."""
    first = cluster.write("failover/0", "v0")["index"]
    watch = Watch(cluster, "--prefix", "failover/", "--rev", str(first))
    try:
        assert watch.next_lines(2)[1].split()[:3] == [str(first), "put", "failover/0"]
        cluster.write("failover/1", "v1")
        assert watch.next_lines(1)[0].split()[2] == "failover/1"
        cluster["n1"].kill()  # the first endpoint, where the watch streams from
        for i in range(2, 5):
            cluster.write(f"failover/{i}", f"v{i}")
        later = [line.split() for line in watch.next_lines(3, timeout=30)]
    finally:
        status, stderr = watch.stop()
    assert [(row[1], row[2], row[3]) for row in later] == [
        ("put", f"failover/{i}", f"v{i}") for i in range(2, 5)
    ]
    assert (status, stderr) == (130, "")


def test_a_paused_leader_first_among_the_endpoints_costs_a_command_about_a_second(cluster: Cluster) -> None:
    """The README's walk-through: ``kill -STOP`` of the leader (what
    ``docker pause`` does), then ``kv get`` and ``kv put`` with the paused
    node first among the endpoints. It accepts the connection and says
    nothing; after a second without an answer the client asks the next
    node too and takes its answer, where it used to wait out its 7 s
    attempt. Each command is timed from its start, Python's own included."""
    leader, _ = cluster.wait_for_leader()
    cluster.write("greeting", "hello")
    others = [nid for nid in cluster.nodes if nid != leader]
    env = {**cli_env(), "RAFT_TRIO_ENDPOINTS": ",".join(cluster[nid].url for nid in [leader, *others])}

    def timed(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
        start = time.monotonic()
        done = subprocess.run([*cli_command(), *args], capture_output=True, text=True, timeout=30, env=env)
        return done, time.monotonic() - start

    cluster[leader].pause()
    try:
        got, get_took = timed("kv", "get", "greeting", "--print-value-only")
        put, put_took = timed("kv", "put", "greeting", "again")
    finally:
        cluster[leader].resume()
    assert (got.returncode, got.stdout.strip(), got.stderr) == (0, "hello", "")
    assert (put.returncode, put.stderr) == (0, ""), put.stderr
    assert cluster.follow.get(cluster.kv_url(others[0], "greeting")).json()["value"] == "again"
    assert get_took < 4.0 and put_took < 4.0, f"get {get_took:.2f} s, put {put_took:.2f} s"


def test_a_watch_opens_elsewhere_about_a_second_after_its_paused_first_endpoint(cluster: Cluster) -> None:
    """A paused node accepts the watch's connection and never sends its
    head: the watch opens at the next endpoint after a second, not after
    the stream's 15 s stall (the changes made meanwhile were missed by a
    watch from the next change)."""
    first = cluster.write("paused-watch/a", "one")["index"]
    cluster.wait_caught_up("n2", first)
    cluster["n1"].pause()  # the first endpoint
    try:
        watch = Watch(cluster, "--prefix", "paused-watch/", "--rev", str(first), "-o", "json")
        try:
            start = time.monotonic()
            (line,) = watch.next_lines(1, timeout=10)
            took = time.monotonic() - start
        finally:
            status, stderr = watch.stop()
    finally:
        cluster["n1"].resume()
    assert json.loads(line)["key"] == "paused-watch/a"
    assert took < 5.0, f"the first change came {took:.1f} s after the watch started"
    assert (status, stderr) == (130, "")
