"""Recovery: a torn or corrupt tail is cut and logged, never served; what
cannot be cut (the vote, the only snapshot) is refused, unchanged."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from raft_trio.core import HardState, MemoryStorage, Snapshot, SnapshotMeta
from raft_trio.storage import CorruptionError, DurableStorage, SnapshotStore
from raft_trio.storage._datadir import DB_NAME, SNAPSHOT_DIR
from raft_trio.storage._highwater import MARK_NAME, HighWater, read_mark, write_mark

from .helpers import (
    INITIAL,
    MEMBERSHIP,
    crash_image,
    entries,
    entry,
    open_storage,
    snapshot_at,
    tree_fingerprint,
)


def _write_log(path: Path, count: int) -> None:
    """``count`` entries, one Ready each, with a hard state whose commit
    trails the entry written with it by one (so a recovered hard state
    shows which transaction it came from)."""
    with open_storage(path) as storage:
        for i in range(1, count + 1):
            storage.persist(HardState(1, "n1", i - 1), [entry(i)], None)


def _sql(path: Path, statement: str) -> None:
    conn = sqlite3.connect(path / DB_NAME, isolation_level=None)
    try:
        conn.execute(statement)
    finally:
        conn.close()


def test_a_clean_restart_recovers_everything(tmp_path: Path) -> None:
    _write_log(tmp_path, 30)
    with open_storage(tmp_path) as storage:
        assert storage.last_index() == 30
        assert storage.entries(1, 31) == entries(1, 31)
        assert storage.hard_state() == HardState(1, "n1", 29)
        assert storage.snapshot() == INITIAL


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("UPDATE entries SET crc = (crc | 1) - (crc & 1) WHERE idx >= 18", "entry 18 failed its checksum"),
        ("UPDATE entries SET data = X'00' WHERE idx = 10", "entry 10 failed its checksum"),  # checksum kept
        ("UPDATE entries SET term = 2 WHERE idx = 25", "entry 25 failed its checksum"),
        ("UPDATE entries SET kind = 9 WHERE idx = 30", "entry 30 failed its checksum"),
        ("DELETE FROM entries WHERE idx = 12", "entry 12 is missing"),  # a hole
        ("DELETE FROM entries WHERE idx >= 27", "the log ends at entry 26, below the commit index 29"),
    ],
)
def test_a_damaged_or_missing_row_is_refused_and_nothing_changes(
    tmp_path: Path, damage: str, reason: str
) -> None:
    """SQLite transactions are atomic and SQLite drops a torn WAL tail
    itself, so a row that fails is one this node committed and
    acknowledged: never cut, refused."""
    _write_log(tmp_path, 30)
    _sql(tmp_path, damage)
    before = tree_fingerprint(tmp_path)
    with pytest.raises(CorruptionError) as refused:
        open_storage(tmp_path)
    message = str(refused.value)
    assert reason in message
    assert str(tmp_path / DB_NAME) in message  # names the file
    assert "raft-trio members remove n1" in message  # and the way back
    assert "\n" not in message
    assert refused.value.exit_code == 65
    assert tree_fingerprint(tmp_path) == before


def test_a_torn_wal_loses_only_the_last_transactions_whole(tmp_path: Path) -> None:
    """A crash in the middle of writing the WAL: SQLite drops the frames of
    the unfinished transaction, so the node restarts with a prefix of what
    it wrote, each Ready whole (hard state and entry together) or absent."""
    live = tmp_path / "live"
    storage = open_storage(live)
    count = 40
    for i in range(1, count + 1):
        storage.persist(HardState(1, "n1", i - 1), [entry(i)], None)
    image = crash_image(live, tmp_path / "image")
    storage.close()
    wal = image / (DB_NAME + "-wal")
    wal_bytes = wal.read_bytes()
    assert len(wal_bytes) > 10_000, "the test needs the writes still in the WAL"
    frame = 24 + 4096
    for n, cut in enumerate([1, 100, frame - 1, frame + 1, 2 * frame + 7, 5 * frame]):
        copy = crash_image(image, tmp_path / f"cut{n}")
        (copy / (DB_NAME + "-wal")).write_bytes(wal_bytes[: len(wal_bytes) - cut])
        with open_storage(copy) as recovered:
            last = recovered.last_index()
            assert count - 6 <= last < count, cut
            assert recovered.entries(1, last + 1) == entries(1, last + 1)
            assert recovered.hard_state() == HardState(1, "n1", last - 1)


def test_garbage_over_the_wal_tail_is_not_served(tmp_path: Path) -> None:
    live = tmp_path / "live"
    storage = open_storage(live)
    for i in range(1, 21):
        storage.persist(HardState(1, "n1", i - 1), [entry(i)], None)
    image = crash_image(live, tmp_path / "image")
    storage.close()
    wal = image / (DB_NAME + "-wal")
    data = bytearray(wal.read_bytes())
    data[-300:] = bytes(range(256)) + bytes(44)
    wal.write_bytes(bytes(data))
    with open_storage(image) as recovered:
        last = recovered.last_index()
        assert 14 <= last < 20
        assert recovered.entries(1, last + 1) == entries(1, last + 1)
        assert recovered.hard_state() == HardState(1, "n1", last - 1)


def test_a_corrupt_hard_state_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    _write_log(tmp_path, 5)
    _sql(tmp_path, "UPDATE state SET crc = crc + 1 WHERE key = 'hard_state'")
    before = tree_fingerprint(tmp_path)
    with pytest.raises(CorruptionError, match="hard state failed its checksum") as info:
        open_storage(tmp_path)
    assert info.value.exit_code == 65
    assert tree_fingerprint(tmp_path) == before
    said = str(info.value)  # one sentence of refusal, then the way back
    assert said.count("refusing to start") == 1 and ".;" not in said and "To bring" in said, said


def _compacted(path: Path, **kwargs: object) -> MemoryStorage:
    """30 entries compacted at 10 then 20; returns a model of the result."""
    model = MemoryStorage(INITIAL)
    with open_storage(path, **kwargs) as storage:
        for i in range(1, 31):
            storage.append([entry(i)])
            model.append([entry(i)])
        for index in (10, 20):
            snap = snapshot_at(storage, index, f"state@{index}".encode())
            storage.compact(snap)
            model.compact(snap)
    return model


def _damage_snapshot(path: Path, index: int) -> Path:
    [file] = (path / SNAPSHOT_DIR).glob(f"{index:020d}-*.snap")
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF
    file.write_bytes(bytes(data))
    return file


def test_a_damaged_newest_snapshot_falls_back_to_the_previous_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _compacted(tmp_path)
    damaged = _damage_snapshot(tmp_path, 20)
    with caplog.at_level(logging.ERROR, logger="raft_trio.storage"), open_storage(tmp_path) as storage:
        # The previous snapshot and the rows after it: the same log, less
        # compacted. Nothing that was durable is lost.
        assert storage.snapshot().meta.index == 10
        assert storage.snapshot().data == b"state@10"
        assert (storage.first_index(), storage.last_index()) == (11, 30)
        assert storage.entries(11, 31) == entries(11, 31)
    assert "checksum mismatch" in caplog.text
    assert "falling back to snapshot 10" in caplog.text
    assert not damaged.exists()
    assert damaged.with_name(damaged.name + ".corrupt").exists()  # kept for inspection
    with open_storage(tmp_path) as storage:  # and it stays that way
        assert storage.snapshot().meta.index == 10
        storage.compact(snapshot_at(storage, 25))
        assert storage.first_index() == 26


def test_a_damaged_only_snapshot_is_refused_clearly_and_nothing_changes(tmp_path: Path) -> None:
    _compacted(tmp_path, keep_snapshots=1)
    _damage_snapshot(tmp_path, 20)
    before = tree_fingerprint(tmp_path)
    with pytest.raises(CorruptionError, match=r"checksum mismatch.*compacted log is lost") as info:
        open_storage(tmp_path, keep_snapshots=1)
    assert tree_fingerprint(tmp_path) == before
    said = str(info.value)
    assert said.count("refusing to start") == 1 and ".;" not in said and "To bring" in said, said


def test_a_missing_snapshot_file_counts_as_damaged(tmp_path: Path) -> None:
    _compacted(tmp_path)
    [file] = (tmp_path / SNAPSHOT_DIR).glob(f"{20:020d}-*.snap")
    file.unlink()
    with open_storage(tmp_path) as storage:
        assert storage.snapshot().meta.index == 10
        assert storage.last_index() == 30


def test_leftovers_of_a_compaction_that_crashed_before_its_commit_are_removed(tmp_path: Path) -> None:
    model = _compacted(tmp_path)
    store = SnapshotStore(tmp_path / SNAPSHOT_DIR)
    store.write(Snapshot(SnapshotMeta(25, 1, MEMBERSHIP), b"never committed"))
    (tmp_path / SNAPSHOT_DIR / "00000000000000000027-00000000000000000001.snap.tmp").write_bytes(b"torn")
    with open_storage(tmp_path) as storage:
        assert storage.snapshot() == model.snapshot()
        assert storage.last_index() == 30
    assert store.stored() == [(10, 1), (20, 1)]
    assert not list((tmp_path / SNAPSHOT_DIR).glob("*.tmp"))


def test_a_new_directory_without_initial_snapshot_starts_empty(tmp_path: Path) -> None:
    with DurableStorage.open(tmp_path / "d", "n1") as storage:
        assert storage.snapshot() == Snapshot()
        assert (storage.first_index(), storage.last_index()) == (1, 0)
        storage.append(entries(1, 4))
    with DurableStorage.open(tmp_path / "d", "n1", initial_snapshot=INITIAL) as storage:
        # The initial snapshot is for a new directory only.
        assert storage.snapshot() == Snapshot()
        assert storage.entries(1, 4) == entries(1, 4)


def test_a_new_directory_takes_its_initial_hard_state_with_its_snapshot(tmp_path: Path) -> None:
    """A voter's late first start begins at a term counted as voted: in
    the same transaction as its configuration, so no crash leaves it
    configured and voting from term 0."""
    floor = HardState(7, "n1")
    with DurableStorage.open(
        tmp_path / "d", "n1", initial_snapshot=INITIAL, initial_hard_state=floor
    ) as storage:
        assert storage.hard_state() == floor
        assert storage.snapshot() == INITIAL
    with DurableStorage.open(tmp_path / "d", "n1", initial_hard_state=HardState(9, "n1")) as storage:
        # As the initial snapshot: for a new directory only.
        assert storage.hard_state() == floor


def test_a_refused_start_after_a_crash_keeps_the_wal(tmp_path: Path) -> None:
    """After a crash the writes are in ``raft.db-wal``; a start refused
    then used to close the last connection, and SQLite checkpointed the
    WAL into ``raft.db`` and deleted it: the evidence of what was lost, in
    the directory the operator is told to keep (a review's finding). Only
    the WAL index in ``-shm``, derived data, may be rebuilt."""
    source = tmp_path / "src"
    storage = open_storage(source)
    for i in range(1, 6):
        storage.persist(HardState(1, "n1", i - 1), [entry(i)])
    image = crash_image(source, tmp_path / "image")
    storage.close()
    write_mark(image, HighWater(2, "n2", 0))  # it had voted in term 2: the database lost that
    before = tree_fingerprint(image)
    assert DB_NAME + "-wal" in before
    with pytest.raises(CorruptionError, match="lost writes"):
        open_storage(image)
    after = tree_fingerprint(image)
    changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    assert changed <= {DB_NAME + "-shm"}


def test_a_clean_stop_records_the_commit_index_it_knows(tmp_path: Path) -> None:
    """The core writes a commit index alone at most every 100 ms, so the
    last hard state written may be behind what the node knows; a clean
    stop records it (never past the log held), and an old copy of
    ``raft.db`` put back is then refused (a review's finding)."""
    path = tmp_path / "n1"
    storage = open_storage(path)
    storage.persist(HardState(2, "n2", 0), [entry(1, term=2)])
    old = crash_image(path, tmp_path / "old")
    storage.persist(None, [entry(2, term=2), entry(3, term=2)])
    storage.close(commit=7)  # it knows 7 committed, and holds 3
    assert read_mark(path) == HighWater(2, "n2", 3)
    with open_storage(path) as again:
        assert again.hard_state() == HardState(2, "n2", 3)
    (old / MARK_NAME).write_bytes((path / MARK_NAME).read_bytes())
    with pytest.raises(CorruptionError, match="knew entries up to 3 committed"):
        open_storage(old)
