"""The data directory: created when missing, refused (nothing changed) when
it is another node's or cluster's or of an unknown format, locked while in
use."""

from __future__ import annotations

import json
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

from raft_trio.storage import (
    FORMAT_VERSION,
    DataDirError,
    DataDirLocked,
    DurableStorage,
    open_data_dir,
)
from raft_trio.storage._datadir import DB_NAME, META_NAME
from raft_trio.testing.processes import Process
from raft_trio.testing.waiting import wait_until

from .helpers import entries, open_storage, tree_fingerprint


@pytest.fixture
def existing(tmp_path: Path) -> Path:
    """A data directory of node n1 in cluster c1 with a little log."""
    path = tmp_path / "data"
    with open_storage(path) as storage:
        storage.append(entries(1, 6))
    return path


def test_a_missing_directory_is_created_with_its_metadata(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b"
    with open_data_dir(path, "n1", "c1") as data_dir:
        assert data_dir.created
        assert data_dir.db_path.is_file()
        assert data_dir.snapshot_dir.is_dir()
    meta = json.loads((path / META_NAME).read_text())
    assert meta == {"format_version": FORMAT_VERSION, "node_id": "n1", "cluster_id": "c1"}
    with open_data_dir(path, "n1", "c1") as data_dir:
        assert not data_dir.created


def test_an_empty_directory_counts_as_new(tmp_path: Path) -> None:
    with open_data_dir(tmp_path, "n1") as data_dir:
        assert data_dir.created
        assert data_dir.meta.cluster_id is None


def test_a_directory_without_a_cluster_id_is_adopted_only_when_asked(tmp_path: Path) -> None:
    """A directory made without --cluster-id may be an old cluster's
    leftover: a cluster with an id does not take it over silently."""
    open_data_dir(tmp_path, "n1").close()
    before = tree_fingerprint(tmp_path)
    with pytest.raises(DataDirError, match=r"records no cluster id.*--adopt-data-dir") as refused:
        open_data_dir(tmp_path, "n1", "c7")
    assert refused.value.exit_code == 78
    assert tree_fingerprint(tmp_path) == before
    with open_data_dir(tmp_path, "n1", "c7", adopt=True) as data_dir:
        assert data_dir.meta.cluster_id == "c7"
    with open_data_dir(tmp_path, "n1") as data_dir:  # None accepts any
        assert data_dir.meta.cluster_id == "c7"
    with pytest.raises(DataDirError):
        open_data_dir(tmp_path, "n1", "c8")


def _rewrite_meta(path: Path, **changes: object) -> None:
    meta = json.loads((path / META_NAME).read_text())
    meta.update(changes)
    (path / META_NAME).write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("node_id", "cluster_id", "message"),
    [
        ("n2", "c1", "belongs to node 'n1', not 'n2'"),
        ("n1", "c2", "belongs to cluster 'c1', not 'c2'"),
    ],
)
def test_another_nodes_or_clusters_directory_is_refused_unchanged(
    existing: Path, node_id: str, cluster_id: str, message: str
) -> None:
    before = tree_fingerprint(existing)
    with pytest.raises(DataDirError, match=message) as info:
        DurableStorage.open(existing, node_id, cluster_id)
    assert info.value.exit_code == 78
    assert "Nothing was changed" in str(info.value)
    assert tree_fingerprint(existing) == before


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 0, "1", None])
def test_an_unknown_format_version_is_refused_unchanged(existing: Path, version: object) -> None:
    _rewrite_meta(existing, format_version=version)
    before = tree_fingerprint(existing)
    with pytest.raises(DataDirError, match="format version"):
        DurableStorage.open(existing, "n1", "c1")
    assert tree_fingerprint(existing) == before


def test_a_database_of_another_format_version_is_refused(existing: Path) -> None:
    conn = sqlite3.connect(existing / DB_NAME)
    conn.execute(f"PRAGMA user_version = {FORMAT_VERSION + 1}")
    conn.close()
    before = (existing / DB_NAME).read_bytes()
    with pytest.raises(DataDirError, match="format version"):
        DurableStorage.open(existing, "n1", "c1")
    assert (existing / DB_NAME).read_bytes() == before
    open_data_dir(existing, "n1", "c1").close()  # the lock was released


@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b'{"format_version": 1}'])
def test_unreadable_metadata_is_refused_unchanged(existing: Path, content: bytes) -> None:
    (existing / META_NAME).write_bytes(content)
    before = tree_fingerprint(existing)
    with pytest.raises(DataDirError, match=META_NAME):
        open_data_dir(existing, "n1", "c1")
    assert tree_fingerprint(existing) == before


def test_a_lost_database_is_refused_rather_than_started_empty(existing: Path) -> None:
    """Starting empty would forget this node's vote: it could vote twice."""
    (existing / DB_NAME).unlink()
    before = tree_fingerprint(existing)
    with pytest.raises(DataDirError, match="could let it vote twice"):
        DurableStorage.open(existing, "n1", "c1")
    assert tree_fingerprint(existing) == before


def test_a_directory_that_is_not_ours_is_not_touched(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("someone else's")
    before = tree_fingerprint(tmp_path)
    with pytest.raises(DataDirError, match="not a raft-trio data directory"):
        open_data_dir(tmp_path, "n1", "c1")
    assert tree_fingerprint(tmp_path) == before
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(DataDirError, match="not a directory"):
        open_data_dir(file, "n1")


def test_a_second_opener_in_the_same_process_is_refused(existing: Path) -> None:
    with open_storage(existing) as storage:
        with pytest.raises(DataDirLocked, match="locked by another process") as info:
            open_storage(existing)
        assert info.value.exit_code == 75
        assert storage.last_index() == 5  # the holder is unaffected
    with open_storage(existing) as storage:  # released on close
        assert storage.last_index() == 5


def test_another_process_holding_the_directory_locks_us_out(existing: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import time
        from raft_trio.storage import DurableStorage
        storage = DurableStorage.open({str(existing)!r}, "n1", "c1")
        print("open", flush=True)
        time.sleep(120)  # until killed; bounded, should the test run die first
        """
    )
    holder = Process("holder", [sys.executable, "-c", script], tmp_path / "holder.log")
    holder.start()
    try:
        wait_until(lambda: ("open" in holder.log_text(), holder.log_text()), 30, "the holder to open it")
        with pytest.raises(DataDirLocked):
            open_storage(existing)
    finally:
        holder.kill()  # a crash releases the lock too
    with open_storage(existing) as storage:
        assert storage.entries(1, 6) == entries(1, 6)
