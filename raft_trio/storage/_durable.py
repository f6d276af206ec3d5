"""DurableStorage: the core's LogStorage on disk, read from memory.

The core reads storage synchronously on the event loop, so every read is
served from an in-memory cache (a :class:`~raft_trio.core.MemoryStorage`
holding the snapshot and every entry after it); the disk is only written,
and only read back when the node starts.

A write has two halves, so that the disk half can run off the event loop
and the loop never sees a half-updated cache:

============================  ===========================  ==================
method                        runs on                      does
============================  ===========================  ==================
``write_to_disk``             the writer thread (or the    one SQLite
``compact_on_disk``           loop, for a short write)     transaction, fsync
``apply_to_cache``            the event loop, after the    updates the cache
``compact_cache``             writer returned
``stage_snapshot``            any other thread             writes a snapshot
                                                           file ahead
reads, ``needs_snapshot``     the event loop               cache only
============================  ===========================  ==================

For one ``Ready`` the runtime does::

    await trio.to_thread.run_sync(storage.write_to_disk, r.hard_state, r.entries, r.snapshot)
    storage.apply_to_cache(r.hard_state, r.entries, r.snapshot)
    # ... send, apply, core.advance(r)

Only one disk call runs at a time (they take a lock), and the cache halves
must be called in the same order as the disk halves, each after its own
disk half returned, so that the disk and the cache apply the same
operations in the same order. ``stage_snapshot`` must have returned before
the disk call that uses its snapshot starts. The disk side keeps
its own small view of what is on disk (snapshot index, last index), so it
never reads the cache from the writer thread. ``persist``, ``append``,
``compact`` and the other MemoryStorage-style methods do both halves in the
calling thread, for tests and tools that have no event loop.

Semantics are exactly MemoryStorage's (the property tests hold the two side
by side), with one difference: the writes of one ``persist`` are one
transaction, so they all happen or none does.

On disk, rows are kept back to the previous snapshot (not just the newest),
so that a damaged newest snapshot can be replaced on start by the previous
one and the log after it (see :mod:`._recovery`). The disk therefore holds
about two compaction intervals of entries, and two snapshot files.

The moments around each COMMIT (``before_fsync``/``after_fsync`` here,
``before_compact_commit``/``after_compact_commit`` in a compaction) are named
crash points a test can make the process die at (``RAFT_CRASH_POINT``, see
:mod:`._crashpoints`).

After an OS or SQLite error the disk's state is unknown (a failed fsync may
have dropped pages without saying which): every later write raises
:class:`StorageError`, and the node must restart, which recovers from what
is really on disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import threading
from pathlib import Path
from types import TracebackType

import msgspec

from raft_trio.core import Entry, HardState, MemoryStorage, Snapshot

from . import _crashpoints as crash
from ._datadir import DataDir, open_data_dir
from ._errors import CorruptionError, DataDirVanished, StorageError, classify, rejoin_advice
from ._highwater import HighWater, read_mark, write_mark
from ._policy import SnapshotPolicy
from ._recovery import SnapshotKey, recover
from ._snapshots import SnapshotStore
from ._sqlite_log import SqliteLog
from ._wal import check_wal


@dataclasses.dataclass(frozen=True)
class _DiskView:
    """What the writer thread knows is on disk. Replaced whole after each
    commit, never mutated."""

    #: The snapshot the database points at; None before the first one.
    current: SnapshotKey | None
    snap_index: int
    last_index: int


class DurableStorage:
    """LogStorage backed by SQLite and snapshot files in a data directory."""

    def __init__(
        self,
        data_dir: DataDir,
        *,
        initial_snapshot: Snapshot | None = None,
        policy: SnapshotPolicy | None = None,
        keep_snapshots: int = 2,
        initial_hard_state: HardState | None = None,
    ) -> None:
        """Recover from ``data_dir`` (blocking: run it off the event loop).
        Takes ownership of ``data_dir``: :meth:`close` releases its lock."""
        self.policy = _validated(policy, keep_snapshots)
        self.data_dir = data_dir
        self._keep = keep_snapshots
        self._lock = threading.Lock()
        self._staged: set[SnapshotKey] = set()
        self._staged_lock = threading.Lock()
        self._failed: BaseException | None = None
        self._closed = False
        self._wal_inode: int | None = None
        self._snapshots = SnapshotStore(data_dir.snapshot_dir)
        db_path = data_dir.db_path
        #: ``raft.db``'s path as the OS takes it: stat-ed after every
        #: write (:meth:`_check_present`), where building it from the
        #: directory each time cost a tenth of a write's Python.
        self._db_file = os.fspath(db_path)
        try:
            # Before SQLite reads the WAL (and would drop damaged frames
            # without a word), and before anything is written.
            finding = check_wal(db_path)
            if finding.damage is not None:
                raise CorruptionError(finding.damage)
            mark = read_mark(data_dir.path)
            self._db = SqliteLog(db_path)
        except (sqlite3.Error, OSError, CorruptionError) as exc:
            raise _refusal(exc, data_dir) from exc
        try:
            found = recover(
                self._db, self._snapshots, initial_snapshot, keep_snapshots, mark, initial_hard_state
            )
            self._mark = HighWater.of(found.hard_state)
            if mark != self._mark:
                write_mark(data_dir.path, self._mark)
            self._db_inode = os.stat(db_path).st_ino
        except BaseException as exc:
            self._db.close(keep_wal=True)
            if isinstance(exc, sqlite3.Error | OSError | CorruptionError):
                raise _refusal(exc, data_dir) from exc
            raise
        #: The hard state last made durable (the mark written at close).
        self._written = found.hard_state
        self._cache = MemoryStorage(found.snapshot)
        self._cache.set_hard_state(found.hard_state)
        self._cache.append(found.entries)
        self._log_bytes = sum(map(Entry.size, found.entries))
        self._view = _DiskView(
            current=found.current,
            snap_index=found.snapshot.meta.index,
            last_index=self._cache.last_index(),
        )

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        node_id: str,
        cluster_id: str | None = None,
        *,
        initial_snapshot: Snapshot | None = None,
        policy: SnapshotPolicy | None = None,
        keep_snapshots: int = 2,
        adopt: bool = False,
        initial_hard_state: HardState | None = None,
    ) -> DurableStorage:
        """Open (or create) the data directory at ``path`` and recover it.
        Blocking; raises :class:`DataDirError` for a directory that is not
        this node's, :class:`CorruptionError` for one it cannot trust.
        ``initial_snapshot`` (and ``initial_hard_state``, written with it)
        is used only by a new directory; ``adopt``
        records ``cluster_id`` in a directory that has none (see
        :func:`open_data_dir`)."""
        _validated(policy, keep_snapshots)
        try:
            data_dir = open_data_dir(path, node_id, cluster_id, adopt=adopt)
        except OSError as exc:  # a read-only file system, a permission
            raise classify(exc, f"opening data directory {path}", running=False) from exc
        try:
            return cls(
                data_dir,
                initial_snapshot=initial_snapshot,
                policy=policy,
                keep_snapshots=keep_snapshots,
                initial_hard_state=initial_hard_state,
            )
        except BaseException:
            data_dir.close()
            raise

    def close(self, commit: int | None = None) -> None:
        """Close the database and release the directory's lock. Waits for
        a disk call in progress. ``commit``: the commit index the node knows
        at a clean stop, recorded with the hard state and in the mark (the
        core writes a commit index alone at most every 100 ms, so the last
        one written may be behind); never past the log this node holds."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._failed is None and commit is not None:
                    final = min(commit, self._cache.last_index())
                    if final > self._written.commit:
                        with contextlib.suppress(sqlite3.Error, OSError):
                            written = msgspec.structs.replace(self._written, commit=final)
                            with self._db.transaction():
                                self._db.put_hard_state(written)
                            self._written = written
                if self._failed is None and self._mark != HighWater.of(self._written):
                    # The commit index last made durable, for the next start to hold the log to.
                    with contextlib.suppress(OSError):
                        self._mark = HighWater.of(self._written)
                        write_mark(self.data_dir.path, self._mark)
                self._db.close()
            finally:
                self.data_dir.close()

    def __enter__(self) -> DurableStorage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- read side (LogStorage), event loop --------------------------------

    def hard_state(self) -> HardState:
        return self._cache.hard_state()

    def snapshot(self) -> Snapshot:
        return self._cache.snapshot()

    def first_index(self) -> int:
        return self._cache.first_index()

    def last_index(self) -> int:
        return self._cache.last_index()

    def term(self, index: int) -> int:
        return self._cache.term(index)

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        return self._cache.entries(lo, hi, max_bytes)

    def config_entries(self) -> list[Entry]:
        return self._cache.config_entries()

    def log_bytes(self) -> int:
        """Bytes (``Entry.size()``) of the entries after the snapshot."""
        return self._log_bytes

    def needs_snapshot(self, applied: int) -> bool:
        """Whether the runtime should snapshot the state machine (at
        ``applied``) and compact: the log has outgrown the policy."""
        snap_index = self._cache.snapshot().meta.index
        if applied <= snap_index:
            return False
        return self.policy.due(self._cache.last_index() - snap_index, self._log_bytes)

    # -- disk half, writer thread ---------------------------------------------

    def write_to_disk(
        self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None
    ) -> None:
        """Make one Ready's writes durable in one transaction: install
        ``snapshot`` (replacing the log), then ``hard_state``, then append
        ``entries`` (replacing the stored suffix from their first index).
        Returns once fsynced. Raises ``ValueError``, having written nothing,
        if the entries leave a gap."""
        with self._lock:
            self._check_writable()
            view = self._view
            install: Snapshot | None = None
            if snapshot is not None and snapshot.meta.index > view.snap_index:
                install = snapshot
                meta = snapshot.meta
                view = _DiskView((meta.index, meta.term), meta.index, meta.index)
            new_entries = entries
            if entries and entries[0].index <= view.snap_index:
                new_entries = [e for e in entries if e.index > view.snap_index]
            # The rows after the snapshot are exactly those up to
            # view.last_index (recovery refuses a gap, every append deletes
            # the suffix it replaces, an install deletes every row), so only
            # entries that overwrite some of them need the DELETE: a leader's
            # appends and a follower's in-order ones do not (one statement
            # fewer on the writer thread).
            overwrites = False
            if new_entries:
                first = new_entries[0].index
                if first > view.last_index + 1:
                    raise ValueError(f"gap in log: appending {first} after {view.last_index}")
                overwrites = first <= view.last_index
                view = _DiskView(view.current, view.snap_index, new_entries[-1].index)
            if install is None and hard_state is None and not new_entries:
                return
            with self._failing_on_error():
                if install is not None:
                    self._write_snapshot_file(install)
                with self._db.transaction():
                    if install is not None:
                        self._db.put_snapshot_ref(install.meta.index, install.meta.term)
                        self._db.delete_all()
                    if hard_state is not None:
                        self._db.put_hard_state(hard_state)
                    if overwrites:
                        self._db.delete_from(new_entries[0].index)
                    if new_entries:
                        self._db.insert(new_entries)
                    if crash.armed is not None:
                        crash.reach(crash.BEFORE_FSYNC)
                if crash.armed is not None:
                    crash.reach(crash.AFTER_FSYNC)
                self._view = view
                if hard_state is not None:
                    self._written = hard_state
                    if not self._mark.same_promise(hard_state):
                        # A new term or vote: recorded outside the WAL
                        # before anything that depends on it is sent.
                        self._mark = HighWater.of(hard_state)
                        write_mark(self.data_dir.path, self._mark)
                self._check_present()
                if install is not None:
                    self._snapshots.prune({(install.meta.index, install.meta.term)})
                    self._db.reclaim()
                    self._db.checkpoint()

    def compact_on_disk(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` (taken from this node's state machine) and
        delete the entries no retained snapshot needs. Writes the snapshot
        file unless :meth:`stage_snapshot` already did. Raises
        ``ValueError``, having written nothing, as MemoryStorage.compact."""
        with self._lock:
            self._check_writable()
            view = self._view
            meta = snapshot.meta
            if meta.index <= view.snap_index:
                return
            if meta.index > view.last_index:
                raise ValueError(f"cannot compact to {meta.index} beyond last index {view.last_index}")
            with self._failing_on_error():
                term = self._db.term_at(meta.index)
            if term != meta.term:
                raise ValueError(f"snapshot term {meta.term} differs from log at {meta.index}")
            key = (meta.index, meta.term)
            # Keep the previous snapshot and the rows after it: the stand-in
            # should this one be found damaged on start.
            fallback = view.current if self._keep == 2 else None
            with self._failing_on_error():
                self._write_snapshot_file(snapshot)
                with self._db.transaction():
                    self._db.put_snapshot_ref(*key)
                    self._db.delete_through(fallback[0] if fallback is not None else meta.index)
                    if crash.armed is not None:
                        crash.reach(crash.BEFORE_COMPACT_COMMIT)
                if crash.armed is not None:
                    crash.reach(crash.AFTER_COMPACT_COMMIT)
                self._view = _DiskView(key, meta.index, view.last_index)
                self._snapshots.prune({k for k in (key, fallback) if k is not None})
                self._db.reclaim()
                # Rare enough to afford: copy the WAL into the database and
                # truncate it, so the space of the compacted prefix is
                # really returned and the WAL starts small again.
                self._db.checkpoint()

    def stage_snapshot(self, snapshot: Snapshot) -> None:
        """Write ``snapshot``'s file ahead of :meth:`compact_on_disk` (or of
        a ``write_to_disk`` that installs it), from a thread other than the
        writer, so that writing a large snapshot does not hold up the log's
        fsyncs. Optional. A snapshot not beyond the current one is ignored
        (its file is the current one's, or would never be used)."""
        if snapshot.meta.index <= self._view.snap_index:
            return
        self._snapshots.write(snapshot)
        with self._staged_lock:
            self._staged.add((snapshot.meta.index, snapshot.meta.term))

    def _write_snapshot_file(self, snapshot: Snapshot) -> None:
        key = (snapshot.meta.index, snapshot.meta.term)
        with self._staged_lock:
            staged = key in self._staged
            self._staged.discard(key)
        if not (staged and self._snapshots.exists(*key)):
            self._snapshots.write(snapshot)

    def _check_writable(self) -> None:
        if self._closed:
            raise StorageError("storage is closed")
        if self._failed is not None:
            raise StorageError(
                f"an earlier disk write failed ({self._failed}); what is on disk is unknown, "
                "restart the node to recover from it"
            ) from self._failed

    def _check_present(self) -> None:
        """Raise :class:`DataDirVanished` if ``raft.db`` is no longer the
        file this storage has open (removed with its directory, moved
        aside, or replaced by a copy): writes would reach no file a restart
        reads. One ``stat`` (a few microseconds): cheap enough for every
        write, so no write into a vanished directory is acknowledged."""
        path = self._db_file
        try:
            inode = os.stat(path).st_ino
        except FileNotFoundError:
            raise DataDirVanished(
                f"{path} is gone (the data directory was removed or moved away while the node ran)"
            ) from None
        if inode != self._db_inode:
            raise DataDirVanished(f"{path} was replaced by another file while the node ran")

    def check_present(self) -> None:
        """What :meth:`_check_present` checks, plus the directory's lock
        file and the WAL, for the runtime to call now and then (an idle
        node writes nothing that would notice). Raises
        :class:`DataDirVanished`."""
        if self._closed or self._failed is not None:
            return
        self._check_present()
        if not self.data_dir.lock_is_present():
            raise DataDirVanished(
                f"{self.data_dir.path}: the LOCK file this node holds was removed or replaced while it ran"
            )
        wal = self.data_dir.db_path.with_name(self.data_dir.db_path.name + "-wal")
        inode = self._wal_inode
        try:
            now = os.stat(wal).st_ino
        except FileNotFoundError:
            now = None
        if inode is None:
            self._wal_inode = now
        elif now != inode:
            raise DataDirVanished(f"{wal} was removed or replaced while the node ran")

    def _failing_on_error(self) -> _FailOnError:
        return _FailOnError(self)

    # -- cache half, event loop ---------------------------------------------

    def apply_to_cache(
        self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None
    ) -> None:
        """Apply to the cache what :meth:`write_to_disk` just made durable,
        with the same arguments."""
        cache = self._cache
        if snapshot is not None and snapshot.meta.index > cache.snapshot().meta.index:
            cache.apply_snapshot(snapshot)
            self._log_bytes = 0
        if hard_state is not None:
            cache.set_hard_state(hard_state)
        if entries:
            first_index, last_index = cache.first_index(), cache.last_index()
            kept = (
                entries if entries[0].index >= first_index else [e for e in entries if e.index >= first_index]
            )
            if not kept:
                return
            start = kept[0].index
            removed = 0
            if start <= last_index:
                removed = sum(e.size() for e in cache.entries(start, last_index + 1))
            cache.append(kept)
            self._log_bytes += sum(e.size() for e in kept) - removed

    def compact_cache(self, snapshot: Snapshot) -> None:
        """Apply to the cache what :meth:`compact_on_disk` just did."""
        cache = self._cache
        index = snapshot.meta.index
        removed = 0
        if cache.first_index() <= index <= cache.last_index():
            removed = sum(e.size() for e in cache.entries(cache.first_index(), index + 1))
        before = cache.snapshot()
        cache.compact(snapshot)
        if cache.snapshot() is not before:
            self._log_bytes -= removed

    # -- both halves, for callers without an event loop ---------------------

    def persist(
        self,
        hard_state: HardState | None = None,
        entries: list[Entry] | None = None,
        snapshot: Snapshot | None = None,
    ) -> None:
        """:meth:`write_to_disk` then :meth:`apply_to_cache`, in this thread."""
        entries = entries or []
        self.write_to_disk(hard_state, entries, snapshot)
        self.apply_to_cache(hard_state, entries, snapshot)

    def set_hard_state(self, hard_state: HardState) -> None:
        self.persist(hard_state=hard_state)

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        self.persist(entries=list(entries))

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        self.persist(snapshot=snapshot)

    def compact(self, snapshot: Snapshot) -> None:
        self.compact_on_disk(snapshot)
        self.compact_cache(snapshot)

    # -- inspection -----------------------------------------------------------

    def disk_usage(self) -> int:
        """Bytes on disk: the database, its WAL and the snapshot files."""
        total = 0
        db = self.data_dir.db_path
        for path in (db, db.with_name(db.name + "-wal")):
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        with contextlib.suppress(FileNotFoundError), os.scandir(self.data_dir.snapshot_dir) as entries:
            for entry in entries:
                if entry.is_file():
                    total += entry.stat().st_size
        return total

    @property
    def path(self) -> Path:
        return self.data_dir.path


def _refusal(error: BaseException, data_dir: DataDir) -> StorageError:
    """The one-line error a start that cannot trust ``data_dir`` ends with."""
    refused = classify(error, str(data_dir.db_path), running=False)
    if isinstance(refused, CorruptionError):
        said = str(refused).rstrip(".")  # a sentence already, or a clause: one refusal either way
        if "refusing to start" not in said:
            said += "; refusing to start"
        return CorruptionError(f"{said}. {rejoin_advice(data_dir.meta.node_id)}")
    return refused


def _validated(policy: SnapshotPolicy | None, keep_snapshots: int) -> SnapshotPolicy:
    if keep_snapshots not in (1, 2):
        raise ValueError("keep_snapshots must be 1 or 2")
    policy = policy or SnapshotPolicy()
    policy.validate()
    return policy


class _FailOnError:
    """Marks the storage failed when an OS or SQLite error escapes a disk
    write: after a failed write or fsync, only a restart knows what is on
    disk."""

    def __init__(self, storage: DurableStorage) -> None:
        self._storage = storage

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, OSError | sqlite3.Error | StorageError):
            # After a failed write or fsync only a restart knows what is
            # on disk: no later write is attempted.
            self._storage._failed = exc
        if isinstance(exc, OSError | sqlite3.Error):
            raise classify(exc, f"writing {self._storage.data_dir.path}") from exc
