"""``raft-trio up`` starts the monitor beside the nodes, records the nodes
for the client commands run in the same directory, and stops everything
on SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from raft_trio.testing.processes import cli_command, consecutive_free_ports


def test_up_serves_the_monitor_and_stops_it_cleanly(tmp_path: Path) -> None:
    base = consecutive_free_ports(4)
    monitor = f"http://127.0.0.1:{base + 3}"
    env = {**os.environ, "ELECTION_TIMEOUT_LOWER_MILLIS": "300", "ELECTION_TIMEOUT_UPPER_MILLIS": "600"}
    argv = [sys.executable, "-m", "raft_trio.cli", "up", "--base-port", str(base)]
    argv += ["--monitor-port", str(base + 3)]  # and the default ./raft-data, in tmp_path
    env.pop("RAFT_TRIO_ENDPOINTS", None)
    up = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 20
        snapshot: dict[str, object] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                snapshot = httpx.get(monitor + "/api/nodes", timeout=1, trust_env=False).json()
                if snapshot.get("leader"):
                    break
            time.sleep(0.1)
        assert snapshot.get("leader"), f"no leader on the monitor: {snapshot}"
        recorded = json.loads((tmp_path / "raft-data" / "cluster.json").read_text())
        nodes = {f"n{i + 1}": f"http://127.0.0.1:{base + i}" for i in range(3)}
        assert recorded == {"nodes": nodes, "monitor": monitor}
        # A client command run here finds the cluster without being told.
        status = subprocess.run(
            [*cli_command(), "status", "-o", "json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert status.returncode == 0, status.stderr
        assert sorted(row["url"] for row in json.loads(status.stdout)) == sorted(nodes.values())
        page = httpx.get(monitor + "/", timeout=2, trust_env=False)
        assert (
            page.status_code == 200
            and "data-node-id" in httpx.get(monitor + "/static/app.js", trust_env=False).text
        )
    finally:
        up.send_signal(signal.SIGTERM)
        output, _ = up.communicate(timeout=15)
    assert up.returncode == 0, output
    assert f"monitor: {monitor}" in output
    assert "try: raft-trio kv put hello world && raft-trio status" in output
    assert "raft-trio: stopped" in output
    log = (tmp_path / "raft-data" / "monitor.log").read_text()
    assert "monitor serving on" in log and log.rstrip().endswith("stopped"), log
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(monitor + "/healthz", timeout=0.5, trust_env=False)
        raise AssertionError("the monitor still answers after up stopped")


def monitor_roles(monitor: str) -> dict[str, str]:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        snapshot = httpx.get(monitor + "/api/nodes", timeout=1, trust_env=False).json()
        return {node["id"]: node["role"] for node in snapshot.get("nodes", []) if "id" in node}
    return {}


def test_up_and_its_monitor_keep_working_with_auth_on(tmp_path: Path) -> None:
    """``up --user root:PASSWORD``: once auth is on, the monitor logs in as
    root and keeps showing the cluster (a leadership change included); the
    nodes read each other's status with the cluster secret's credential."""
    base = consecutive_free_ports(4)
    monitor = f"http://127.0.0.1:{base + 3}"
    env = {
        **os.environ,
        "ELECTION_TIMEOUT_LOWER_MILLIS": "300",
        "ELECTION_TIMEOUT_UPPER_MILLIS": "600",
        "RAFT_CLUSTER_SECRET": "the-cluster-secret-of-up",
    }
    env.pop("RAFT_TRIO_ENDPOINTS", None)
    env.pop("RAFT_TRIO_USER", None)
    argv = [sys.executable, "-m", "raft_trio.cli", "up", "--base-port", str(base)]
    argv += ["--monitor-port", str(base + 3), "--user", "root:root-pw"]
    up = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, cwd=tmp_path
    )

    def cli(*args: str) -> str:
        result = subprocess.run(
            [*cli_command(), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def wait_for(check: Callable[[dict[str, str]], bool], what: str) -> dict[str, str]:
        deadline = time.monotonic() + 20
        roles: dict[str, str] = {}
        while time.monotonic() < deadline:
            roles = monitor_roles(monitor)
            if check(roles):
                return roles
            time.sleep(0.1)
        raise AssertionError(f"the monitor never showed {what}: {roles}")

    try:
        wait_for(lambda roles: sorted(roles.values()) == ["follower", "follower", "leader"], "a leader")
        cli("user", "add", "root", "--password", "root-pw")
        cli("auth", "enable")
        leader = cli("transfer-leader", "--user", "root:root-pw", "-o", "json")
        new_leader = json.loads(leader)["leader_id"]
        roles = wait_for(lambda roles: roles.get(new_leader) == "leader", f"{new_leader} leading")
        assert sorted(roles.values()) == ["follower", "follower", "leader"], roles
        log = (tmp_path / "raft-data" / "monitor.log").read_text()
        assert "Traceback" not in log
    finally:
        up.send_signal(signal.SIGTERM)
        output, _ = up.communicate(timeout=15)
    assert up.returncode == 0, output
