"""Durable storage for raft-trio: the log, hard state and snapshots on disk.

Nothing is acknowledged before it is durable: the runtime writes each
``Ready`` with :meth:`DurableStorage.write_to_disk` (one SQLite transaction,
one fsync, on a worker thread) before it sends a message that promises it,
then updates the in-memory cache the core reads with
:meth:`DurableStorage.apply_to_cache` on the event loop. See
:mod:`raft_trio.storage._durable` for which method runs where.

:func:`inspect_data_dir` reads a data directory without changing it (for
crash tests and operators); ``RAFT_CRASH_POINT`` makes a test build die at a
named moment of a disk write (:mod:`raft_trio.storage._crashpoints`).
"""

from ._backup import (
    RESTORED_TERM,
    Backup,
    BackupCorrupt,
    backup_stream,
    parse_backup,
    read_backup,
    restore_backup,
    restored_and_never_ran,
    restored_cluster_id,
)
from ._crashpoints import POINTS as CRASH_POINTS
from ._datadir import FORMAT_VERSION, DataDir, DataDirMeta, open_data_dir
from ._durable import DurableStorage
from ._errors import (
    CorruptionError,
    DataDirError,
    DataDirLocked,
    DataDirVanished,
    DiskFull,
    DiskIOError,
    SnapshotCorrupt,
    StorageError,
    first_error,
    storage_error_in,
)
from ._inspect import DiskState, inspect_data_dir
from ._peer_nonces import PeerNoncesFile
from ._policy import SnapshotPolicy
from ._snapshots import SnapshotStore
from ._sqlite_log import WAL_HEADROOM_BYTES

__all__ = [
    "CRASH_POINTS",
    "FORMAT_VERSION",
    "RESTORED_TERM",
    "WAL_HEADROOM_BYTES",
    "Backup",
    "BackupCorrupt",
    "CorruptionError",
    "DataDir",
    "DataDirError",
    "DataDirLocked",
    "DataDirMeta",
    "DataDirVanished",
    "DiskFull",
    "DiskIOError",
    "DiskState",
    "DurableStorage",
    "PeerNoncesFile",
    "SnapshotCorrupt",
    "SnapshotPolicy",
    "SnapshotStore",
    "StorageError",
    "backup_stream",
    "first_error",
    "inspect_data_dir",
    "open_data_dir",
    "parse_backup",
    "read_backup",
    "restore_backup",
    "restored_and_never_ran",
    "restored_cluster_id",
    "storage_error_in",
]
