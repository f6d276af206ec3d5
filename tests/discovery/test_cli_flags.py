"""``raft-trio node`` and how it finds its cluster (``--discover``, ``--peers``,
``--join``): bad or conflicting settings give one line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from raft_trio.cli import build_parser, main, settings
from raft_trio.cli.errors import UsageError


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        ([], {}, "needs --peers, --join or --discover"),
        (["--discover", "node", "--bootstrap-expect", "0"], {}, "BOOTSTRAP_EXPECT must be at least 1"),
        (["--discover", "node"], {"BOOTSTRAP_EXPECT": "three"}, "BOOTSTRAP_EXPECT must be a whole number"),
        (["--discover", "node", "--dns-server", "dns.example"], {}, "--dns-server"),
        (["--discover", "node"], {"AUTO_REMOVE_AFTER_S": "-1"}, "AUTO_REMOVE_AFTER_S must be positive"),
        # Zero was taken silently: an interval of 0 became 5 s, and a
        # removal after 0 s meant never; an error named the variable where
        # the flag was given.
        (["--discover", "node"], {"AUTO_REMOVE_AFTER_S": "0"}, "AUTO_REMOVE_AFTER_S must be positive"),
        (["--discover", "node"], {"DISCOVERY_INTERVAL_S": "0"}, "DISCOVERY_INTERVAL_S must be positive"),
        (["--discover", "node"], {"DISCOVERY_INTERVAL_S": "nan"}, "DISCOVERY_INTERVAL_S must be positive"),
        (["--discover", "node", "--discovery-interval", "0"], {}, "--discovery-interval must be positive"),
        (["--discover", "node", "--discovery-interval", "-1"], {}, "--discovery-interval must be positive"),
        (["--discover", "node", "--auto-remove-after", "0"], {}, "--auto-remove-after must be positive"),
        (["--peers", "a=http://127.0.0.1:1"], {}, "--id is needed"),
    ],
)
def test_bad_discovery_settings_are_one_line_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    monkeypatch.delenv("APP_NAME", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        main(["node", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"), *extra])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--peers", "a=http://127.0.0.1:1", "--discover", "node"], "--peers and --discover"),
        (["--peers", "a=http://127.0.0.1:1", "--join", "http://127.0.0.1:2"], "--peers and --join"),
        (["--join", "http://127.0.0.1:2", "--discover", "node"], "--join and --discover"),
    ],
)
def test_two_ways_of_finding_the_cluster_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str], named: str
) -> None:
    """One was silently ignored: ``--peers a=... --discover node`` formed a
    cluster of one instead of finding the replicas, and ``--peers`` with
    ``--join`` never asked to join (etcd refuses such flags too)."""
    monkeypatch.delenv("APP_NAME", raising=False)
    args = build_parser().parse_args(
        ["node", "--id", "a", "--listen", "127.0.0.1:1", "--data-dir", str(tmp_path / "d"), *extra]
    )
    with pytest.raises(UsageError, match=f"{named}: give one of --peers, --join or --discover"):
        settings.node_settings(args)
    assert list(tmp_path.iterdir()) == []


def test_app_name_does_not_conflict_with_peers_or_join(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``APP_NAME`` may be set for every container of an image: it turns
    discovery on only where neither ``--peers`` nor ``--join`` is given
    (docs/containers.md), unlike a ``--discover`` on the command line."""
    monkeypatch.setenv("APP_NAME", "node")
    for extra in (["--peers", "a=http://127.0.0.1:1"], ["--join", "http://127.0.0.1:2"]):
        args = build_parser().parse_args(
            ["node", "--id", "a", "--listen", "127.0.0.1:1", "--data-dir", str(tmp_path / "d"), *extra]
        )
        assert settings.node_settings(args).discovery is None
