"""compose.yaml as the two tools read it, without a container engine.

- Docker Compose validates a file against the Compose Specification's JSON
  schema before anything else; the same schema, as check-jsonschema vendors
  it (``check-jsonschema --builtin-schema vendor.compose-spec``), must
  accept compose.yaml, and it does reject the mistakes Docker would.
- podman-compose (1.4 or newer, the first with ``--scale``) is run for
  real against a stand-in ``podman`` that records its arguments and creates
  nothing: ``up`` must create three node replicas and ``up --scale node=5``
  five, each on the project's network with the DNS alias ``node`` (how
  the replicas find each other), and the monitor. podman-compose 1.4 to
  1.6 count ``deploy.replicas`` only when ``deploy.mode: replicated`` is
  spelled out, although it is the specification's default; without it
  ``up`` starts one replica, which the last test shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

yaml = pytest.importorskip("yaml", reason="PyYAML parses compose.yaml (pip install pyyaml)")


def load_compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


# -- the Compose Specification's schema -----------------------------------------------


@pytest.fixture(scope="module")
def compose_spec() -> Any:
    pytest.importorskip("check_jsonschema", reason="check-jsonschema vendors the compose-spec schema")
    jsonschema = pytest.importorskip("jsonschema")
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    assert schema["title"] == "Compose Specification"
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def problems(validator: Any, document: Any) -> list[str]:
    return sorted(f"{error.json_path}: {error.message}" for error in validator.iter_errors(document))


def test_compose_yaml_follows_the_compose_specification(compose_spec: Any) -> None:
    assert problems(compose_spec, load_compose()) == []


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("a misspelt deploy key", lambda d: d["services"]["node"]["deploy"].update(replica=5)),
        ("an unknown service key", lambda d: d["services"]["node"].update(scale_to=5)),
        ("replicas as a list", lambda d: d["services"]["node"]["deploy"].update(replicas=[3])),
        ("environment as a number", lambda d: d["services"]["monitor"].update(environment=8000)),
        ("an unknown top-level key", lambda d: d.update(service={})),
    ],
)
def test_the_schema_rejects_what_docker_compose_rejects(compose_spec: Any, where: str, change: Any) -> None:
    document = load_compose()
    change(document)
    assert problems(compose_spec, document), f"{where} passed the schema"


def test_replicas_are_declared_once_and_can_be_scaled() -> None:
    """Rules Docker Compose checks beyond the schema: replicas of one service
    cannot share a container name or a host port, and ``scale`` and
    ``deploy.replicas`` must not disagree (we use only the latter)."""
    node = load_compose()["services"]["node"]
    assert node["deploy"] == {"mode": "replicated", "replicas": 3}
    assert "scale" not in node
    assert "container_name" not in node and "ports" not in node and "hostname" not in node


# -- podman-compose, against a stand-in podman ------------------------------------------

FAKE_PODMAN = """\
import json, os, sys
log = os.environ["FAKE_PODMAN_LOG"]
args = sys.argv[1:]
before = [json.loads(line) for line in open(log)] if os.path.exists(log) else []
with open(log, "a") as f:
    f.write(json.dumps(args) + "\\n")
if args[:1] in (["--version"], ["version"]):
    print("podman version 4.3.1")
elif args[:1] == ["ps"]:
    print("[]")
elif args[:2] in (["network", "exists"], ["volume", "inspect"], ["pod", "exists"]):
    name = args[2]
    made = [a for a in before if a[:2] == [args[0], "create"] and (a[-1] == name or "--name=" + name in a)]
    if not made:
        sys.exit(1)
    if args[1] == "inspect":
        print(json.dumps([{"Name": name, "Mountpoint": "/nonexistent"}]))
"""


@pytest.fixture(scope="module")
def podman_compose_version() -> tuple[int, ...]:
    module = pytest.importorskip("podman_compose", reason="pip install 'podman-compose>=1.4'")
    version = tuple(int(part) for part in module.__version__.split(".")[:3])
    if version < (1, 4):
        pytest.skip(f"podman-compose {module.__version__} has no --scale; this test wants 1.4 or newer")
    return version


def podman_compose_up(tmp_path: Path, compose_file: Path, *args: str) -> list[list[str]]:
    """Run ``podman-compose up -d`` for real against the stand-in podman;
    return every podman command it gave, in order."""
    fake = tmp_path / "podman"
    fake.write_text(f"#!{sys.executable}\n{FAKE_PODMAN}")
    fake.chmod(0o755)
    log = tmp_path / "podman.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "FAKE_PODMAN_LOG": str(log)}
    result = subprocess.run(
        [
            sys.executable, "-m", "podman_compose", "--podman-path", str(fake),
            "-p", "ct", "-f", str(compose_file), "up", "-d", "--no-build", *args,
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def created(commands: list[list[str]], service: str) -> dict[str, list[str]]:
    """The containers of ``service`` that were created, by name."""
    label = f"io.podman.compose.service={service}"
    return {
        next(a.split("=", 1)[1] for a in c if a.startswith("--name=")): c
        for c in commands
        if c[:1] == ["create"] and label in c
    }


@pytest.mark.parametrize(("scale", "replicas"), [((), 3), (("--scale", "node=5"), 5)])
def test_podman_compose_creates_the_replicas_under_one_dns_name(
    podman_compose_version: tuple[int, ...], tmp_path: Path, scale: tuple[str, ...], replicas: int
) -> None:
    commands = podman_compose_up(tmp_path, ROOT / "compose.yaml", *scale)
    nodes = created(commands, "node")
    assert sorted(nodes) == [f"ct_node_{n}" for n in range(1, replicas + 1)]
    for name, command in nodes.items():
        # The project's own network (netavark/aardvark-dns answer the alias
        # with every replica's address), the shared volume, the environment.
        assert "--network=ct_default:alias=node" in command, name
        assert "type=volume,source=ct_raft-data,destination=/data" in command, name
        assert "APP_NAME=node" in command, name
        assert command[-6:] == [
            "raft-trio",
            "node",
            "--listen",
            "0.0.0.0:9001",
            "--data-dir",
            "/data/{name}",
        ]
    network = next(c for c in commands if c[:2] == ["network", "create"])
    assert network[-1] == "ct_default" and "--disable-dns" not in network
    monitor = created(commands, "monitor")
    assert list(monitor) == ["ct_monitor_1"]
    assert "8000:8000" in monitor["ct_monitor_1"] and "RAFT_SERVICE_NAME=node" in monitor["ct_monitor_1"]
    assert monitor["ct_monitor_1"][monitor["ct_monitor_1"].index("--tmpfs") + 1] == "/data"
    started = [c[1] for c in commands if c[:1] == ["start"]]
    assert sorted(started) == sorted([*nodes, "ct_monitor_1"])


def test_without_deploy_mode_podman_compose_starts_one_replica(
    podman_compose_version: tuple[int, ...], tmp_path: Path
) -> None:
    """Why compose.yaml spells out ``mode: replicated`` (seen with 1.4.0 to
    1.6.0). A later release that counts the replicas without it is told
    apart, not failed: the file works with both."""
    document = load_compose()
    del document["services"]["node"]["deploy"]["mode"]
    compose_file = tmp_path / "compose.yaml"
    compose_file.write_text(yaml.safe_dump(document))
    nodes = sorted(created(podman_compose_up(tmp_path, compose_file), "node"))
    if podman_compose_version > (1, 6, 0) and len(nodes) == 3:
        pytest.skip("this podman-compose counts deploy.replicas without deploy.mode")
    assert nodes == ["ct_node_1"]
