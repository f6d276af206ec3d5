"""The disk stays bounded: compaction deletes the log's prefix and the
space really goes back to the file system."""

from __future__ import annotations

from pathlib import Path

from raft_trio.core import Entry, HardState, Snapshot, SnapshotMeta
from raft_trio.storage import SnapshotPolicy
from raft_trio.storage._datadir import DB_NAME

from .helpers import MEMBERSHIP, open_storage

#: The bound for the run below: the rows of two compaction intervals (about
#: 100 KB here), two snapshot files (33 KB), and a WAL that is truncated at
#: every compaction. Without compaction the same log takes over 9 MB.
BOUND = 1 << 20


def _files(path: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file()}


def test_100k_entries_compacted_every_1000_stay_under_a_bound(tmp_path: Path) -> None:
    path = tmp_path / "data"
    payload = b"v" * 64
    peak = 0
    with open_storage(path, policy=SnapshotPolicy(max_entries=1000)) as storage:
        for base in range(0, 100_000, 100):
            batch = [Entry(i, 1, data=payload) for i in range(base + 1, base + 101)]
            storage.persist(HardState(1, "n1", base), batch, None)
            last = base + 100
            if storage.needs_snapshot(last) or last % 1000 == 0:
                assert last % 1000 == 0  # the policy asks at the configured size, not before
                storage.compact(Snapshot(SnapshotMeta(last, 1, MEMBERSHIP), b"k" * 16384))
            peak = max(peak, storage.disk_usage())
        assert (storage.first_index(), storage.last_index()) == (100_001, 100_000)
        end = storage.disk_usage()
    files = _files(path)
    print(f"peak {peak} bytes, at end {end} bytes, after close {files}")
    assert peak < BOUND
    assert sum(files.values()) < BOUND
    assert len([name for name in files if name.endswith(".snap")]) == 2


def test_space_of_a_large_compacted_log_is_returned(tmp_path: Path) -> None:
    path = tmp_path / "data"
    payload = b"x" * 1000
    with open_storage(path) as storage:
        for base in range(0, 20_000, 500):
            storage.append([Entry(i, 1, data=payload) for i in range(base + 1, base + 501)])
        big = (path / DB_NAME).stat().st_size + (path / (DB_NAME + "-wal")).stat().st_size
        assert big > 20_000_000
        storage.compact(Snapshot(SnapshotMeta(19_990, 1, MEMBERSHIP), b"state"))
        storage.compact(Snapshot(SnapshotMeta(20_000, 1, MEMBERSHIP), b"state"))
        small = storage.disk_usage()
    assert small < 1 << 20, small
