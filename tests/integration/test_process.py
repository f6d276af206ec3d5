"""The node as a process and the command line: the process-wide settings
it runs with; SIGTERM stops a node (and its payload scripts) cleanly and
quickly; bad flags and an unreachable cluster give one line on stderr and
exit status 2."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from raft_trio.server import GC_THRESHOLDS, GIL_SWITCH_INTERVAL_S
from raft_trio.testing.processes import NodeProcess, free_port, node_argv

from .cluster import Cluster, cli_command, wait_until

STOP_LIMIT_S = 2.0


def test_a_node_process_runs_with_its_collector_thresholds_and_imports_frozen() -> None:
    """Process-wide state, so checked in a process of its own."""
    script = (
        "import gc, json, sys; from raft_trio import server; server.tune_process(); "
        "print(json.dumps([gc.get_threshold(), gc.get_freeze_count(), sys.getswitchinterval()]))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    thresholds, frozen, switch = json.loads(out)
    assert tuple(thresholds) == GC_THRESHOLDS != gc.get_threshold()
    assert frozen > 10_000  # the imports' modules, classes and functions
    assert switch == pytest.approx(GIL_SWITCH_INTERVAL_S)


# -- processes under /proc ------------------------------------------------------------


def proc_stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgid, start time) of a live pid, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19])


def all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every live descendant of ``root``."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st is not None:
            children.setdefault(st[1], []).append(pid)
            starts[pid] = st[3]
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found[child] = starts[child]
                todo.append(child)
    return found


def alive(pid: int, start: int) -> bool:
    st = proc_stat(pid)
    return st is not None and st[3] == start and st[0] not in ("Z", "X")


def group_members(pgid: int) -> list[int]:
    out = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st is not None and st[2] == pgid and st[0] not in ("Z", "X"):
            out.append(pid)
    return out


# -- 11. graceful shutdown --------------------------------------------------------------


PAYLOAD = """#!/bin/sh
# a payload with a child of its own, like a real service wrapper
sleep 300 &
echo "$RAFT_NODE_ID $RAFT_ROLE $$ $!" >> {pids}
wait
"""


@pytest.mark.integration
def test_sigterm_stops_each_node_quickly_and_leaves_no_process_behind(
    make_cluster: Any, tmp_path: Path
) -> None:
    pids_file = tmp_path / "payload-pids"
    script = tmp_path / "payload.sh"
    script.write_text(PAYLOAD.format(pids=pids_file))
    script.chmod(0o755)
    c: Cluster = make_cluster(
        "payload", env={"SCRIPT_LEADER_PATH": str(script), "SCRIPT_FOLLOWER_PATH": str(script)}
    )
    lid, _ = c.wait_for_leader()
    assert c.put(lid, "before-shutdown", "x").status_code == 200

    def payloads_running() -> tuple[bool, Any]:
        under = {nid: descendants(c[nid].pid) for nid in c.nodes}
        return all(len(d) >= 2 for d in under.values()), under

    under = wait_until(payloads_running, 10.0, "every node to run its payload script (and its child)")
    recorded = {pid: start for d in under.values() for pid, start in d.items()}

    problems: list[str] = []
    try:
        for nid in [lid] + [n for n in c.nodes if n != lid]:
            node = c[nid]
            started = time.monotonic()
            node.send(signal.SIGTERM)
            try:
                status = node.wait(timeout=STOP_LIMIT_S)
            except subprocess.TimeoutExpired:
                problems.append(f"{nid} still running {STOP_LIMIT_S} s after SIGTERM")
                status = node.wait(timeout=15)
            took = time.monotonic() - started
            print(
                f"{nid}: exit status {status} {took:.2f} s after SIGTERM; children before: {sorted(under[nid])}"
            )
            if status != 0:
                problems.append(f"{nid} exited with status {status} after {took:.2f} s")
            left = [pid for pid, start in under[nid].items() if alive(pid, start)]
            if left:
                problems.append(f"{nid} left its children {left} running")
            in_group = group_members(node.pid)
            if in_group:
                problems.append(f"{nid} left processes {in_group} in its process group")
        assert not problems, "\n".join(problems)
    finally:
        for pid, start in recorded.items():
            if alive(pid, start):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


STUBBORN = """#!/bin/sh
# a leader script that takes its time to stop: it ignores SIGTERM
trap 'echo "SIGTERM: not yet"' TERM
echo "$$" > {pid}
while :; do sleep 1; done
"""


@pytest.mark.integration
def test_a_second_sigterm_while_stopping_leaves_no_payload_behind(tmp_path: Path) -> None:
    """The first SIGTERM starts the stop, which gives the leader script its
    grace period; a second one (an impatient `kill`, a supervisor's
    retry) took the default action then, killing the node at once and
    leaving the script running in its session for ever. It changes
    nothing now: the stop ends the script as the first one would."""
    pid_file = tmp_path / "script.pid"
    script = tmp_path / "leader.sh"
    script.write_text(STUBBORN.format(pid=pid_file))
    script.chmod(0o755)
    port = free_port()
    node = NodeProcess(
        "n1",
        port,
        tmp_path,
        ["--peers", f"n1=http://127.0.0.1:{port}"],
        env={**os.environ, "SCRIPT_LEADER_PATH": str(script)},
    )
    node.start()
    script_pid = 0
    try:
        wait_until(
            lambda: (pid_file.exists() and pid_file.read_text().strip() != "", None), 20.0, "the script"
        )
        script_pid = int(pid_file.read_text())
        started = proc_stat(script_pid)
        assert started is not None
        node.send(signal.SIGTERM)
        wait_until(lambda: ("SIGTERM: not yet" in node.log_text(), None), 10.0, "the script's SIGTERM")
        node.send(signal.SIGTERM)
        status = node.wait(timeout=15)
        assert status == 0, node.log_tail()
        assert not alive(script_pid, started[3]), "the leader script outlived its node"
        assert "SIGTERM: already stopping" in node.log_text()
    finally:
        node.kill()
        if script_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(script_pid, signal.SIGKILL)


# -- 12. the command line ---------------------------------------------------------------


def bad_invocations(tmp: Path) -> list[tuple[str, list[str]]]:
    data = str(tmp / "data")
    a_file = tmp / "a-file"
    a_file.write_text("not a directory")
    node = ["node", "--id", "n1", "--data-dir", data]
    peers = ["--peers", "n1=http://127.0.0.1:1"]
    return [
        ("an unknown command", ["frobnicate"]),
        ("kv without a subcommand", ["kv"]),
        ("kv put without a value", ["kv", "put", "k"]),
        ("an unknown kv subcommand", ["kv", "frobnicate", "k"]),
        ("--listen nonsense", [*node, "--listen", "nonsense", *peers]),
        ("--listen with a bad port", [*node, "--listen", "127.0.0.1:99999", *peers]),
        ("an unknown flag", [*node, "--listen", "127.0.0.1:0", *peers, "--bogus"]),
        ("node without --listen", ["node", "--id", "n1", "--data-dir", data, *peers]),
        ("malformed --peers", [*node, "--listen", "127.0.0.1:0", "--peers", "garbage"]),
        ("--peers without this node", [*node, "--listen", "127.0.0.1:0", "--peers", "n2=http://127.0.0.1:1"]),
        ("node with no way to find its cluster", [*node, "--listen", "127.0.0.1:0"]),
        ("a negative disk reserve", [*node, "--listen", "127.0.0.1:0", *peers, "--disk-reserve-bytes", "-1"]),
        (
            "a disk reserve that is not a number",
            [*node, "--listen", "127.0.0.1:0", *peers, "--disk-reserve-bytes", "lots"],
        ),
        (
            "a --data-dir that is a file",
            ["node", "--id", "n1", "--data-dir", str(a_file), "--listen", "127.0.0.1:0", *peers],
        ),
        ("--cluster that is not a URL", ["kv", "get", "k", "--cluster", "not-a-url"]),
        ("kv get on an unreachable cluster", ["kv", "get", "k", "--cluster", "http://127.0.0.1:1"]),
        ("kv put on an unreachable cluster", ["--cluster", "http://127.0.0.1:1", "kv", "put", "k", "v"]),
        (
            "status of an unreachable cluster",
            ["status", "--cluster", "http://127.0.0.1:1,http://127.0.0.1:2"],
        ),
        ("members of an unreachable cluster", ["members", "list", "--cluster", "http://127.0.0.1:1"]),
    ]


@pytest.mark.integration
def test_cli_errors_are_one_line_on_stderr_and_exit_2(tmp_path: Path) -> None:
    problems = []
    for what, args in bad_invocations(tmp_path):
        env = {k: v for k, v in os.environ.items() if k != "APP_NAME"}
        try:
            p = subprocess.run(
                [*cli_command(), *args],
                capture_output=True,
                text=True,
                timeout=15,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except subprocess.TimeoutExpired as error:
            problems.append(
                f"{what} (raft-trio {' '.join(args)}): still running after 15 s; output {error.output!r}"
            )
            continue
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        if p.returncode != 2 or len(lines) != 1 or "Traceback" in p.stderr or p.stdout.strip():
            problems.append(
                f"{what} (raft-trio {' '.join(args)}): exit {p.returncode}, "
                f"stdout {p.stdout[-300:]!r}, stderr {p.stderr[-600:]!r}"
            )
    assert not problems, "\n".join(problems)


def test_a_data_dir_of_another_cluster_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    """--cluster-id (RAFT_CLUSTER_ID) is recorded in a new data dir; a node
    started on it with another cluster id exits with status 78, one line
    naming the problem, and changes nothing in the directory."""
    port = free_port()
    peers = ["--peers", f"n1=http://127.0.0.1:{port}"]
    first = NodeProcess("n1", port, tmp_path, [*peers, "--cluster-id", "blue"])
    data_dir = first.data_dir
    argv = node_argv("n1", f"127.0.0.1:{port}", data_dir, *peers)
    first.start()
    try:
        wait_until(
            lambda: ((data_dir / "meta.json").exists(), None), timeout=20, what="the data dir to be created"
        )
    finally:
        first.stop(grace=10)
    before = {p.name: p.read_bytes() for p in data_dir.iterdir() if p.is_file()}

    refused = subprocess.run([*argv, "--cluster-id", "green"], capture_output=True, text=True, timeout=30)

    assert refused.returncode == 78, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "cluster 'blue'" in lines[0], refused.stderr
    assert {p.name: p.read_bytes() for p in data_dir.iterdir() if p.is_file()} == before


@pytest.mark.integration
def test_sigterm_on_the_leader_hands_leadership_over_before_it_exits(cluster: Cluster) -> None:
    """A stopping leader transfers leadership (§3.10) to its most caught-up
    follower: the others have a new leader one term later without waiting
    out an election timeout, and the old leader still exits promptly."""
    lid, term = cluster.wait_for_leader()
    assert cluster.put(lid, "before-handover", "x").status_code == 200
    others = [n for n in cluster.nodes if n != lid]

    started = time.monotonic()
    status = cluster[lid].stop(grace=5.0)
    stopped_after = time.monotonic() - started

    assert status == 0
    assert stopped_after < 2.0, f"the leader took {stopped_after:.2f} s to stop"
    assert "handed leadership to" in cluster[lid].log_text(), cluster[lid].log_tail()
    new_lid, new_term = cluster.wait_for_leader(others, min_term=term + 1)
    # TimeoutNow skips pre-vote: exactly one term later.
    assert new_lid in others and new_term == term + 1
    assert cluster.get(new_lid, "before-handover").status_code == 200
