"""``raft-trio snapshot save FILE`` leaves a whole backup or nothing: a
FILE it cannot become is refused before the cluster is asked for
anything, and no ``FILE.part`` (which holds every key it got so far)
outlives a save that failed, whatever ended it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from raft_trio.cli.errors import UsageError
from raft_trio.cli.snapshot import save
from raft_trio.client import Client


class NoCluster:
    """A client that records whether a backup was asked for."""

    def __init__(self) -> None:
        self.asked = False

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Iterator[bytes]]:
        self.asked = True
        yield iter([b"raft-trio backup 1\n"])


def test_a_directory_is_refused_before_anything_is_downloaded(tmp_path: Path) -> None:
    """``snapshot save /tmp`` downloaded the backup into /tmp.part, then
    ended in an IsADirectoryError traceback, leaving /tmp.part behind."""
    client = NoCluster()
    with pytest.raises(UsageError, match="is a directory"):
        save(tmp_path, cast(Client, client))
    assert not client.asked
    assert not tmp_path.with_name(tmp_path.name + ".part").exists()


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
