"""``raft-trio node --discover``: bad settings give one line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from raft_trio.cli import main


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        ([], {}, "needs --peers, --join or --discover"),
        (["--discover", "node", "--bootstrap-expect", "0"], {}, "BOOTSTRAP_EXPECT must be at least 1"),
        (["--discover", "node"], {"BOOTSTRAP_EXPECT": "three"}, "BOOTSTRAP_EXPECT must be a whole number"),
        (["--discover", "node", "--dns-server", "dns.example"], {}, "--dns-server"),
        (["--discover", "node"], {"AUTO_REMOVE_AFTER_S": "-1"}, "AUTO_REMOVE_AFTER_S must be positive"),
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
