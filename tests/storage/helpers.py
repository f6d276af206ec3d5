"""Shared helpers for the storage tests: entries, snapshots, crash images,
and comparing a storage with the in-memory model."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
from pathlib import Path

from raft_trio.core import (
    CompactedError,
    Entry,
    EntryKind,
    LogStorage,
    Membership,
    Snapshot,
    SnapshotMeta,
    UnavailableError,
)
from raft_trio.storage import DurableStorage
from raft_trio.storage._wal import FRAME_HEADER_BYTES, WAL_HEADER_BYTES

#: SQLite's page size here, and so the size of one WAL frame.
PAGE = 4096
FRAME = FRAME_HEADER_BYTES + PAGE

MEMBERSHIP = Membership.of({"n1": "http://n1", "n2": "http://n2", "n3": "http://n3"})
INITIAL = Snapshot(SnapshotMeta(0, 0, MEMBERSHIP))


def entry(index: int, term: int = 1, data: bytes | None = None, kind: EntryKind = EntryKind.NORMAL) -> Entry:
    return Entry(index, term, kind, data if data is not None else f"cmd-{index}".encode())


def entries(lo: int, hi: int, term: int = 1) -> list[Entry]:
    """Entries [lo, hi) of one term."""
    return [entry(i, term) for i in range(lo, hi)]


def snapshot_at(storage: LogStorage, index: int, data: bytes = b"state") -> Snapshot:
    """A snapshot of ``storage``'s log at ``index`` (its term there)."""
    return Snapshot(SnapshotMeta(index, storage.term(index), MEMBERSHIP), data)


def open_storage(path: Path, **kwargs: object) -> DurableStorage:
    return DurableStorage.open(path, "n1", "c1", initial_snapshot=INITIAL, **kwargs)  # type: ignore[arg-type]


def crash_image(source: Path, target: Path) -> Path:
    """Copy a data directory as a crash would leave it: the database and
    its WAL as they are on disk right now (every write fsynced), without
    the close() that would checkpoint the WAL. SQLite's shared-memory index
    is not copied: a crash loses it too, and SQLite rebuilds it."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*-shm"))
    return target


def tree_fingerprint(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``root`` with its mtime (ns) and content hash: equal
    fingerprints mean nothing was changed."""
    result: dict[str, tuple[int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_file():
                result[rel] = (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                result[rel] = (path.stat().st_mtime_ns, "dir")
    return result


def _outcome(call: object, *args: object) -> object:
    try:
        return call(*args)  # type: ignore[operator]
    except (CompactedError, UnavailableError) as exc:
        return type(exc)


def assert_same(model: LogStorage, storage: LogStorage) -> None:
    """Every read of the LogStorage protocol gives the same answer."""
    assert storage.hard_state() == model.hard_state()
    assert storage.snapshot() == model.snapshot()
    first, last = model.first_index(), model.last_index()
    assert (storage.first_index(), storage.last_index()) == (first, last)
    for index in range(max(0, first - 3), last + 3):
        assert _outcome(storage.term, index) == _outcome(model.term, index), index
    assert storage.entries(first, last + 1) == model.entries(first, last + 1)
    for max_bytes in (0, 40, 100):
        assert storage.entries(first, last + 1, max_bytes) == model.entries(first, last + 1, max_bytes)
    assert _outcome(storage.entries, first - 1, last + 1) == _outcome(model.entries, first - 1, last + 1)
    assert _outcome(storage.entries, first, last + 2) == _outcome(model.entries, first, last + 2)
    assert storage.config_entries() == model.config_entries()


def wal_frames(wal: Path) -> list[tuple[int, int]]:
    """(frame number, commit size) of every frame of the WAL's current
    generation (its header's salts); a commit size above 0 ends a transaction."""
    data = wal.read_bytes()
    salts = data[16:24]
    found = []
    for number in range(1, (len(data) - WAL_HEADER_BYTES) // FRAME + 1):
        offset = WAL_HEADER_BYTES + (number - 1) * FRAME
        if data[offset + 8 : offset + 16] != salts:
            break
        found.append((number, struct.unpack_from(">I", data, offset + 4)[0]))
    return found


def flip_wal_frame(wal: Path, frame: int, at: int = FRAME_HEADER_BYTES + 100) -> None:
    """Flip four bytes of frame ``frame`` (in its page, by default): what a
    disk that rots or lies does."""
    data = bytearray(wal.read_bytes())
    offset = WAL_HEADER_BYTES + (frame - 1) * FRAME + at
    for i in range(4):
        data[offset + i] ^= 0xA5
    wal.write_bytes(bytes(data))
