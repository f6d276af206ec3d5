"""``peer-marks.json``: what a node accepted from each peer, kept across
its restarts (raft_trio.peer.auth refuses what was signed no later)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from raft_trio.storage import PeerMarksFile


def test_marks_saved_are_the_marks_loaded_by_the_next_start(tmp_path: Path) -> None:
    assert PeerMarksFile(tmp_path).load() == {}  # a new directory: none yet
    PeerMarksFile(tmp_path).save({"n2": 1_800_000_000_123, "n3": 1_800_000_001_000})
    assert PeerMarksFile(tmp_path).load() == {"n2": 1_800_000_000_123, "n3": 1_800_000_001_000}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["peer-marks.json"]  # no temporary file left


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'["n2", 1]', b'{"n2": "soon"}', b'{"n2": 1.5}', b'{"n2": true}'],
    ids=["damaged", "a list", "a string", "a float", "a bool"],
)
def test_a_file_that_is_not_marks_is_set_aside_with_a_warning(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """It only narrows a replay window the start time closes for peers in
    step, so a node starts without it rather than not at all."""
    (tmp_path / "peer-marks.json").write_bytes(content)
    with caplog.at_level(logging.WARNING):
        assert PeerMarksFile(tmp_path).load() == {}
    assert "peer requests are checked by their time alone" in caplog.text
