"""The full container test, the README's manual test run by a script: build
the image with podman, ``podman-compose up``; three replicas form one
cluster by DNS with no manual command and the monitor on port 8000 shows
them with one leader; a write and a read through the monitor; ``podman
pause`` of the leader's container makes the monitor show it unreachable
and another leader elected, which takes writes; ``podman unpause`` brings
the old leader back as a follower of the new one, with the write made
while it was paused; ``up --scale node=5`` makes two more replicas that the
leader adds and promotes by itself, until the monitor (its ``/events``
stream and ``/api/nodes``) and every node's ``/api/status`` show five
voters; and everything of the project is removed at the end. The health
checks of compose.yaml are run once by hand (``podman healthcheck run``).

It needs podman, podman-compose and about a minute, so it runs only when
asked: ``RAFT_CONTAINER_TESTS=1 pytest -m container tests/containers -s``;
``tests/containers/full-test.sh`` sets up podman and a base image first
(what .ci/run uses). ``--scale`` needs podman-compose 1.4 or newer
(Debian 12's 1.0.3 ignores it; then the test raises ``deploy.replicas``
through an override file instead, and says so). ``RAFT_PODMAN_COMPOSE``
names the podman-compose command (default: the ``podman_compose`` module
of this Python, which ``pip install -e '.[test]'`` installs, else
``podman-compose``). On a machine that reaches no image registry, name a
base image made locally in ``RAFT_CONTAINER_BASE`` (see docs/containers.md);
``RAFT_CONTAINER_BUILD_ARGS`` adds arguments to ``podman build`` (e.g. a
CA bundle to mount for pip)."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..integration.cluster import wait_until

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "rafttrioct"
MONITOR = "http://127.0.0.1:8000"
TIMEOUT_S = 180.0
# The podman-compose of this environment (pip install -e '.[test]'), else the one on PATH.
PODMAN_COMPOSE = shlex.split(
    os.environ.get("RAFT_PODMAN_COMPOSE")
    or (
        f"{sys.executable} -m podman_compose"
        if importlib.util.find_spec("podman_compose")
        else "podman-compose"
    )
)

pytestmark = [
    pytest.mark.container,
    pytest.mark.skipif(
        os.environ.get("RAFT_CONTAINER_TESTS") != "1",
        reason="the full container test runs only with RAFT_CONTAINER_TESTS=1 (podman, minutes)",
    ),
    pytest.mark.skipif(
        shutil.which("podman") is None or shutil.which(PODMAN_COMPOSE[0]) is None,
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
    return run(*PODMAN_COMPOSE, "-p", PROJECT, "-f", "compose.yaml", *extra, *args, check=check)


def podman_compose_version() -> tuple[int, ...]:
    text = run(*PODMAN_COMPOSE, "version", check=False).stdout
    found = re.search(r"podman-compose[r]? version:?\s+(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(n) for n in found.groups()) if found else (0,)


def remove_project() -> None:
    """Everything of the test project, however many replicas it had."""
    label = f"label=io.podman.compose.project={PROJECT}"
    names = run("podman", "ps", "-a", "--filter", label, "--format", "{{.Names}}", check=False).stdout.split()
    if names:
        run("podman", "unpause", *names, check=False)
        run("podman", "rm", "-f", "-v", "-t", "5", *names, check=False)
    run("podman", "pod", "rm", "-f", f"pod_{PROJECT}", check=False)
    run("podman", "volume", "rm", "-f", f"{PROJECT}_raft-data", check=False)
    run("podman", "network", "rm", "-f", f"{PROJECT}_default", check=False)


def node_containers(status: str = "running", service: str = "node") -> list[str]:
    names = run(
        "podman", "ps", "-a", "--filter", f"label=io.podman.compose.project={PROJECT}",
        "--filter", f"label=com.docker.compose.service={service}", "--filter", f"status={status}",
        "--format", "{{.Names}}",
    ).stdout.split()  # fmt: skip
    return sorted(names)


def container_of(node_id: str) -> str:
    """The replica whose hostname (the node id it took at its first start) is ``node_id``."""
    names = node_containers("running") + node_containers("paused")
    for name in names:
        hostname = run("podman", "inspect", "--format", "{{.Config.Hostname}}", name).stdout.strip()
        if hostname == node_id:
            return name
    pytest.fail(f"no container has the hostname {node_id!r} (containers: {names})")


def nodes_own_status() -> dict[str, Any]:
    """Each running replica's own ``/api/status`` (asked inside its container)."""
    view: dict[str, Any] = {}
    for name in node_containers("running"):
        result = run(
            "podman", "exec", name, "python3", "-c",
            "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9001/api/status', timeout=3).read().decode())",
            check=False, timeout=30,
        )  # fmt: skip
        try:
            view[name] = json.loads(result.stdout)
        except ValueError:
            view[name] = result.stdout[-300:] + result.stderr[-300:]
    return view


def dns_lists_every_replica() -> tuple[bool, Any]:
    """The name ``node`` resolves, inside a replica, to every replica's address."""
    names = node_containers()
    addresses = {
        run(
            "podman", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name
        ).stdout.strip()
        for name in names
    }  # fmt: skip
    result = run(
        "podman", "exec", names[0], "python3", "-c",
        "import json, socket; print(json.dumps(sorted({a[4][0] for a in socket.getaddrinfo('node', 9001)})))",
        check=False, timeout=30,
    )  # fmt: skip
    try:
        resolved = set(json.loads(result.stdout))
    except ValueError:
        return False, result.stdout + result.stderr
    return resolved == addresses, {"resolved": sorted(resolved), "replicas": sorted(addresses)}


def one_cluster_of(size: int) -> Callable[[], tuple[bool, Any]]:
    """Every running replica reports itself in one and the same membership
    of ``size`` voters, one leader, and all agree who leads."""

    def check() -> tuple[bool, Any]:
        view = nodes_own_status()
        docs = list(view.values())
        if len(docs) != size or not all(isinstance(d, dict) for d in docs):
            return False, view
        memberships = {json.dumps(sorted((m["id"], m["voter"]) for m in d["members"])) for d in docs}
        ids = {d["id"] for d in docs}
        members = [(m["id"], m["voter"]) for m in docs[0]["members"]]
        ok = (
            len(memberships) == 1
            and {member_id for member_id, _ in members} == ids
            and all(voter for _, voter in members)
            and sum(d["role"] == "leader" for d in docs) == 1
            and len({d["leader_id"] for d in docs}) == 1
        )
        return ok, view

    return check


def monitor_nodes() -> dict[str, Any] | None:
    try:
        answer = httpx.get(f"{MONITOR}/api/nodes", timeout=5, trust_env=False).json()
    except (httpx.HTTPError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def monitor_events_snapshot() -> dict[str, Any]:
    """The first event of the monitor's ``/events`` stream (what the page
    starts from): ``snapshot`` with every node."""
    event, data = None, []
    with httpx.stream("GET", f"{MONITOR}/events", timeout=10, trust_env=False) as response:
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data.append(line.split(":", 1)[1].strip())
            elif not line and event is not None:
                break
    assert event == "snapshot", event
    snapshot = json.loads("\n".join(data))
    assert isinstance(snapshot, dict)
    return snapshot


def live(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in snapshot.get("nodes", []) if n.get("role") not in (None, "unreachable")]


def monitor_shows_cluster(size: int) -> Callable[[], tuple[bool, Any]]:
    """The monitor shows ``size`` reachable voters, exactly one leader, and
    every node following it."""

    def check() -> tuple[bool, Any]:
        snapshot = monitor_nodes()
        if snapshot is None:
            return False, "monitor not answering"
        nodes = live(snapshot)
        leaders = [n for n in nodes if n["role"] == "leader"]
        ok = (
            len(nodes) == size
            and len(snapshot["nodes"]) == size
            and len(leaders) == 1
            and all(n["voter"] is True for n in nodes)
            and all(n["leader_id"] == leaders[0]["id"] for n in nodes)
        )
        return ok, snapshot

    return check


def kv(method: str, key: str, value: str | None = None) -> tuple[int, Any]:
    """A key-value request through the monitor's proxy (it finds the leader)."""
    body = None if value is None else {"value": value}
    response = httpx.request(method, f"{MONITOR}/kv/{key}", json=body, timeout=15, trust_env=False)
    return response.status_code, response.json()


def test_compose_up_pause_unpause_and_scale(tmp_path: Path) -> None:
    build = ["podman", "build", "--format", "docker", "-t", "raft-trio:latest", "-f", "Containerfile"]
    if os.environ.get("RAFT_CONTAINER_BASE"):
        build += ["--build-arg", f"BASE={os.environ['RAFT_CONTAINER_BASE']}"]
    build += shlex.split(os.environ.get("RAFT_CONTAINER_BUILD_ARGS", ""))
    version = podman_compose_version()
    marks = [("start", time.monotonic())]

    def mark(what: str) -> None:
        marks.append((what, time.monotonic()))

    run(*build, ".", timeout=600)
    mark("build")
    remove_project()
    try:
        # 1. compose up: deploy.replicas gives three replicas, which form one
        # cluster by themselves, and the monitor shows it.
        compose("up", "-d")
        assert len(node_containers()) == 3, "deploy.replicas: 3 did not start three replicas"
        wait_until(one_cluster_of(3), TIMEOUT_S, "three replicas to form one cluster", poll=1.0)
        first = wait_until(
            monitor_shows_cluster(3), 60, "the monitor to show three voters, one leader", poll=1.0
        )
        mark("up, one cluster of three")
        # The health checks of compose.yaml, run once by hand: podman runs
        # them from systemd timers, and these machines have no systemd.
        for name in node_containers() + node_containers(service="monitor"):
            health = run("podman", "healthcheck", "run", name, check=False, timeout=30)
            assert health.returncode == 0, f"{name}: {health.stdout}{health.stderr}"
        mark("health checks")
        (monitor_container,) = node_containers(service="monitor")
        mounts = run(
            "podman", "inspect", "--format", "{{range .Mounts}}{{.Type}}:{{.Destination}} {{end}}", monitor_container
        ).stdout.split()  # fmt: skip
        assert "volume:/data" not in mounts, f"the monitor got a volume for the image's /data: {mounts}"

        # 2. A write and a linearizable read, through the monitor.
        status, answer = kv("PUT", "greeting", "hello")
        assert status == 200 and answer["value"] == "hello", answer
        status, answer = kv("GET", "greeting")
        assert (status, answer["value"]) == (200, "hello"), answer

        # 3. Pause the leader's container: the monitor shows it unreachable
        # and another node elected in a later term, which takes writes.
        old = next(n for n in first["nodes"] if n["role"] == "leader")
        paused = container_of(old["id"])
        run("podman", "pause", paused)

        def new_leader() -> tuple[bool, Any]:
            snapshot = monitor_nodes()
            if snapshot is None:
                return False, "monitor not answering"
            by_id = {n["id"]: n for n in snapshot["nodes"]}
            leaders = [n for n in live(snapshot) if n["role"] == "leader"]
            ok = (
                by_id.get(old["id"], {}).get("role") == "unreachable"
                and len(leaders) == 1
                and leaders[0]["id"] != old["id"]
                and leaders[0]["term"] > old["term"]
            )
            return ok, snapshot

        elected = wait_until(new_leader, 60, "a new leader while the old one is paused", poll=1.0)
        mark("pause, new leader")
        leader = next(n for n in live(elected) if n["role"] == "leader")
        status, answer = kv("PUT", "during-pause", "written while the old leader was paused")
        assert status == 200, answer

        # 4. Unpause: the old leader sees the newer term and follows.
        run("podman", "unpause", paused)

        def old_leader_follows() -> tuple[bool, Any]:
            ok, snapshot = monitor_shows_cluster(3)()
            if not ok:
                return False, snapshot
            by_id = {n["id"]: n for n in snapshot["nodes"]}
            back = by_id[old["id"]]
            return back["role"] == "follower" and back["term"] >= leader["term"], snapshot

        wait_until(old_leader_follows, 60, "the old leader to step down and follow", poll=1.0)
        mark("unpause, old leader follows")
        stale = run(
            "podman", "exec", paused, "raft-trio", "kv", "get", "during-pause", "--stale",
            "--cluster", "http://127.0.0.1:9001",
        )  # fmt: skip
        assert json.loads(stale.stdout)["value"] == "written while the old leader was paused"

        # 5. Scale to five: two new replicas appear in DNS, the leader adds
        # them as learners and promotes them, with no other command.
        if version >= (1, 4):
            compose("up", "-d", "--scale", "node=5")
            how = "--scale node=5"
        else:
            # podman-compose before 1.4 ignores --scale: raise deploy.replicas
            # and run up again, which adds the missing replicas.
            scale = tmp_path / "scale.yaml"
            scale.write_text("services:\n  node:\n    deploy:\n      replicas: 5\n")
            compose("up", "-d", files=(str(scale),))
            how = "deploy.replicas: 5 (this podman-compose ignores --scale)"
        assert len(node_containers()) == 5, f"{how} did not start five replicas"
        wait_until(dns_lists_every_replica, 60, "the service name to resolve to all five replicas", poll=1.0)
        wait_until(one_cluster_of(5), TIMEOUT_S, f"five voters after {how}", poll=1.0)
        wait_until(monitor_shows_cluster(5), 60, "the monitor to show five voters", poll=1.0)
        events = monitor_events_snapshot()
        assert len(live(events)) == 5 and all(n["voter"] for n in live(events)), events
        mark("scale, five voters")
        status, answer = kv("GET", "greeting")
        assert (status, answer["value"]) == (200, "hello"), answer

        steps = ", ".join(
            f"{what} {at - before:.0f} s" for (_, before), (what, at) in itertools.pairwise(marks)
        )
        print(
            f"\npodman-compose {'.'.join(map(str, version))}, scaled with {how}: {steps}; "
            f"total {marks[-1][1] - marks[0][1]:.0f} s"
        )
    finally:
        for name in node_containers("running") + node_containers("paused"):
            logs = run("podman", "logs", name, check=False)
            print(f"--- {name}\n" + (logs.stdout + logs.stderr)[-3000:])
        remove_project()
