"""The CLI reads its settings in one place (raft_trio.cli.settings): a flag
wins over its environment variable, which wins over the default; the parser
itself reads no environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from raft_trio.cli import build_parser, settings
from raft_trio.cli.argv import extract_globals
from raft_trio.cli.errors import UsageError
from raft_trio.cli.up import record_cluster

VARIABLES = (
    "APP_NAME",
    "RAFT_CLUSTER_ID",
    "API_PREFIX",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "POD_NAME",
    "POD_NAMESPACE",
    "HOSTNAME",
    "RAFT_TRIO_ENDPOINTS",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./raft-data of a real `up` in sight


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
    assert got.node_url == "http://127.0.0.1:9001"
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


def test_the_endpoints_come_from_the_flag_else_the_variable_else_up_else_the_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert settings.endpoints(None) == settings.Endpoints(
        ["http://127.0.0.1:9001", "http://127.0.0.1:9002", "http://127.0.0.1:9003"], "the default"
    )
    (tmp_path / "raft-data").mkdir()
    record_cluster(
        tmp_path / "raft-data", {"n1": "http://127.0.0.1:9101", "n2": "http://127.0.0.1:9102"}, "-"
    )
    assert settings.endpoints(None) == settings.Endpoints(
        ["http://127.0.0.1:9101", "http://127.0.0.1:9102"], "./raft-data/cluster.json"
    )
    monkeypatch.setenv("RAFT_TRIO_ENDPOINTS", "http://10.0.0.1:9001, http://10.0.0.2:9001/")
    assert settings.endpoints(None) == settings.Endpoints(
        ["http://10.0.0.1:9001", "http://10.0.0.2:9001"], "RAFT_TRIO_ENDPOINTS"
    )
    assert settings.endpoints(["https://n1:9001"]) == settings.Endpoints(["https://n1:9001"], "--endpoints")
    monkeypatch.setenv("RAFT_TRIO_ENDPOINTS", "not-a-url")
    with pytest.raises(UsageError, match="RAFT_TRIO_ENDPOINTS: 'not-a-url' is not an http"):
        settings.endpoints(None)


def test_a_damaged_record_of_up_is_passed_over(tmp_path: Path) -> None:
    (tmp_path / "raft-data").mkdir()
    for text in ("{not json", "[]", '{"nodes": ["http://x"]}', '{"nodes": {"n1": "ftp://x"}}'):
        (tmp_path / "raft-data" / "cluster.json").write_text(text)
        assert settings.endpoints(None).source == "the default"


@pytest.mark.parametrize(
    ("line", "rest", "options"),
    [
        (
            ["kv", "get", "k", "--endpoints", "http://a:1,http://b:2"],
            ["kv", "get", "k"],
            (["http://a:1", "http://b:2"], None),
        ),
        (
            ["--cluster=http://a:1", "-o", "table", "kv", "get", "k"],
            ["kv", "get", "k"],
            (["http://a:1"], "table"),
        ),
        (["status", "-ojson", "--output=table"], ["status"], (None, "table")),
        (["node", "--cluster-id", "blue"], ["node", "--cluster-id", "blue"], (None, None)),
        (["lock", "x", "--", "cmd", "-o", "json"], ["lock", "x", "--", "cmd", "-o", "json"], (None, None)),
    ],
)
def test_endpoints_and_output_stand_anywhere_on_the_line(
    line: list[str], rest: list[str], options: tuple[list[str] | None, str | None]
) -> None:
    got_rest, got = extract_globals(line)
    assert (got_rest, (got.endpoints, got.output)) == (rest, options)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (["kv", "get", "k", "--endpoints"], "--endpoints needs URL"),
        (["kv", "get", "k", "--cluster", ","], "--cluster needs URL"),
        (["kv", "get", "k", "-o", "yaml"], "-o takes table or json, not 'yaml'"),
    ],
)
def test_bad_endpoints_or_output_are_usage_errors(line: list[str], problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        extract_globals(line)


@pytest.mark.parametrize(
    ("peers", "refusal"),
    [
        ("n1=http://127.0.0.1:9101,n1=http://127.0.0.1:9102", "n1 is named twice"),
        ("n1=http://127.0.0.1:9101,n2=http://127.0.0.1:9101/", "n1 and n2 are both at"),
    ],
)
def test_peers_naming_a_member_twice_or_two_at_one_url_are_refused(
    tmp_path: Path, peers: str, refusal: str
) -> None:
    """A repeated id silently kept the last URL, and two members at one
    URL made a member that could never answer (its messages reach the
    other): ``members add`` refuses the second with a 409, ``--peers``
    (of ``node`` and of ``snapshot restore``) with exit status 2."""
    args = build_parser().parse_args(node_args(tmp_path, "--id", "n1", "--peers", peers))
    with pytest.raises(UsageError, match=refusal):
        settings.node_settings(args)


@pytest.mark.parametrize(
    ("flags", "refusal"),
    [
        (("--id", "a/b", "--peers", "a/b=http://127.0.0.1:9101"), "--id: 'a/b' is not a usable member id"),
        (("--id", "né", "--peers", "né=http://127.0.0.1:9101"), "--id: 'né' is not a usable member id"),
        (("--id", "n1", "--peers", "n1=http://127.0.0.1:9101,n 2=http://127.0.0.1:9102"), "--peers: 'n 2'"),
        (("--id", "", "--join", "http://127.0.0.1:9101"), "--id: a member needs a non-empty id"),
    ],
)
def test_an_id_no_peer_request_could_carry_is_refused_at_start(
    tmp_path: Path, flags: tuple[str, ...], refusal: str
) -> None:
    """``members add`` refuses such an id (400): its peer requests name it
    in a header that cannot carry it, and ``/`` cannot be named in
    ``DELETE /api/members/{id}``. A node started under one never joined a
    cluster; it is a usage error (exit 2) before anything is written."""
    args = build_parser().parse_args(node_args(tmp_path, *flags))
    with pytest.raises(UsageError, match=refusal):
        settings.node_settings(args)
    assert list(tmp_path.iterdir()) == []


def test_a_joining_node_on_an_ipv6_address_advertises_a_usable_url(tmp_path: Path) -> None:
    """Without ``--advertise`` a ``--join`` node is reached at its
    ``--listen`` address; an IPv6 one was written unbracketed
    (``http://::1:9101``), a URL the cluster refuses to add."""
    line = ["node", "--id", "n4", "--listen", "[::1]:9101", "--data-dir", str(tmp_path / "d")]
    args = build_parser().parse_args([*line, "--join", "http://[::1]:9001"])
    assert settings.node_settings(args).url == "http://[::1]:9101"


@pytest.mark.parametrize("listen", ["0.0.0.0:9101", "[::]:9101"])
def test_a_joining_node_on_every_address_needs_advertise(tmp_path: Path, listen: str) -> None:
    """It asked the cluster to add it at ``http://0.0.0.0:9101``, where
    every other node reaches itself (or at ``http://:::9101``, refused
    every second for ever)."""
    line = ["node", "--id", "n4", "--listen", listen, "--data-dir", str(tmp_path / "d")]
    args = build_parser().parse_args([*line, "--join", "http://10.0.0.1:9001"])
    with pytest.raises(UsageError, match=rf"--join with --listen {re.escape(listen)} needs --advertise URL"):
        settings.node_settings(args)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("advertise", [(), ("--advertise", "http://n4.example:9101")])
def test_a_node_asked_to_join_itself_is_refused(tmp_path: Path, advertise: tuple[str, ...]) -> None:
    """It waited for ever for "the cluster to join", which was its own
    waiting page; the first node of a cluster starts with ``--peers``."""
    own = advertise[1] if advertise else "http://127.0.0.1:9101"
    args = build_parser().parse_args(node_args(tmp_path, "--id", "n4", *advertise, "--join", own + "/"))
    with pytest.raises(UsageError, match="--join names this node itself"):
        settings.node_settings(args)
