"""Looking into a data directory without changing it: what a crash test (or
an operator) reads from a node that is not running.

:func:`inspect_data_dir` opens ``raft.db`` read-only (SQLite ``mode=ro``),
takes no lock and runs no recovery: it reports what is on disk exactly as
the last process left it, a torn tail and leftover files included. The hard
state and snapshot pointer are checksum-verified as on a real start (a
damaged one raises :class:`CorruptionError`); entries are only counted.

It may also be pointed at the directory of a running node (SQLite readers
see a consistent snapshot of the last committed transaction), but what it
reports may be out of date by the time it returns.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from raft_trio.core import HardState

from ._datadir import DB_NAME, META_NAME, SNAPSHOT_DIR, DataDirMeta, read_meta
from ._errors import DataDirError
from ._snapshots import SnapshotStore
from ._sqlite_log import SqliteLog


@dataclasses.dataclass(frozen=True)
class DiskState:
    """What one data directory holds."""

    meta: DataDirMeta
    #: None when no hard state was ever written (a node that never voted
    #: nor learnt a term).
    hard_state: HardState | None
    #: (index, term) of the snapshot the database points at, if any.
    snapshot: tuple[int, int] | None
    #: (lowest, highest) index of the log rows on disk, None if none.
    log_bounds: tuple[int, int] | None
    #: (index, term) of every complete snapshot file, oldest first.
    snapshot_files: list[tuple[int, int]]
    #: Names of files in ``snapshots/`` that are neither complete snapshots
    #: nor anything else known: ``.tmp`` leftovers of a write cut short,
    #: ``.corrupt`` quarantined ones.
    other_files: list[str]


def inspect_data_dir(path: str | os.PathLike[str]) -> DiskState:
    """Read ``path``'s hard state, snapshot pointer, log bounds and
    snapshot files without writing anything. Raises :class:`DataDirError`
    if it is not a raft-trio data directory, :class:`CorruptionError` if
    its hard state or snapshot pointer fails its checksum."""
    root = Path(path)
    if not (root / META_NAME).is_file():
        raise DataDirError(f"{root} has no {META_NAME}: not a raft-trio data directory")
    meta = read_meta(root)
    db_path = root / DB_NAME
    if not db_path.is_file():
        raise DataDirError(f"{root} has no {DB_NAME}")
    hard_state: HardState | None = None
    snapshot: tuple[int, int] | None = None
    bounds: tuple[int, int] | None = None
    if db_path.stat().st_size > 0:
        db = SqliteLog(db_path, read_only=True)
        try:
            if db.has_tables():
                hard_state = db.read_hard_state()
                snapshot = db.read_snapshot_ref()
                bounds = db.bounds()
        finally:
            db.close()
    store = SnapshotStore(root / SNAPSHOT_DIR)
    files = store.stored()
    known = {store.path(*key).name for key in files}
    other = (
        sorted(entry.name for entry in os.scandir(store.directory) if entry.name not in known)
        if store.directory.is_dir()
        else []
    )
    return DiskState(meta, hard_state, snapshot, bounds, files, other)
