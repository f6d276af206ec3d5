"""``raft-trio up`` tells the truth: a cluster that cannot start is one
line and a non-zero exit with nothing left running; asked for another
cluster than its data dir holds it refuses; Ctrl-C stops every node at
once, with no leader handing over to a follower that is stopping too.

Each test runs the installed console script against real processes."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from raft_trio.cli.up import DEFAULT_MONITOR_PORT, plan_up, record_cluster
from raft_trio.testing.processes import cli_command, consecutive_free_ports
from raft_trio.testing.waiting import wait_until

FAST_TIMING = {"ELECTION_TIMEOUT_LOWER_MILLIS": "300", "ELECTION_TIMEOUT_UPPER_MILLIS": "600"}
#: Ctrl-C to exit: the nodes stop in well under a second each; before the
#: fast stop a leader spent a second trying to hand over first.
STOP_BOUND_S = 5.0


def up_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAFT_TRIO_ENDPOINTS", "APP_NAME")}
    return {**env, **FAST_TIMING}


def run_up(cwd: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli_command(), "up", *args],
        cwd=cwd,
        env=up_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def ports_args(base: int) -> list[str]:
    return ["--base-port", str(base), "--monitor-port", str(base + 3)]


def answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@contextlib.contextmanager
def listening(port: int) -> Iterator[None]:
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", port))
        busy.listen()
        yield


def test_a_busy_port_fails_up_before_anything_starts(tmp_path: Path) -> None:
    base = consecutive_free_ports(4)
    with listening(base + 1):
        result = run_up(tmp_path, *ports_args(base))
    assert result.returncode == 1, result
    assert f"port {base + 1} for n2 is in use" in one_line(result.stderr)
    assert "Ctrl-C" not in result.stdout
    assert not (tmp_path / "raft-data").exists()  # nothing created
    assert not any(answers(port) for port in (base, base + 2, base + 3))


def test_a_node_that_cannot_start_fails_up_and_stops_the_others(tmp_path: Path) -> None:
    """n2's data dir is held by another process (its LOCK): n2 exits with
    its one line, which up repeats, and n1, n3 and the monitor stop."""
    base = consecutive_free_ports(4)
    held = tmp_path / "raft-data" / "n2"
    held.mkdir(parents=True)
    lock = os.open(held / "LOCK", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = run_up(tmp_path, *ports_args(base))
    finally:
        os.close(lock)
    assert result.returncode == 1, result
    line = one_line(result.stderr)
    assert line.startswith("raft-trio: n2 could not start: ") and "locked by another process" in line, line
    assert "Ctrl-C" not in result.stdout and not (tmp_path / "raft-data" / "cluster.json").exists()
    assert not any(answers(port) for port in range(base, base + 4))


def test_up_refuses_another_cluster_than_its_data_dir_holds(tmp_path: Path) -> None:
    base = consecutive_free_ports(4)
    root = tmp_path / "raft-data"
    root.mkdir()
    nodes = {f"n{i + 1}": f"http://127.0.0.1:{base + i}" for i in range(3)}
    record_cluster(root, nodes, f"http://127.0.0.1:{base + 3}")
    before = sorted(p.name for p in root.iterdir())

    more = run_up(tmp_path, "--nodes", "5", *ports_args(base))
    assert more.returncode == 2, more
    assert "holds a cluster of 3 nodes (n1, n2, n3), not 5" in one_line(more.stderr)

    moved = run_up(tmp_path, "--base-port", str(base + 10))
    assert moved.returncode == 2, moved
    assert f"at ports {base}-{base + 2}, not from {base + 10}" in one_line(moved.stderr)

    assert sorted(p.name for p in root.iterdir()) == before
    assert not any(answers(port) for port in range(base, base + 4))


def test_ctrl_c_stops_every_node_at_once_without_a_hand_over(tmp_path: Path) -> None:
    """The same cluster twice: the second ``up`` takes its size and ports
    from the data dir, and each Ctrl-C stops all of it fast."""
    base = consecutive_free_ports(4)
    for run in range(2):
        # The second run is told no --base-port: it resumes the recorded one.
        args = ports_args(base) if run == 0 else ["--monitor-port", str(base + 3)]
        with subprocess.Popen(
            [*cli_command(), "up", *args],
            cwd=tmp_path,
            env=up_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as up:
            out, err, took = interrupt_once_written(up, base, run)
        assert up.returncode == 0 and out.strip().endswith("raft-trio: stopped") and not err, (out, err)
        assert took < STOP_BOUND_S, f"up took {took:.2f} s to stop"
        assert not any(answers(port) for port in range(base, base + 4))
    logs = {n: (tmp_path / "raft-data" / f"{n}.log").read_text() for n in ("n1", "n2", "n3")}
    for log in logs.values():
        assert log.count("stopping fast (SIGINT): no leadership hand-over") == 2, log[-2000:]
        assert "hand-over did not finish" not in log and "handed leadership" not in log, log[-2000:]


def interrupt_once_written(up: subprocess.Popen[str], base: int, run: int) -> tuple[str, str, float]:
    """Waits for ``up``'s banner, writes through n1, sends Ctrl-C and
    returns what ``up`` printed and how long it took to stop."""
    try:
        assert up.stdout is not None and up.stderr is not None
        banner = [up.stdout.readline() for _ in range(7)]
        if banner[-1].strip() != "Ctrl-C stops the cluster.":
            up.kill()
            pytest.fail(f"run {run}: up printed {banner} and {up.stderr.read()!r}")
        write_through(f"http://127.0.0.1:{base}/api/kv/run{run}")
        # A new node's first-start check serves a waiting page (which
        # answers /healthz, all up waits for) until the others tell it
        # whether it started before; Ctrl-C then stops it before it runs
        # as a member, and it logs that instead of a fast stop.
        for port in range(base, base + 3):
            wait_until(functools.partial(runs_as_member, port), 30, f"the node on port {port} as a member")
        started = time.monotonic()
        up.send_signal(signal.SIGINT)
        out, err = up.communicate(timeout=30)
        return out, err, time.monotonic() - started
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


def runs_as_member(port: int) -> tuple[bool, object]:
    """The node on ``port`` runs as a member: past its first-start check,
    it knows the leader."""
    try:
        status = httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=2, trust_env=False).json()
    except (httpx.HTTPError, ValueError) as error:
        return False, error
    return status.get("first_start") is None and status.get("leader_id") is not None, status


def write_through(url: str) -> None:
    """A PUT to ``url`` that answers 200, once the cluster has a leader."""
    with httpx.Client(trust_env=False, timeout=5, follow_redirects=True) as http:

        def written() -> tuple[bool, object]:
            try:
                answer = http.put(url, json={"value": "x"})
            except httpx.HTTPError as error:
                return False, error
            return answer.status_code == 200, answer.text

        wait_until(written, 30, f"a write to {url}")


@pytest.mark.parametrize("flags", [["--nodes", "0"], ["--nodes", "10"], ["--monitor-port", "9002"]])
def test_bad_up_flags_are_one_line_and_exit_2(tmp_path: Path, flags: list[str]) -> None:
    result = run_up(tmp_path, *flags)
    assert result.returncode == 2, result
    one_line(result.stderr)
    assert not (tmp_path / "raft-data").exists()


def test_up_again_keeps_the_monitor_where_it_was(tmp_path: Path) -> None:
    """``up`` resumes a cluster "with its data, size and ports" (README):
    the monitor's too, which went back to 8000 without ``--monitor-port``
    (a review's finding); the flag still moves it."""
    root = tmp_path / "raft-data"
    root.mkdir()
    nodes = {f"n{i + 1}": f"http://127.0.0.1:{9101 + i}" for i in range(3)}
    record_cluster(root, nodes, "http://127.0.0.1:9200")
    assert plan_up(None, None, None, str(root)).monitor_port == 9200
    assert plan_up(None, None, 9300, str(root)).monitor_port == 9300
    assert plan_up(None, None, None, str(tmp_path / "new")).monitor_port == DEFAULT_MONITOR_PORT
    (root / "cluster.json").write_text('{"nodes": {}, "monitor": "http://127.0.0.1:99999"}')
    assert plan_up(None, None, None, str(root)).monitor_port == DEFAULT_MONITOR_PORT
