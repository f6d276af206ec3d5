"""Errors the storage layer raises on purpose.

Each carries the process exit code the command line should use, so that a
node that cannot trust its disk stops with a message an operator can act on
and a code a supervisor can tell apart from a crash (sysexits.h values).
Anything else that escapes the storage layer is a bug or an OS error.
"""

from __future__ import annotations

#: sysexits.h: the data directory does not belong to this node (config error).
EX_CONFIG = 78
#: sysexits.h: the data directory is in use; retrying later may work.
EX_TEMPFAIL = 75
#: sysexits.h: the data on disk is damaged beyond what recovery may cut.
EX_DATAERR = 65


class StorageError(Exception):
    """Base of every error the storage layer raises on purpose."""

    exit_code: int = EX_DATAERR


class DataDirError(StorageError):
    """The data directory is refused: another cluster's or another node's,
    an unknown format version, or not a raft-trio directory at all. Nothing
    in it was changed."""

    exit_code = EX_CONFIG


class DataDirLocked(DataDirError):
    """Another process holds the data directory's lock."""

    exit_code = EX_TEMPFAIL


class CorruptionError(StorageError):
    """Data that must be trusted failed its checksum: the hard state (a
    lost vote could let this node vote twice in a term), or every snapshot
    that could stand for the compacted log. Recovery cannot cut it away."""

    exit_code = EX_DATAERR


class SnapshotCorrupt(CorruptionError):
    """One snapshot file is truncated, damaged or of an unknown format."""
