"""DurableStorage as the runtime drives it: the disk half on a worker
thread, the cache half on the event loop; one transaction per Ready; the
snapshot policy; failures that stop further writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio
import trio.lowlevel

from raft_trio.core import HardState, Snapshot, SnapshotMeta
from raft_trio.storage import DiskFull, DiskIOError, DurableStorage, SnapshotPolicy, StorageError
from raft_trio.storage._datadir import SNAPSHOT_DIR
from raft_trio.storage._wal import WAL_HEADER_BYTES

from .helpers import FRAME, MEMBERSHIP, entries, entry, open_storage, snapshot_at


async def test_the_event_loop_sees_a_write_only_once_applied_to_the_cache(tmp_path: Path) -> None:
    storage = await trio.to_thread.run_sync(open_storage, tmp_path)
    batch = entries(1, 2001)
    hard_state = HardState(3, "n1", 0)
    seen: set[tuple[int, HardState]] = set()
    writing = True

    async def reader() -> None:
        while writing:
            seen.add((storage.last_index(), storage.hard_state()))
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.to_thread.run_sync(storage.write_to_disk, hard_state, batch, None)
        # Durable now, but the core reads the cache: unchanged until the
        # loop applies it, in one synchronous step.
        assert storage.last_index() == 0
        storage.apply_to_cache(hard_state, batch, None)
        writing = False
    assert seen <= {(0, HardState())}
    assert storage.last_index() == 2000
    await trio.to_thread.run_sync(storage.close)
    with open_storage(tmp_path) as reopened:
        assert reopened.entries(1, 2001) == batch
        assert reopened.hard_state() == hard_state


async def test_a_staged_snapshot_is_not_written_twice(tmp_path: Path) -> None:
    storage = await trio.to_thread.run_sync(open_storage, tmp_path)
    storage.persist(None, entries(1, 11), None)
    snapshot = snapshot_at(storage, 8, b"x" * 100_000)
    await trio.to_thread.run_sync(storage.stage_snapshot, snapshot)
    [file] = (tmp_path / SNAPSHOT_DIR).glob(f"{8:020d}-*.snap")
    inode = file.stat().st_ino
    await trio.to_thread.run_sync(storage.compact_on_disk, snapshot)
    storage.compact_cache(snapshot)
    assert file.stat().st_ino == inode
    assert storage.first_index() == 9
    storage.close()
    with open_storage(tmp_path) as reopened:
        assert reopened.snapshot() == snapshot


def test_one_ready_is_one_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the entries cannot be written, neither is the snapshot pointer
    nor the hard state of the same Ready."""
    storage = open_storage(tmp_path)
    storage.persist(HardState(1, "n1", 0), entries(1, 6), None)
    leader_snapshot = Snapshot(SnapshotMeta(20, 2, MEMBERSHIP), b"leader's state")

    def fail(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(storage._db, "insert", fail)
    with pytest.raises(DiskIOError, match="disk I/O error") as failed:
        storage.persist(HardState(2, "n2", 3), [entry(21, 2)], leader_snapshot)
    assert failed.value.exit_code == 74
    assert isinstance(failed.value.__cause__, sqlite3.OperationalError)
    # After a failed write nothing more is written: only a restart knows
    # what is on disk.
    with pytest.raises(StorageError, match="restart the node"):
        storage.persist(HardState(3, None, 0), [], None)
    assert storage.last_index() == 5  # the cache was not touched either
    monkeypatch.undo()
    storage.close()
    with open_storage(tmp_path) as reopened:
        assert reopened.hard_state() == HardState(1, "n1", 0)
        assert reopened.snapshot().meta.index == 0
        assert reopened.entries(1, 6) == entries(1, 6)


def test_a_gap_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with open_storage(tmp_path) as storage:
        storage.append(entries(1, 4))
        with pytest.raises(ValueError, match="gap"):
            storage.persist(HardState(5, "n1", 0), [entry(6)], None)
        assert storage.hard_state() == HardState()
        storage.append([entry(4)])  # still writable: a refused call is not a disk failure
    with open_storage(tmp_path) as storage:
        assert storage.hard_state() == HardState()
        assert storage.last_index() == 4


def test_the_policy_asks_for_a_snapshot_when_the_log_outgrows_it(tmp_path: Path) -> None:
    policy = SnapshotPolicy(max_entries=10, max_bytes=1000)
    with open_storage(tmp_path, policy=policy) as storage:
        storage.append(entries(1, 11))
        assert not storage.needs_snapshot(10)
        storage.append([entry(11)])
        assert storage.needs_snapshot(11)
        assert not storage.needs_snapshot(0)  # nothing applied to snapshot yet
        storage.compact(snapshot_at(storage, 11))
        assert not storage.needs_snapshot(11)
        # Bytes count as well: two large entries exceed 1000 bytes.
        storage.append([entry(12, data=b"x" * 600), entry(13, data=b"y" * 600)])
        assert storage.log_bytes() == 1232
        assert storage.needs_snapshot(13)
        storage.append([entry(13, 2, data=b"")])  # a truncation gives bytes back
        assert storage.log_bytes() == 616 + 16
    with open_storage(tmp_path, policy=policy) as storage:
        assert storage.log_bytes() == 632


def test_closing_twice_and_writing_after_close(tmp_path: Path) -> None:
    storage = open_storage(tmp_path)
    storage.close()
    storage.close()
    with pytest.raises(StorageError, match="closed"):
        storage.append([entry(1)])


def test_settings_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep_snapshots"):
        DurableStorage.open(tmp_path, "n1", keep_snapshots=3)
    with pytest.raises(ValueError, match="max_entries"):
        DurableStorage.open(tmp_path, "n1", policy=SnapshotPolicy(max_entries=0))
    assert not any(tmp_path.iterdir())  # refused before the directory was touched


def _statements(storage: DurableStorage) -> list[str]:
    """Every SQL statement the storage's connection runs from now on."""
    seen: list[str] = []
    storage._db._conn.set_trace_callback(seen.append)
    return seen


def _deletes(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith("DELETE")]


def test_appends_past_the_last_entry_delete_nothing_and_an_overwrite_deletes_the_old_suffix(
    tmp_path: Path,
) -> None:
    with open_storage(tmp_path) as storage:
        statements = _statements(storage)
        storage.persist(HardState(1, "n1", 0), entries(1, 6), None)
        storage.append(entries(6, 9))
        assert _deletes(statements) == []
        # A new leader's entry 4 replaces 4..8: the stale rows must go.
        storage.persist(HardState(2, "n2", 3), [entry(4, 2)], None)
        assert len(_deletes(statements)) == 1
        storage.append([entry(5, 2)])
        assert len(_deletes(statements)) == 1
    with open_storage(tmp_path) as reopened:
        assert reopened.last_index() == 5
        assert [e.term for e in reopened.entries(1, 6)] == [1, 1, 1, 2, 2]
        # After a restart the disk's view comes from recovery: the same rules.
        statements = _statements(reopened)
        reopened.append([entry(6, 2)])
        assert _deletes(statements) == []
        reopened.append([entry(6, 3), entry(7, 3)])
        assert len(_deletes(statements)) == 1
    with open_storage(tmp_path) as reopened:
        assert reopened.last_index() == 7
        assert [e.term for e in reopened.entries(5, 8)] == [2, 3, 3]


def test_entries_after_an_installed_snapshot_replace_every_older_row(tmp_path: Path) -> None:
    with open_storage(tmp_path) as storage:
        storage.append(entries(1, 31))
        leader_snapshot = Snapshot(SnapshotMeta(20, 2, MEMBERSHIP), b"leader's state")
        storage.persist(HardState(2, "n2", 20), [entry(21, 2)], leader_snapshot)
    with open_storage(tmp_path) as reopened:
        assert reopened.snapshot().meta.index == 20
        assert reopened.last_index() == 21
        assert reopened.term(21) == 2
        rows = reopened._db._conn.execute("SELECT min(idx), max(idx), count(*) FROM entries").fetchone()
        assert rows == (21, 21, 1)


def _wal_frames(storage: DurableStorage) -> int:
    wal = storage.data_dir.db_path.with_name(storage.data_dir.db_path.name + "-wal")
    size = wal.stat().st_size
    return 0 if size == 0 else (size - WAL_HEADER_BYTES) // FRAME


def test_a_new_hard_state_rewrites_one_page_not_its_index_too(tmp_path: Path) -> None:
    """The hard state row is updated in place: its commit writes one WAL
    frame, and with an entry appended, two (the fsync of every Ready)."""
    with open_storage(tmp_path) as storage:
        storage.persist(HardState(1, "n1", 0), entries(1, 3), None)
        storage._db.checkpoint()
        assert _wal_frames(storage) == 0
        storage.set_hard_state(HardState(1, "n1", 1))
        assert _wal_frames(storage) == 1
        storage.persist(HardState(1, "n1", 2), [entry(3)], None)
        assert _wal_frames(storage) == 3
        for commit in range(3, 200):
            storage.persist(HardState(1, "n1", commit), [entry(commit + 1)], None)
        assert storage._db._conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with open_storage(tmp_path) as reopened:
        assert reopened.hard_state() == HardState(1, "n1", 199)
        assert reopened.last_index() == 200


def test_a_full_disk_in_a_large_batch_is_reported_as_disk_full(tmp_path: Path) -> None:
    """A batch larger than SQLite's page cache spills to the WAL before
    COMMIT; SQLITE_FULL there makes SQLite roll the transaction back by
    itself, and the ROLLBACK after it used to fail and hide the real error:
    exit 74 ("replace the disk") where 73 ("free space, restart") is true.
    (A review's finding; ``max_page_count`` is a full disk, for SQLite.)"""
    storage = open_storage(tmp_path)
    storage._db._conn.execute("PRAGMA max_page_count = 40")

    def fill() -> None:
        for first in range(1, 1000, 50):
            batch = [entry(i, data=b"x" * 3000) for i in range(first, first + 50)]
            storage.persist(HardState(1, "n1", 0), batch)

    with pytest.raises(StorageError) as failed:
        fill()
    storage.close()
    assert isinstance(failed.value, DiskFull), f"{type(failed.value).__name__}: {failed.value}"
    assert failed.value.exit_code == 73
