"""What a node may trust from its data directory when it starts.

Order matters; each step may refuse (raise) before the next one runs:

1. The hard state (term, vote, commit). It cannot be cut like a log tail:
   a forgotten vote could let this node vote twice in a term. A damaged one
   raises :class:`CorruptionError`, and so does one behind the high-water
   mark (:mod:`._highwater`).
2. The snapshot the database points at. If its file is damaged, an older
   snapshot stands in for it, but only if the rows on disk still cover the
   log from there up to the damaged one's index with the same term (the
   storage keeps the rows back to the previous snapshot for exactly this).
   Otherwise the compacted prefix is lost and recovery refuses.
3. The log after that snapshot: rows are read in index order and checked
   (contiguous, CRC, a known kind). A row that fails is refused, never cut:
   SQLite transactions are atomic and SQLite itself drops a torn WAL tail
   before this scan runs (:mod:`._wal` checks that what it drops is only
   that), so every row here was committed, and so acknowledged by this
   node to a leader that may have counted it towards a commit. A log that
   ends below the stored commit index, or below the high-water mark's, is
   refused for the same reason.
4. Housekeeping: rows no retained snapshot needs, snapshot files nothing
   points at (a compaction that crashed before its commit), ``.tmp``
   leftovers.

A new database (nothing ever written) takes ``initial_snapshot``: the
bootstrap configuration at index 0, as the simulator's MemoryStorage does;
and ``initial_hard_state`` with it, in one transaction (a voter's late
first start begins at a term counted as voted: a crash between the two
must not leave a member that votes from term 0).
"""

from __future__ import annotations

import dataclasses
import logging

from raft_trio.core import Entry, HardState, Snapshot

from ._errors import CorruptionError, SnapshotCorrupt
from ._highwater import HighWater, check_hard_state, check_log
from ._snapshots import SnapshotStore
from ._sqlite_log import SqliteLog

logger = logging.getLogger("raft_trio.storage")

SnapshotKey = tuple[int, int]


@dataclasses.dataclass
class Recovered:
    hard_state: HardState
    snapshot: Snapshot
    #: The snapshot the database points at (None: there is none, index 0).
    current: SnapshotKey | None
    #: Entries after the snapshot, verified, contiguous.
    entries: list[Entry]
    #: An older snapshot kept because the rows on disk still lead from it to
    #: ``current``: the stand-in if ``current`` is ever found damaged.
    fallback: SnapshotKey | None


def recover(
    db: SqliteLog,
    snapshots: SnapshotStore,
    initial_snapshot: Snapshot | None,
    keep_snapshots: int,
    mark: HighWater | None = None,
    initial_hard_state: HardState | None = None,
) -> Recovered:
    hard_state = db.read_hard_state() or HardState()
    check_hard_state(mark, hard_state, db.path)
    current = db.read_snapshot_ref()
    if current is None:
        snapshot = Snapshot()
        if db.is_empty() and initial_snapshot is not None:
            snapshots.write(initial_snapshot)
            meta = initial_snapshot.meta
            with db.transaction():
                db.put_snapshot_ref(meta.index, meta.term)
                if initial_hard_state is not None:
                    db.put_hard_state(initial_hard_state)
                    hard_state = initial_hard_state
            current = (meta.index, meta.term)
            snapshot = initial_snapshot
            logger.info("new log, bootstrapped from a snapshot at index %d", meta.index)
    else:
        try:
            snapshot = snapshots.load(*current)
        except SnapshotCorrupt as exc:
            snapshot = _fall_back(db, snapshots, current, exc)
            current = (snapshot.meta.index, snapshot.meta.term)

    snap_index = snapshot.meta.index
    scan = db.scan(snap_index)
    if scan.bad_index is not None:
        raise CorruptionError(
            f"{db.path}: {scan.reason}; this node wrote and acknowledged that entry, so the log "
            "cannot be cut there (a node that lost acknowledged entries could help elect a leader "
            "without them)"
        )
    entries = scan.entries
    last = entries[-1].index if entries else snap_index
    if hard_state.commit > last:
        raise CorruptionError(
            f"{db.path}: the log ends at entry {last}, below the commit index {hard_state.commit} "
            "stored with the hard state: committed entries are missing"
        )
    check_log(mark, last, db.path)

    fallback = _find_fallback(db, snapshots, snap_index, keep_snapshots)
    _tidy(db, snapshots, current, fallback, snap_index)
    return Recovered(hard_state, snapshot, current, entries, fallback)


def _fall_back(
    db: SqliteLog, snapshots: SnapshotStore, current: SnapshotKey, damage: SnapshotCorrupt
) -> Snapshot:
    index, term = current
    for older in reversed(snapshots.stored()):
        if older[0] >= index:
            continue
        scan = db.scan(older[0])
        needed = index - older[0]
        if len(scan.entries) < needed or scan.entries[needed - 1].term != term:
            continue  # the rows from there to the damaged snapshot are gone
        try:
            snapshot = snapshots.load(*older)
        except SnapshotCorrupt as exc:
            logger.error("%s", exc)
            continue
        logger.error(
            "%s; falling back to snapshot %d (term %d) and the log after it",
            damage,
            older[0],
            older[1],
        )
        snapshots.quarantine(index, term)
        with db.transaction():
            db.put_snapshot_ref(*older)
        return snapshot
    raise CorruptionError(
        f"{damage}; no older snapshot with the log after it remains, so the compacted log is "
        "lost. Restore the data directory from a backup, or remove this node from the cluster, "
        "wipe its data directory and add it back. Nothing was changed."
    ) from damage


def _find_fallback(
    db: SqliteLog, snapshots: SnapshotStore, snap_index: int, keep_snapshots: int
) -> SnapshotKey | None:
    if keep_snapshots < 2:
        return None
    bounds = db.bounds()
    low = bounds[0] if bounds is not None else snap_index + 1
    candidates = [key for key in snapshots.stored() if low - 1 <= key[0] < snap_index]
    return candidates[-1] if candidates else None


def _tidy(
    db: SqliteLog,
    snapshots: SnapshotStore,
    current: SnapshotKey | None,
    fallback: SnapshotKey | None,
    snap_index: int,
) -> None:
    bounds = db.bounds()
    through = fallback[0] if fallback is not None else snap_index
    if bounds is not None and bounds[0] <= through:
        with db.transaction():
            db.delete_through(through)
    keep = {key for key in (current, fallback) if key is not None}
    deleted = snapshots.prune(keep, recovering=True)
    if deleted:
        logger.info("removed stale snapshot files: %s", ", ".join(sorted(deleted)))
