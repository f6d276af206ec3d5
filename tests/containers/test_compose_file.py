"""compose.yaml and Containerfile hold what the README promises, checked
without a container engine: the services, replicas, environment, ports,
volume and health checks, and commands that the real parsers accept."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from raft_trio.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]

yaml = pytest.importorskip("yaml", reason="PyYAML parses compose.yaml (pip install pyyaml)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def environment(service: dict[str, Any]) -> dict[str, str]:
    """Both spellings of compose: a list of NAME=value or a mapping."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_node_service_runs_three_replicas_that_discover_each_other(compose: dict[str, Any]) -> None:
    node = compose["services"]["node"]
    assert node["deploy"]["replicas"] == 3
    env = environment(node)
    assert env["APP_NAME"] == "node"
    assert int(env.get("BOOTSTRAP_EXPECT", "3")) == node["deploy"]["replicas"]
    # Replicas cannot share a fixed name or a host port.
    assert "container_name" not in node and "ports" not in node and "hostname" not in node
    assert node["build"]["dockerfile"] == "Containerfile"


def test_each_replica_keeps_its_data_in_the_volume(compose: dict[str, Any]) -> None:
    node = compose["services"]["node"]
    mounts = [str(v).split(":") for v in node["volumes"]]
    assert ["raft-data", "/data"] in [m[:2] for m in mounts]
    assert "raft-data" in compose["volumes"]
    command = node["command"]
    # Named by the container name, which recreation keeps: a recreated
    # replica finds the data of the one it replaces.
    assert command[command.index("--data-dir") + 1] == "/data/{name}"


def test_node_command_is_one_the_cli_accepts(compose: dict[str, Any]) -> None:
    command = compose["services"]["node"]["command"]
    assert command[:2] == ["raft-trio", "node"]
    args = build_parser().parse_args(command[1:])
    assert args.listen == "0.0.0.0:9001"


def test_monitor_service_publishes_port_8000_and_finds_the_nodes(compose: dict[str, Any]) -> None:
    monitor = compose["services"]["monitor"]
    assert "${MONITOR_PORT:-8000}:8000" in [str(p) for p in monitor["ports"]]
    env = environment(monitor)
    assert env["RAFT_SERVICE_NAME"] == "node"
    assert env.get("NODE_PORT", "9001") == "9001"
    assert monitor["command"][0] == "raft-monitor"
    monitor_main = pytest.importorskip("raft_monitor.__main__")
    args = monitor_main.build_parser().parse_args(monitor["command"][1:])
    assert args.listen == "0.0.0.0:8000"
    # No anonymous volume for the image's VOLUME /data: the monitor stores nothing.
    assert monitor["tmpfs"] == ["/data"] and "volumes" not in monitor


def test_health_checks_ask_a_node_whether_it_serves_a_cluster(compose: dict[str, Any]) -> None:
    """A node is healthy while it is a member caught up with a live leader
    (/readyz), not merely while its process answers (/healthz); the
    monitor has nothing more than /healthz to say."""
    for name, path in (("node", "127.0.0.1:9001/readyz"), ("monitor", "127.0.0.1:8000/healthz")):
        test = compose["services"][name]["healthcheck"]["test"]
        test = test if isinstance(test, str) else " ".join(test)
        assert path in test, name


def test_the_base_image_comes_from_the_environment(compose: dict[str, Any]) -> None:
    for name in ("node", "monitor"):
        assert (
            compose["services"][name]["build"]["args"]["BASE"]
            == "${BASE:-docker.io/library/python:3.11-slim}"
        )
    scale_down = environment(compose["services"]["node"])
    assert float(scale_down["AUTO_REMOVE_AFTER_S"]) > 0


def test_the_payload_scripts_named_in_compose_are_in_the_image(compose: dict[str, Any]) -> None:
    env = environment(compose["services"]["node"])
    containerfile = (ROOT / "Containerfile").read_text()
    for variable, script in (("SCRIPT_LEADER_PATH", "leader.sh"), ("SCRIPT_FOLLOWER_PATH", "follower.sh")):
        assert env[variable] == f"/opt/raft-trio/examples/{script}"
        assert f"examples/{script}" in containerfile
        path = ROOT / "examples" / script
        assert path.read_text().startswith("#!/bin/sh") and path.stat().st_mode & 0o111


def test_containerfile_base_user_health_volume_and_one_process() -> None:
    text = (ROOT / "Containerfile").read_text()
    instructions = [
        line.split(None, 1) for line in re.sub(r"\\\n\s*", " ", text).splitlines() if line and line[0] != "#"
    ]
    by_name: dict[str, list[str]] = {}
    for name, *rest in instructions:
        by_name.setdefault(name.upper(), []).append(rest[0] if rest else "")
    assert by_name["ARG"][0].startswith("BASE=docker.io/library/python:")
    assert by_name["FROM"] == ["${BASE}"]
    assert by_name["USER"][-1] not in ("root", "0")
    assert by_name["VOLUME"] == ['["/data"]']
    assert "/readyz" in by_name["HEALTHCHECK"][0]
    assert len(by_name["CMD"]) == 1 and "ENTRYPOINT" not in by_name
    assert shlex.split(by_name["CMD"][0].strip("[]").replace(",", " "))[:2] == ["raft-trio", "node"]


def test_the_readme_promises_what_the_files_hold(compose: dict[str, Any]) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    if "Containers and discovery" not in text:
        text = (ROOT / "docs" / "containers.md").read_text()
    for promise in (
        "docker-compose up",
        "docker compose up",
        "podman-compose up",
        "BASE=",
        "--scale node=5",
        "http://localhost:8000",
        "deploy.replicas: 3",
        "APP_NAME=node",
        "RAFT_SERVICE_NAME=node",
        "BOOTSTRAP_EXPECT",
        "AUTO_REMOVE_AFTER_S",
        "raft-trio members remove",
        "/data/{name}",
        "podman pause",
        "podman unpause",
        "deploy.mode: replicated",
        "tests/containers/full-test.sh",
    ):
        assert promise in text, f"the containers section does not mention {promise!r}"
