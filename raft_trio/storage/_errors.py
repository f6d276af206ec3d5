"""Errors the storage layer raises on purpose.

Each carries the process exit code the command line uses, so that a node
that cannot trust its disk stops with one line an operator can act on and
a code a supervisor can tell apart from a crash (sysexits.h values; the
README and docs/storage.md have the table):

====  =====================  ==============================================
code  error                  meaning
====  =====================  ==============================================
65    CorruptionError        data on disk is damaged (refused at start)
66    DataDirVanished        the data directory was removed or replaced
                             under the running node
73    DiskFull               the disk is full (ENOSPC, EDQUOT, SQLITE_FULL)
74    DiskIOError            the disk failed a read or write (EIO, a
                             read-only file system, SQLITE_IOERR)
75    DataDirLocked          another process has the data directory
78    DataDirError           the directory is not this node's or this
                             cluster's, or this member cannot start empty
====  =====================  ==============================================

Anything else that escapes the storage layer is a bug.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import TypeVar

E = TypeVar("E", bound=BaseException)

#: sysexits.h: the data on disk is damaged beyond what recovery may cut.
EX_DATAERR = 65
#: sysexits.h: an input (the data directory) is gone.
EX_NOINPUT = 66
#: sysexits.h: output cannot be created: the disk is full.
EX_CANTCREAT = 73
#: sysexits.h: an input/output error.
EX_IOERR = 74
#: sysexits.h: the data directory is in use; retrying later may work.
EX_TEMPFAIL = 75
#: sysexits.h: the data directory does not belong to this node (config error).
EX_CONFIG = 78


class StorageError(Exception):
    """Base of every error the storage layer raises on purpose."""

    exit_code: int = EX_DATAERR


class DataDirError(StorageError):
    """The data directory is refused: another cluster's or another node's,
    an unknown format version, not a raft-trio directory at all, or a new
    directory for a member the cluster knows has started before. Nothing
    in it was changed."""

    exit_code = EX_CONFIG


class DataDirLocked(DataDirError):
    """Another process holds the data directory's lock."""

    exit_code = EX_TEMPFAIL


class CorruptionError(StorageError):
    """Data this node wrote and acknowledged failed its checksum or is
    missing: a log row, the hard state, a frame in the middle of the WAL,
    every snapshot that could stand for the compacted log, or the database
    is behind the high-water mark it recorded. Recovery never cuts it away:
    a node that forgot what it promised could vote or count towards a
    commit with less than it acknowledged."""

    exit_code = EX_DATAERR


class SnapshotCorrupt(CorruptionError):
    """One snapshot file is truncated, damaged or of an unknown format."""


class DataDirVanished(StorageError):
    """The running node's data directory (or a file in it) was removed or
    replaced: what it writes no longer reaches the files a restart reads."""

    exit_code = EX_NOINPUT


class DiskFull(StorageError):
    """A write failed for want of space. What is on disk is whatever the
    last successful commit left; nothing after it was acknowledged."""

    exit_code = EX_CANTCREAT


class DiskIOError(StorageError):
    """The disk failed a read or a write (EIO, a read-only file system, a
    permission the process lacks). After a failed write or fsync, what is
    on disk is unknown until a restart reads it."""

    exit_code = EX_IOERR


_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_FULL = 13
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def classify(error: BaseException, what: str, *, running: bool = True) -> StorageError:
    """The :class:`StorageError` an OS or SQLite ``error`` stands for,
    with ``what`` (the file or the operation) named in its message.
    Call it with the error being handled and raise the result ``from`` it.
    While the node runs (``running``) a file that is not found was removed
    under it: :class:`DataDirVanished`."""
    if isinstance(error, StorageError):
        return error
    detail = f"{what}: {error}"
    if isinstance(error, sqlite3.Error):
        code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
        if code == _SQLITE_FULL:
            return DiskFull(f"{detail} (the disk is full)")
        if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            return CorruptionError(f"{detail} (SQLite finds the database damaged)")
        return DiskIOError(detail)
    if isinstance(error, OSError) and error.errno in _FULL:
        return DiskFull(detail)
    if running and isinstance(error, FileNotFoundError):
        return DataDirVanished(f"{detail} (a file of the data directory was removed)")
    return DiskIOError(detail)


def first_error(error: BaseException, kind: type[E]) -> E | None:
    """The first exception of type ``kind`` in ``error``, looking inside
    exception groups (a node's nursery wraps what its tasks raise), so that
    the command line can end with one line and its exit code."""
    if isinstance(error, kind):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = first_error(inner, kind)
            if found is not None:
                return found
    return None


def storage_error_in(error: BaseException) -> StorageError | None:
    """The first :class:`StorageError` in ``error`` (see :func:`first_error`)."""
    return first_error(error, StorageError)


def rejoin_advice(node_id: str) -> str:
    """What an operator does about a member whose data cannot be trusted,
    as with etcd: the member leaves and comes back as a new one, which
    catches up as a learner before it votes."""
    return (
        f"To bring {node_id} back: remove it (raft-trio members remove {node_id}), move its data "
        f"directory aside, add it again (raft-trio members add {node_id} URL) and start it: it "
        "rejoins as a learner and votes only once it has caught up"
    )
