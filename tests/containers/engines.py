"""The two container engines of the full container test, behind one small
interface: Podman with podman-compose, and Docker (Debian's docker.io, a
``dockerd`` this module starts and stops itself) with Debian's
docker-compose 1.29. Each runs the same scenario
(``test_compose_scenario.py``).

Neither can pull from a registry here: the base image is imported from a
root file system made with debootstrap (``RAFT_CONTAINER_ROOTFS``, a tar
file; ``full-test.sh`` makes it), which holds python3, its venv module, and
the host's CA bundle with a ``/etc/pip.conf`` naming it, so that pip inside
``docker build`` (which has no mounts) trusts what the host trusts.

Settings (environment):

- ``RAFT_CONTAINER_STATE``: where engine state lives (default
  ``/tmp/raft-trio-containers``): Podman's ``containers.conf``, and
  ``dockerd``'s data root, exec root, socket and log.
- ``RAFT_CONTAINER_BASE``: the base image's name (default
  ``localhost/raft-trio-base``).
- ``RAFT_DOCKER``: the Docker client (default ``/usr/bin/docker``, Debian's,
  of the daemon's own version, where it exists; else ``docker``).
- ``RAFT_DOCKERD``, ``RAFT_DOCKER_COMPOSE``, ``RAFT_PODMAN_COMPOSE``: the
  daemon and the compose commands.
- ``RAFT_CONTAINER_REQUIRE=1``: an engine that cannot be set up fails the
  test instead of skipping it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("RAFT_CONTAINER_STATE") or "/tmp/raft-trio-containers")
BASE = os.environ.get("RAFT_CONTAINER_BASE") or "localhost/raft-trio-base"
ROOTFS = os.environ.get("RAFT_CONTAINER_ROOTFS") or str(STATE / "raft-trio-base.tar")


class Unable(Exception):
    """The engine cannot be set up on this machine (the reason)."""


def unable(reason: str) -> None:
    """Skip, or fail with RAFT_CONTAINER_REQUIRE=1."""
    if os.environ.get("RAFT_CONTAINER_REQUIRE") == "1":
        pytest.fail(f"cannot set up the engine: {reason}")
    pytest.skip(f"cannot set up the engine: {reason}")


def run(
    argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 900, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(argv),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        pytest.fail(f"{shlex.join(argv)} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@dataclasses.dataclass
class Engine:
    """One engine and its compose tool, for one compose project."""

    name: str
    cli: list[str]
    compose_tool: list[str]
    env: dict[str, str]
    project: str
    #: Extra compose files (overrides), after compose.yaml.
    files: list[str] = dataclasses.field(default_factory=list)
    compose_version: tuple[int, ...] = (0,)
    #: Docker: the daemon this test started.
    daemon: Dockerd | None = None

    # -- the engine's command line ---------------------------------------------

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([*self.cli, *args], self.env, timeout, check)

    def compose(
        self, *args: str, timeout: float = 900, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        files = [arg for f in ["compose.yaml", *self.files] for arg in ("-f", f)]
        return run([*self.compose_tool, "-p", self.project, *files, *args], self.env, timeout, check)

    def containers(self, service: str = "node", status: str = "running") -> list[str]:
        """The project's containers of ``service`` in ``status`` ("": any)."""
        filters = [
            "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
        ]  # fmt: skip
        if status:
            filters += ["--filter", f"status={status}"]
        return sorted(self.run("ps", "-a", *filters, "--format", "{{.Names}}").stdout.split())

    def exec(self, container: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self.run("exec", container, *argv, timeout=timeout, check=False)

    def inspect(self, container: str, template: str) -> str:
        return self.run("inspect", "--format", template, container).stdout.strip()

    def address(self, container: str) -> str:
        return self.inspect(container, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")

    def container_id(self, container: str) -> str:
        return self.inspect(container, "{{.Id}}")

    def logs(self, container: str) -> str:
        result = self.run("logs", container, check=False)
        return result.stdout + result.stderr

    def healthy(self, container: str) -> tuple[bool, str]:
        """The health check of compose.yaml, as the engine runs it: Docker
        runs it itself (its state); Podman runs it from systemd timers,
        which these machines lack, so it is run once by hand."""
        if self.name == "docker":
            state = self.inspect(container, "{{.State.Health.Status}}")
            return state == "healthy", state
        result = self.run("healthcheck", "run", container, check=False, timeout=30)
        return result.returncode == 0, (result.stdout + result.stderr).strip() or "healthy"

    def remove_project(self) -> None:
        """Everything of the test project, however many replicas it had."""
        label = f"label=com.docker.compose.project={self.project}"
        names = self.run("ps", "-a", "--filter", label, "--format", "{{.Names}}", check=False).stdout.split()
        if names:
            self.run("unpause", *names, check=False)
            self.run("rm", "-f", "-v", *names, check=False, timeout=120)
        if self.name == "podman":
            self.run("pod", "rm", "-f", f"pod_{self.project}", check=False)
        self.run("volume", "rm", "-f", f"{self.project}_raft-data", check=False)
        self.run("network", "rm", f"{self.project}_default", check=False)
        # Earlier builds of the image, untagged by this one (ours only: by label).
        self.run(
            "image", "prune", "-f", "--filter", "label=org.opencontainers.image.title=raft-trio", check=False
        )


# -- Podman ---------------------------------------------------------------------------


def podman_compose_command() -> list[str]:
    """``RAFT_PODMAN_COMPOSE``, else this Python's podman_compose module
    (``pip install -e '.[test]'``), else ``podman-compose``."""
    if os.environ.get("RAFT_PODMAN_COMPOSE"):
        return shlex.split(os.environ["RAFT_PODMAN_COMPOSE"])
    if importlib.util.find_spec("podman_compose"):
        return [sys.executable, "-m", "podman_compose"]
    return ["podman-compose"]


def podman_engine() -> Iterator[Engine]:
    tool = podman_compose_command()
    if shutil.which("podman") is None or shutil.which(tool[0]) is None:
        unable("podman or podman-compose is not installed")
    STATE.mkdir(parents=True, exist_ok=True)
    conf = STATE / "containers.conf"
    # runc, and open-file limits for the containers: what podman 4.3 as
    # root needs on these machines.
    conf.write_text(
        '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n[engine]\nruntime = "runc"\n'
    )
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    engine = Engine("podman", ["podman"], tool, env, "rafttriopodman")
    if run(["podman", "image", "exists", BASE], env, check=False).returncode != 0:
        import_base(engine)
    works = run(
        ["podman", "run", "--rm", BASE, "python3", "-c", "import venv"], env, check=False, timeout=120
    )
    if works.returncode != 0:
        unable(f"podman cannot run a container here: {works.stderr[-500:]}")
    text = run([*tool, "version"], env, check=False).stdout
    found = re.search(r"podman-compose[r]? version:?\s+(\d+)\.(\d+)\.(\d+)", text)
    engine.compose_version = tuple(int(n) for n in found.groups()) if found else (0,)
    yield engine


def import_base(engine: Engine) -> None:
    """Import the base image from the debootstrap tar file."""
    if not Path(ROOTFS).is_file():
        unable(f"no base image {BASE} and no root file system {ROOTFS} to import (see full-test.sh)")
    with open(ROOTFS, "rb") as tar:
        result = subprocess.run(
            [*engine.cli, "import", "-", BASE],
            stdin=tar,
            capture_output=True,
            text=True,
            env=engine.env,
            timeout=600,
        )
    if result.returncode != 0:
        unable(f"{engine.name} import failed: {result.stderr[-500:]}")


# -- Docker ---------------------------------------------------------------------------


def docker_client() -> list[str]:
    """Debian's client (/usr/bin/docker, the daemon's own version) rather
    than whatever ``docker`` comes first in PATH, unless RAFT_DOCKER says."""
    if os.environ.get("RAFT_DOCKER"):
        return shlex.split(os.environ["RAFT_DOCKER"])
    return ["/usr/bin/docker"] if os.access("/usr/bin/docker", os.X_OK) else ["docker"]


class Dockerd:
    """A ``dockerd`` of the test's own: its own socket, data root and exec
    root under the state directory, so it touches no other Docker setup.
    (It does make the default bridge, docker0, and its iptables rules.)"""

    def __init__(self, root: Path, client: list[str]) -> None:
        self.root = root
        self.client = client
        self.socket = root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.log = root / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        argv = [
            *shlex.split(os.environ.get("RAFT_DOCKERD") or "dockerd"),
            "--host", self.host,
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.root / "dockerd.pid"),
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        env = {**os.environ, "DOCKER_HOST": self.host}
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise Unable(f"dockerd exited with {self.process.returncode}: {self.tail()}")
            answer = run(
                [*self.client, "version", "--format", "{{.Server.Version}}"], env, check=False, timeout=30
            )
            if answer.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise Unable(f"dockerd did not answer within {timeout:.0f} s: {self.tail()}")
            time.sleep(0.5)

    def stop(self, timeout: float = 90) -> None:
        """SIGTERM, as a host shutdown does: dockerd stops the containers
        first (each gets SIGTERM, then SIGKILL after its stop timeout)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def docker_engine() -> Iterator[Engine]:
    client = docker_client()
    tool = shlex.split(os.environ.get("RAFT_DOCKER_COMPOSE") or "docker-compose")
    dockerd = shlex.split(os.environ.get("RAFT_DOCKERD") or "dockerd")[0]
    missing = [c for c in (client[0], tool[0], dockerd) if shutil.which(c) is None]
    if missing:
        unable(f"not installed: {', '.join(missing)} (apt-get install docker.io docker-compose)")
    system = run([*client, "-H", "unix:///var/run/docker.sock", "version"], check=False, timeout=30)
    if system.returncode == 0:
        unable(
            "another dockerd already runs (/var/run/docker.sock): the test runs its own, and two would share docker0"
        )
    daemon = Dockerd(STATE / "docker", client)
    try:
        daemon.start()
    except Unable as error:
        daemon.stop()
        unable(str(error))
    try:
        env = {**os.environ, "DOCKER_HOST": daemon.host}
        env.pop("DOCKER_CONTEXT", None)
        engine = Engine("docker", client, tool, env, "rafttriodocker", daemon=daemon)
        if run([*client, "image", "inspect", BASE], env, check=False).returncode != 0:
            import_base(engine)
        works = run(
            [*client, "run", "--rm", BASE, "python3", "-c", "import venv"], env, check=False, timeout=120
        )
        if works.returncode != 0:
            unable(f"docker cannot run a container here: {works.stderr[-500:]}")
        version = run([*tool, "version", "--short"], env, check=False).stdout.strip()
        engine.compose_version = tuple(int(n) for n in re.findall(r"\d+", version)[:3]) or (0,)
        yield engine
    finally:
        daemon.stop()


def restart_daemon(engine: Engine) -> float:
    """Docker: stop dockerd and start it again, as a host reboot does;
    ``restart: unless-stopped`` brings the containers back. Seconds taken."""
    assert engine.daemon is not None, "only Docker has a daemon to restart"
    started = time.monotonic()
    engine.daemon.stop()
    engine.daemon.start()
    return time.monotonic() - started


def status_of(engine: Engine, container: str) -> dict[str, Any] | str:
    """A replica's own ``/api/status``, asked inside its container."""
    result = engine.exec(
        container, "python3", "-c",
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9001/api/status', timeout=3).read().decode())",
    )  # fmt: skip
    try:
        answer = json.loads(result.stdout)
    except ValueError:
        return (result.stdout + result.stderr)[-300:]
    return answer if isinstance(answer, dict) else str(answer)
