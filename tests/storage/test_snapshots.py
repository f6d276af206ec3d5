"""Snapshot files: atomic, verified on load, pruned, and never copied
needlessly in memory."""

from __future__ import annotations

import gc
import os
import tracemalloc
from pathlib import Path

import pytest

from raft_trio.core import Snapshot, SnapshotMeta
from raft_trio.storage import SnapshotCorrupt, SnapshotStore

from .helpers import MEMBERSHIP


def _snapshot(index: int = 7, term: int = 2, data: bytes = b"the state machine") -> Snapshot:
    return Snapshot(SnapshotMeta(index, term, MEMBERSHIP), data)


def test_a_written_snapshot_loads_back_equal(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    path = store.write(_snapshot())
    assert path.name == "00000000000000000007-00000000000000000002.snap"
    assert store.load(7, 2) == _snapshot()
    assert store.stored() == [(7, 2)]
    assert not list(tmp_path.glob("*.tmp"))


def _corrupt(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: _corrupt(p, -1), "checksum mismatch"),  # the data
        (lambda p: _corrupt(p, 30), "checksum mismatch"),  # the checksum itself
        (lambda p: _corrupt(p, 60), "checksum mismatch"),  # the metadata
        (lambda p: _corrupt(p, 0), "bad magic"),
        (lambda p: _corrupt(p, 11), "unknown snapshot format version"),
        (lambda p: _corrupt(p, 23), "length fields"),
        (lambda p: p.write_bytes(p.read_bytes()[:-5]), "length fields"),  # truncated
        (lambda p: p.write_bytes(p.read_bytes() + b"x"), "length fields"),
        (lambda p: p.write_bytes(p.read_bytes()[:10]), "truncated header"),
        (lambda p: p.unlink(), "missing"),
    ],
)
def test_a_damaged_snapshot_fails_its_check(tmp_path: Path, damage: object, message: str) -> None:
    store = SnapshotStore(tmp_path)
    path = store.write(_snapshot())
    damage(path)  # type: ignore[operator]
    with pytest.raises(SnapshotCorrupt, match=message):
        store.load(7, 2)


def test_a_snapshot_under_the_wrong_name_is_refused(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    os.replace(store.write(_snapshot(7, 2)), store.path(8, 2))
    with pytest.raises(SnapshotCorrupt, match="not its name's"):
        store.load(8, 2)


def test_prune_keeps_the_given_and_newer_files(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    for index in (5, 10, 15, 20):
        store.write(_snapshot(index, 1))
    (tmp_path / store.path(25, 1).name).with_suffix(".snap.tmp").write_bytes(b"being staged")
    deleted = store.prune({(10, 1), (15, 1)})
    assert deleted == [store.path(5, 1).name]
    # 20 may be a snapshot another thread is staging: it stays, as do .tmp files.
    assert store.stored() == [(10, 1), (15, 1), (20, 1)]
    assert list(tmp_path.glob("*.tmp"))
    store.prune({(15, 1)}, recovering=True)
    assert store.stored() == [(15, 1)]
    assert not list(tmp_path.glob("*.tmp"))


def test_a_large_snapshot_is_not_held_twice(tmp_path: Path) -> None:
    """100 MB of state: writing allocates nothing of its size, loading
    allocates it once."""
    size = 100 << 20
    snapshot = _snapshot(data=os.urandom(size))
    store = SnapshotStore(tmp_path)
    gc.collect()
    tracemalloc.start()
    try:
        store.write(snapshot)
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        del snapshot
        loaded = store.load(7, 2)
        _, load_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(loaded.data) == size
    assert write_peak < 1 << 20, write_peak
    assert load_peak < size + (1 << 20), load_peak
