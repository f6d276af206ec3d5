"""The full container test: build the image with podman, ``podman-compose
up``: three replicas form one cluster by DNS with no manual command, the
monitor on port 8000 shows them, ``--scale node=5`` makes two more voters
appear, and ``down -v`` removes everything.

It needs podman, podman-compose and a few minutes, so it runs only when
asked: ``RAFT_CONTAINER_TESTS=1 pytest -m container tests/containers``.
On a machine that reaches no image registry, build a base image first and
name it in ``RAFT_CONTAINER_BASE`` (see "Containers and discovery" in the
README); ``RAFT_CONTAINER_BUILD_ARGS`` adds arguments to ``podman build``
(e.g. a CA bundle to mount for pip)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "rafttrioct"
TIMEOUT_S = 180.0

pytestmark = [
    pytest.mark.container,
    pytest.mark.skipif(
        os.environ.get("RAFT_CONTAINER_TESTS") != "1",
        reason="the full container test runs only with RAFT_CONTAINER_TESTS=1 (podman, minutes)",
    ),
    pytest.mark.skipif(
        shutil.which("podman") is None or shutil.which("podman-compose") is None,
        reason="needs podman and podman-compose",
    ),
]


def run(*argv: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and result.returncode != 0:
        pytest.fail(f"{shlex.join(argv)} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def compose(*args: str, files: tuple[str, ...] = (), check: bool = True) -> subprocess.CompletedProcess[str]:
    extra = [arg for f in files for arg in ("-f", f)]
    return run("podman-compose", "-p", PROJECT, "-f", "compose.yaml", *extra, *args, check=check)


def podman_compose_version() -> tuple[int, ...]:
    text = run("podman-compose", "version", check=False).stdout
    found = re.search(r"podman-compose[r]? version:?\s+(\d+)\.(\d+)", text)
    return tuple(int(n) for n in found.groups()) if found else (0,)


def remove_project() -> None:
    """Everything of the test project, however many replicas it had."""
    label = f"label=io.podman.compose.project={PROJECT}"
    names = run("podman", "ps", "-a", "--filter", label, "--format", "{{.Names}}", check=False).stdout.split()
    if names:
        run("podman", "rm", "-f", "-v", "-t", "5", *names, check=False)
    run("podman", "volume", "rm", "-f", f"{PROJECT}_raft-data", check=False)
    run("podman", "network", "rm", "-f", f"{PROJECT}_default", check=False)


def node_containers() -> list[str]:
    names = run(
        "podman", "ps", "--filter", f"label=io.podman.compose.project={PROJECT}", "--format", "{{.Names}}"
    ).stdout.split()
    return sorted(n for n in names if "node" in n)


def cluster_view() -> dict[str, Any]:
    """Each running replica's own status (asked inside its container)."""
    view: dict[str, Any] = {}
    for name in node_containers():
        result = run(
            "podman", "exec", name, "raft-trio", "status", "--json", "--cluster", "http://127.0.0.1:9001",
            check=False, timeout=30,
        )  # fmt: skip
        try:
            view[name] = {
                r["id"]: (r.get("role"), r["voter"], r.get("leader_id")) for r in json.loads(result.stdout)
            }
        except (ValueError, KeyError, TypeError):
            view[name] = result.stdout[-300:] + result.stderr[-300:]
    return view


def one_cluster_of(size: int) -> Callable[[], tuple[bool, Any]]:
    def check() -> tuple[bool, Any]:
        view = cluster_view()
        rows = list(view.values())
        ok = (
            len(rows) == size
            and all(isinstance(r, dict) for r in rows)
            and len({json.dumps(r, sort_keys=True) for r in rows}) == 1  # everybody sees the same
            and len(rows[0]) == size
            and all(voter for _, voter, _ in rows[0].values())
            and sum(role == "leader" for role, _, _ in rows[0].values()) == 1
        )
        return ok, view

    return check


def wait_until(what: str, check: Callable[[], tuple[bool, Any]], timeout: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        done, detail = check()
        if done:
            return detail
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last: {detail!r}")
        time.sleep(2)


def monitor_nodes() -> tuple[bool, Any]:
    try:
        answer = httpx.get("http://127.0.0.1:8000/api/nodes", timeout=5, trust_env=False).json()
    except (httpx.HTTPError, ValueError) as error:
        return False, repr(error)
    return True, answer


def test_compose_up_forms_one_cluster_that_follows_scale(tmp_path: Path) -> None:
    build = ["podman", "build", "--format", "docker", "-t", "raft-trio:latest", "-f", "Containerfile"]
    if os.environ.get("RAFT_CONTAINER_BASE"):
        build += ["--build-arg", f"BASE={os.environ['RAFT_CONTAINER_BASE']}"]
    build += shlex.split(os.environ.get("RAFT_CONTAINER_BUILD_ARGS", ""))
    started = time.monotonic()
    run(*build, ".", timeout=1800)
    built = time.monotonic()
    remove_project()
    try:
        compose("up", "-d")
        wait_until("three replicas to form one cluster", one_cluster_of(3))
        formed = time.monotonic()

        def monitor_shows(count: int) -> Callable[[], tuple[bool, Any]]:
            def check() -> tuple[bool, Any]:
                ok, answer = monitor_nodes()
                if not ok:
                    return False, answer
                live = [n for n in answer.get("nodes", []) if n.get("role") not in (None, "unreachable")]
                return len(live) == count, answer

            return check

        wait_until("the monitor to show three nodes", monitor_shows(3), timeout=60)

        if podman_compose_version() >= (1, 4):
            compose("up", "-d", "--scale", "node=5")
        else:
            # podman-compose before 1.4 ignores --scale: raise deploy.replicas
            # and run up again, which adds the missing replicas.
            scale = tmp_path / "scale.yaml"
            scale.write_text("services:\n  node:\n    deploy:\n      replicas: 5\n")
            compose("up", "-d", files=(str(scale),))
        wait_until("five voters after --scale node=5", one_cluster_of(5))
        wait_until("the monitor to show five nodes", monitor_shows(5), timeout=60)
        scaled = time.monotonic()
        print(
            f"build {built - started:.0f} s, three replicas formed one cluster in {formed - built:.0f} s, "
            f"five voters {scaled - formed:.0f} s after --scale node=5"
        )
    finally:
        for name in node_containers():
            logs = run("podman", "logs", name, check=False)
            print(f"--- {name}\n" + (logs.stdout + logs.stderr)[-4000:])
        remove_project()
