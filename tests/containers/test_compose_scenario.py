"""The full container test: one scenario, run with Podman (podman-compose)
and with Docker (Debian's docker.io and docker-compose 1.29, a dockerd the
test starts itself), each where it can be set up (``engines.py``).

The scenario, and after every step: every running replica reports one
membership of the expected voters with one leader; each replica's id and
URL are its container's name (what keeps it the same member whatever
address it gets); the monitor on its published port shows exactly those
voters; and every key written so far reads back exactly (linearizable
reads through the monitor, which finds the leader).

1. ``compose build`` with ``BASE`` from the environment (a base image
   imported locally: no registry), then ``up -d``: three replicas form one
   cluster by themselves; every health check passes (they ask ``/readyz``).
2. ``pause`` of the leader's container: another leader in a later term,
   which takes a write; ``unpause``: the old leader follows it, holds the
   write, and its leader script's SIGTERM output is in its log.
3. Two replicas stopped: the third one's health check fails (no leader).
   Then ``compose stop`` and ``compose start`` of the whole project: the
   same three members, whatever addresses they got.
4. Docker only: dockerd stopped and started again (what a host reboot
   does); ``restart: unless-stopped`` brings the containers back.
5. ``compose up -d`` after a change of the service's environment: compose
   recreates every node container (new container ids), and the new
   containers are the same three members with their data.
6. ``--scale node=5``: five voters, and the service name resolves to all
   five replicas inside a replica.
7. ``--scale node=3`` (podman-compose 1.6 stops no replica on a lower
   ``--scale``: the test removes the two by name): within a few minutes
   (``AUTO_REMOVE_AFTER_S`` is 60 in compose.yaml) three voters, and the
   monitor drops the two that left; pausing the leader then still gives a
   new leader that takes writes.
8. ``compose down`` (the volume kept), then ``up -d``: the same three
   members with their data.

It takes minutes and needs an engine, so it runs only when asked:
``RAFT_CONTAINER_TESTS=1 pytest -m container tests/containers -s``;
``tests/containers/full-test.sh`` installs what is missing and makes the
base image first (what .ci/run uses).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from raft_trio.testing.processes import free_port
from raft_trio.testing.waiting import wait_until

from .engines import BASE, Engine, docker_engine, podman_engine, restart_daemon, status_of

TIMEOUT_S = 180.0
#: AUTO_REMOVE_AFTER_S in compose.yaml (60 s), a lookup, and two removals.
SCALE_DOWN_S = 300.0
HEALTH_CHECK = (
    "import sys, urllib.request; "
    "sys.exit(urllib.request.urlopen('http://127.0.0.1:9001/readyz', timeout=2).status != 200)"
)

pytestmark = [
    pytest.mark.container,
    pytest.mark.skipif(
        os.environ.get("RAFT_CONTAINER_TESTS") != "1",
        reason="the full container test runs only with RAFT_CONTAINER_TESTS=1 (an engine, minutes)",
    ),
]


@pytest.fixture
def podman() -> Iterator[Engine]:
    yield from podman_engine()


@pytest.fixture
def docker() -> Iterator[Engine]:
    yield from docker_engine()


@dataclasses.dataclass
class Scenario:
    engine: Engine
    tmp_path: Path
    monitor: str = ""
    #: Every key written so far, and its value.
    written: dict[str, str] = dataclasses.field(default_factory=dict)
    marks: list[tuple[str, float]] = dataclasses.field(default_factory=list)

    def mark(self, what: str) -> None:
        self.marks.append((what, time.monotonic()))
        print(f"  {self.engine.name}: {what} ({self.marks[-1][1] - self.marks[0][1]:.0f} s)", flush=True)

    # -- what the replicas say -------------------------------------------------

    def statuses(self) -> dict[str, Any]:
        return {name: status_of(self.engine, name) for name in self.engine.containers()}

    def one_cluster_of(self, size: int, ids: set[str] | None = None) -> Callable[[], tuple[bool, Any]]:
        """Every running replica reports one and the same membership of
        ``size`` voters (``ids``, if given), one leader that all follow, and
        its id and URL are its container's name."""

        def check() -> tuple[bool, Any]:
            view = self.statuses()
            docs = list(view.values())
            if len(docs) != size or not all(isinstance(d, dict) for d in docs):
                return False, view
            memberships = {
                json.dumps(sorted((m["id"], m["url"], m["voter"]) for m in d["members"])) for d in docs
            }
            members = docs[0]["members"]
            named = all(d["id"] == name and d["url"] == f"http://{name}:9001" for name, d in view.items())
            ok = (
                named
                and len(memberships) == 1
                and {m["id"] for m in members} == set(view)
                and all(m["voter"] and m["url"] == f"http://{m['id']}:9001" for m in members)
                and (ids is None or set(view) == ids)
                and sum(d["role"] == "leader" for d in docs) == 1
                and len({d["leader_id"] for d in docs}) == 1
            )
            return ok, view

        return check

    # -- the monitor -----------------------------------------------------------------

    def monitor_nodes(self) -> dict[str, Any] | None:
        try:
            answer = httpx.get(f"{self.monitor}/api/nodes", timeout=5, trust_env=False).json()
        except (httpx.HTTPError, ValueError):
            return None
        return answer if isinstance(answer, dict) else None

    def monitor_shows(self, ids: set[str]) -> Callable[[], tuple[bool, Any]]:
        """Exactly ``ids``, all reachable voters, one leader that all follow."""

        def check() -> tuple[bool, Any]:
            snapshot = self.monitor_nodes()
            if snapshot is None:
                return False, "the monitor does not answer"
            nodes = snapshot["nodes"]
            leaders = [n for n in nodes if n["role"] == "leader"]
            ok = (
                {n["id"] for n in nodes} == ids
                and len(nodes) == len(ids)
                and all(n["role"] in ("leader", "follower") and n["voter"] is True for n in nodes)
                and len(leaders) == 1
                and all(n["leader_id"] == leaders[0]["id"] for n in nodes)
            )
            return ok, snapshot

        return check

    def kv(self, method: str, key: str, value: str | None = None) -> tuple[int, Any]:
        body = None if value is None else {"value": value}
        try:
            response = httpx.request(
                method, f"{self.monitor}/kv/{key}", json=body, timeout=15, trust_env=False
            )
        except httpx.HTTPError as error:
            return 0, repr(error)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def write(self, key: str, value: str) -> None:
        """A write, retried while the cluster answers 503 (a leader just
        changed): the value is the same each time."""

        def done() -> tuple[bool, Any]:
            status, answer = self.kv("PUT", key, value)
            return status == 200 and answer.get("value") == value, (status, answer)

        wait_until(done, 60, f"a write of {key!r}", poll=1.0)
        self.written[key] = value

    def every_key_reads_back(self) -> None:
        for key, value in self.written.items():

            def read(key: str = key, value: str = value) -> tuple[bool, Any]:
                status, answer = self.kv("GET", key)
                return status == 200 and answer.get("value") == value, (status, answer)

            wait_until(read, 60, f"{key!r} to read back as {value!r}", poll=1.0)

    def settled(self, step: str, ids: set[str], timeout: float = TIMEOUT_S) -> None:
        """After every step: one cluster of ``ids``, the monitor agrees, and
        every earlier key reads back; then a key of this step."""
        wait_until(
            self.one_cluster_of(len(ids), ids), timeout, f"one cluster of {sorted(ids)} ({step})", poll=1.0
        )
        wait_until(self.monitor_shows(ids), 90, f"the monitor to show {sorted(ids)} ({step})", poll=1.0)
        self.every_key_reads_back()
        self.write(f"after-{step}", f"written after {step}")
        self.mark(step)

    def leader(self) -> dict[str, Any]:
        ok, view = self.one_cluster_of(len(self.engine.containers()))()
        assert ok, view
        return next(d for d in view.values() if d["role"] == "leader")

    # -- steps ----------------------------------------------------------------

    def pause_the_leader(self, step: str) -> None:
        engine = self.engine
        old = self.leader()
        engine.run("pause", old["id"])
        try:

            def new_leader() -> tuple[bool, Any]:
                snapshot = self.monitor_nodes()
                if snapshot is None:
                    return False, "the monitor does not answer"
                by_id = {n["id"]: n for n in snapshot["nodes"]}
                leaders = [n for n in snapshot["nodes"] if n["role"] == "leader"]
                ok = (
                    by_id.get(old["id"], {}).get("role") == "unreachable"
                    and len(leaders) == 1
                    and leaders[0]["id"] != old["id"]
                    and leaders[0]["term"] > old["term"]
                )
                return ok, snapshot

            wait_until(new_leader, 60, f"a new leader while {old['id']} is paused", poll=1.0)
            self.write(f"during-{step}", "written while the old leader was paused")
        finally:
            engine.run("unpause", old["id"])
        self.settled(step, set(engine.containers()))
        back = status_of(engine, old["id"])
        assert isinstance(back, dict) and back["role"] == "follower", back
        stale = engine.exec(old["id"], "raft-trio", "kv", "get", f"during-{step}", "--stale",
                            "--cluster", "http://127.0.0.1:9001")  # fmt: skip
        assert json.loads(stale.stdout)["value"] == "written while the old leader was paused", stale
        # The old leader's script got SIGTERM when it stepped down: its trap's line is in the log.
        wait_until(
            lambda: (
                f"[leader.sh] leadership of term {old['term']} ended" in engine.logs(old["id"]),
                old["id"],
            ),
            30,
            "the leader script's last words in the log",
            poll=1.0,
        )

    def health_follows_the_cluster(self) -> None:
        """Every replica healthy now; a replica left alone is not."""
        for name in self.engine.containers():
            wait_until(partial(self.engine.healthy, name), 90, f"{name} to be healthy", poll=2.0)
        for name in self.engine.containers(service="monitor"):
            wait_until(partial(self.engine.healthy, name), 90, f"{name} to be healthy", poll=2.0)

    def stop_and_start(self) -> None:
        engine = self.engine
        ids = set(engine.containers())
        alone, *others = sorted(ids)
        engine.run("stop", *others, timeout=120)

        def unhealthy() -> tuple[bool, Any]:
            result = engine.exec(alone, "python3", "-c", HEALTH_CHECK)
            return result.returncode != 0, result.stderr[-200:]

        wait_until(unhealthy, 30, f"{alone}'s health check to fail while it is alone", poll=1.0)
        engine.compose("stop", timeout=300)
        assert engine.containers() == []
        engine.compose("start", timeout=300)
        self.settled("stop-and-start", ids)

    def restart_the_daemon(self) -> None:
        ids = set(self.engine.containers())
        took = restart_daemon(self.engine)
        print(f"  docker: dockerd stopped and started again in {took:.0f} s", flush=True)
        wait_until(lambda: (set(self.engine.containers()) == ids, self.engine.containers()), 120,
                   "restart: unless-stopped to bring every replica back", poll=1.0)  # fmt: skip
        self.settled("daemon-restart", ids)

    def recreate(self) -> None:
        engine = self.engine
        ids = set(engine.containers())
        before = {name: engine.container_id(name) for name in ids}
        override = self.tmp_path / "changed.yaml"
        override.write_text("services:\n  node:\n    environment:\n      - RAFT_TEST_CHANGE=1\n")
        engine.files.append(str(override))
        engine.compose("up", "-d", timeout=600)
        wait_until(lambda: (set(engine.containers()) == ids, engine.containers()), 120,
                   "the recreated replicas to run", poll=1.0)  # fmt: skip
        after = {name: engine.container_id(name) for name in ids}
        assert all(after[name] != before[name] for name in ids), "compose did not recreate the containers"
        self.settled("recreate", ids)

    def scale_up(self) -> set[str]:
        engine = self.engine
        if engine.name == "docker" or engine.compose_version >= (1, 4):
            engine.compose("up", "-d", "--scale", "node=5", timeout=600)
        else:
            # podman-compose before 1.4 ignores --scale: raise deploy.replicas.
            scale = self.tmp_path / "scale.yaml"
            scale.write_text("services:\n  node:\n    deploy:\n      replicas: 5\n")
            engine.files.append(str(scale))
            engine.compose("up", "-d", timeout=600)
        five = set(engine.containers())
        assert len(five) == 5, f"five replicas were asked for: {sorted(five)}"

        def dns_lists_every_replica() -> tuple[bool, Any]:
            addresses = {engine.address(name) for name in five}
            try:
                result = engine.exec(sorted(five)[0], "python3", "-c",
                    "import json, socket; print(json.dumps(sorted({a[4][0] for a in socket.getaddrinfo('node', 9001)})))",
                    timeout=10)  # fmt: skip
            except subprocess.TimeoutExpired:
                # Seen once with podman right after the scale-up: the
                # lookup hung past the exec's 30 s (the container's
                # resolver falling through to servers it cannot reach
                # here); the next try answered.
                return False, "the lookup in the container took over 10 s"
            try:
                resolved = set(json.loads(result.stdout))
            except ValueError:
                return False, result.stdout + result.stderr
            return resolved == addresses, {"resolved": sorted(resolved), "replicas": sorted(addresses)}

        wait_until(dns_lists_every_replica, 120, "the service name to resolve to all five replicas", poll=1.0)
        self.settled("scale-to-5", five)
        return five

    def scale_down(self, five: set[str]) -> None:
        engine = self.engine
        if engine.name == "docker":
            engine.compose("up", "-d", "--scale", "node=3", timeout=600)
        else:
            # podman-compose (1.6) stops no replica on a lower --scale: stop
            # and remove the two of the highest numbers, as docker-compose does.
            gone = sorted(five, key=lambda n: int(n.rsplit("_", 1)[1]))[3:]
            engine.run("rm", "-f", "-t", "10", *gone, timeout=120)
        three = set(engine.containers())
        assert len(three) == 3 and three < five, sorted(three)
        started = time.monotonic()
        self.settled("scale-to-3", three, timeout=SCALE_DOWN_S)
        print(
            f"  {engine.name}: three voters {time.monotonic() - started:.0f} s after the scale-down",
            flush=True,
        )
        self.pause_the_leader("pause-after-scale-down")

    def down_and_up(self) -> None:
        """``down`` keeps the volume: ``up`` again resumes the cluster."""
        engine = self.engine
        ids = set(engine.containers())
        engine.compose("down", timeout=300)
        assert engine.containers(status="") == []
        engine.compose("up", "-d", timeout=600)
        self.settled("down-and-up", ids)

    def summary(self) -> str:
        steps = ", ".join(
            f"{what} {at - before:.0f} s" for (_, before), (what, at) in itertools.pairwise(self.marks)
        )
        return f"{steps}; total {self.marks[-1][1] - self.marks[0][1]:.0f} s"


@pytest.mark.parametrize("engine_name", ["podman", "docker"])
def test_a_compose_cluster_survives_restarts_rebuilds_and_scale_down(
    engine_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    port = free_port()
    engine.env.update(BASE=BASE, MONITOR_PORT=str(port))
    scenario = Scenario(engine, tmp_path, monitor=f"http://127.0.0.1:{port}")
    scenario.mark("start")
    engine.compose("build", timeout=900)  # BASE comes from the environment
    scenario.mark("build")
    engine.remove_project()
    try:
        engine.compose("up", "-d", timeout=600)
        assert len(engine.containers()) == 3, "deploy.replicas: 3 did not start three replicas"
        scenario.settled("up", set(engine.containers()))
        scenario.health_follows_the_cluster()
        scenario.mark("health checks")
        scenario.pause_the_leader("pause")
        scenario.stop_and_start()
        if engine.name == "docker":
            scenario.restart_the_daemon()
        scenario.recreate()
        five = scenario.scale_up()
        scenario.scale_down(five)
        scenario.down_and_up()
        print(f"\n{engine.name} ({' '.join(engine.compose_tool[-1:])} {'.'.join(map(str, engine.compose_version))}): "
              f"{scenario.summary()}")  # fmt: skip
    finally:
        names = [n for service in ("node", "monitor") for n in engine.containers(service, status="")]
        print(f"--- the logs of {len(names)} containers", flush=True)
        for name in names:
            print(f"--- {name}\n" + engine.logs(name)[-4000:], flush=True)
        engine.remove_project()
