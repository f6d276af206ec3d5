"""The CLI reads its settings in one place (raft_trio.cli.settings): a flag
wins over its environment variable, which wins over the default; the parser
itself reads no environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from raft_trio.cli import build_parser, settings
from raft_trio.cli.errors import UsageError

VARIABLES = (
    "APP_NAME",
    "RAFT_CLUSTER_ID",
    "API_PREFIX",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "POD_NAME",
    "POD_NAMESPACE",
    "HOSTNAME",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def node_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["node", "--listen", "127.0.0.1:9101", "--data-dir", str(tmp_path / "d"), *extra]


def test_the_parser_reads_no_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_NAME", "node")
    monkeypatch.setenv("RAFT_CLUSTER_ID", "blue")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    node = build_parser().parse_args(node_args(tmp_path))
    leave = build_parser().parse_args(["leave"])
    assert (node.discover, node.cluster_id, leave.kube_api) == (None, None, None)


def test_the_cluster_id_comes_from_its_flag_else_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    peers = ("--id", "n1", "--peers", "n1=http://127.0.0.1:9101")
    parse = build_parser().parse_args
    assert settings.node_settings(parse(node_args(tmp_path, *peers))).cluster_id is None
    monkeypatch.setenv("RAFT_CLUSTER_ID", "blue")
    assert settings.node_settings(parse(node_args(tmp_path, *peers))).cluster_id == "blue"
    flagged = parse(node_args(tmp_path, *peers, "--cluster-id", "green"))
    assert settings.node_settings(flagged).cluster_id == "green"


def test_discovery_is_turned_on_by_its_flag_else_app_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parse = build_parser().parse_args
    monkeypatch.setenv("APP_NAME", "from-the-environment")
    monkeypatch.setenv("API_PREFIX", "/v1")
    found = settings.node_settings(parse(node_args(tmp_path, "--id", "n1"))).discovery
    assert found is not None
    assert (found.name, found.port, found.api_prefix) == ("from-the-environment", 9101, "/v1")
    flagged = settings.node_settings(parse(node_args(tmp_path, "--id", "n1", "--discover", "flag"))).discovery
    assert flagged is not None and flagged.name == "flag"


def test_the_leave_hook_takes_the_pod_and_the_api_server_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parse = build_parser().parse_args
    monkeypatch.setenv("HOSTNAME", "node-7")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    got = settings.leave_settings(parse(["leave"]), None)
    assert (got.pod_name, got.api_url, got.namespace) == ("node-7", "https://[fd00::1]:6443", None)
    assert got.node_url == settings.DEFAULT_CLUSTER
    monkeypatch.setenv("POD_NAME", "node-2")
    monkeypatch.setenv("POD_NAMESPACE", "raft")
    got = settings.leave_settings(parse(["leave"]), ["http://10.0.0.5:9001"])
    assert (got.pod_name, got.namespace, got.node_url) == ("node-2", "raft", "http://10.0.0.5:9001")
    flagged = parse(["leave", "--pod", "node-1", "--namespace", "ns", "--kube-api", "https://api:443"])
    got = settings.leave_settings(flagged, None)
    assert (got.pod_name, got.namespace, got.api_url) == ("node-1", "ns", "https://api:443")


def test_leave_without_a_pod_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="leave needs --pod"):
        settings.leave_settings(build_parser().parse_args(["leave"]), None)
