"""``peer-nonces.json``: the signed peer requests a node accepted within
the window, kept across its restarts (raft_trio.peer.auth refuses their
replays after a restart as before it)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from raft_trio.storage import PeerNoncesFile


def test_what_is_saved_is_what_the_next_start_loads(tmp_path: Path) -> None:
    assert PeerNoncesFile(tmp_path).load() == []  # a new directory: none yet
    accepted = [("n2", "a" * 32, 1_800_000_000_123), ("n3", "b" * 32, 1_800_000_001_000)]
    PeerNoncesFile(tmp_path).save(accepted)
    assert PeerNoncesFile(tmp_path).load() == accepted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["peer-nonces.json"]  # no temporary file left


@pytest.mark.parametrize(
    "content",
    [
        b"[not json",
        b'{"n2": 1}',
        b'[["n2", "a", "soon"]]',
        b'[["n2", "a", 1.5]]',
        b'[["n2", 1]]',
        b'[["n2", "a", true]]',
        b'[["n2", "a", 1' + b"0" * 400 + b"]]",
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=[
        "damaged",
        "a map",
        "a string time",
        "a float",
        "too short",
        "a bool",
        "a time too large",
        "nested too deep",
    ],
)
def test_a_file_that_is_not_accepted_requests_is_set_aside_with_a_warning(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """It only narrows a replay window the start time closes for peers in
    step, so a node starts without it rather than not at all."""
    (tmp_path / "peer-nonces.json").write_bytes(content)
    with caplog.at_level(logging.WARNING):
        assert PeerNoncesFile(tmp_path).load() == []
    assert "peer requests are checked by their time alone" in caplog.text
