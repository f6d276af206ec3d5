"""The Trio runtime of a raft-trio node."""

from ._pending import ReadAborted, WriteFailed, WriteIndeterminate
from .runtime import (
    InsufficientStorage,
    LeaseInfo,
    LeaseMissing,
    NodeEvent,
    NotLeaderError,
    RaftNode,
    Timing,
    Unavailable,
)

__all__ = [
    "InsufficientStorage",
    "LeaseInfo",
    "LeaseMissing",
    "NodeEvent",
    "NotLeaderError",
    "RaftNode",
    "ReadAborted",
    "Timing",
    "Unavailable",
    "WriteFailed",
    "WriteIndeterminate",
]
