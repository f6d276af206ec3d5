"""``raft-trio snapshot save`` leaves a whole backup or nothing: no
``FILE.part`` (which holds every key it got so far) outlives a save that
failed, whatever ended it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raft_trio.cli.errors import UsageError
from raft_trio.cli.snapshot import save


class FailingSnapshot:
    """A client whose snapshot stream fails after its first chunk."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Iterator[bytes]]:
        def chunks() -> Iterator[bytes]:
            yield b"the first keys of the backup"
            raise self.error

        yield chunks()


@pytest.mark.parametrize(
    ("error", "raised"),
    [(OSError(28, "No space left on device"), UsageError), (KeyboardInterrupt(), KeyboardInterrupt)],
    ids=["disk full", "ctrl-c"],
)
def test_a_failed_save_leaves_no_part_file(tmp_path: Path, error: BaseException, raised: type) -> None:
    client: Any = FailingSnapshot(error)
    with pytest.raises(raised):
        save(tmp_path / "backup.snapshot", client)
    assert list(tmp_path.iterdir()) == []
