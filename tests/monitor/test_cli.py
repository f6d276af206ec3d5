"""``raft-monitor``'s flags and the contract's environment variables (a
flag wins over its variable)."""

from __future__ import annotations

from pathlib import Path

import pytest

from raft_monitor.__main__ import build_parser, settings_from_args
from raft_monitor._run import MonitorSettings


def settings(argv: list[str]) -> MonitorSettings:
    return settings_from_args(build_parser().parse_args(argv))


def test_defaults_watch_the_local_default_node(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BIND_HOST", "RAFT_SERVICE_NAME", "TEMPLATES_DIR", "REFRESH_RATE_MILLIS", "NODE_PORT"):
        monkeypatch.delenv(name, raising=False)
    got = settings([])
    assert (got.host, got.port, got.nodes, got.discover) == (
        "127.0.0.1",
        8000,
        ("http://127.0.0.1:9001",),
        None,
    )
    assert got.refresh_ms == 500 and got.watch.refresh == 0.5


def test_the_environment_configures_the_container_way(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BIND_HOST", "0.0.0.0")
    monkeypatch.setenv("RAFT_SERVICE_NAME", "raft-node")
    monkeypatch.setenv("TEMPLATES_DIR", str(tmp_path))
    monkeypatch.setenv("REFRESH_RATE_MILLIS", "250")
    monkeypatch.setenv("NODE_PORT", "8080")
    got = settings([])
    assert (got.host, got.port, got.discover, got.node_port) == ("0.0.0.0", 8000, "raft-node", 8080)
    assert got.nodes == () and got.templates_dir == tmp_path and got.watch.refresh == 0.25


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIND_HOST", "0.0.0.0")
    monkeypatch.setenv("RAFT_SERVICE_NAME", "raft-node")
    monkeypatch.setenv("REFRESH_RATE_MILLIS", "250")
    got = settings(["--listen", "127.0.0.2:8100", "--discover", "other", "--refresh-ms", "1000"])
    assert (got.host, got.port, got.discover, got.refresh_ms) == ("127.0.0.2", 8100, "other", 1000)
    got = settings(["--nodes", "http://127.0.0.1:9001/, 127.0.0.1:9002"])
    assert got.nodes == ("http://127.0.0.1:9001", "http://127.0.0.1:9002")


@pytest.mark.parametrize(
    "argv",
    [
        ["--listen", "nowhere"],
        ["--refresh-ms", "5"],
        ["--templates-dir", "/no/such/dir"],
        ["--nodes", "ftp://x"],
    ],
)
def test_bad_flags_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        settings(argv)
