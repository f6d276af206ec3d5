"""The Trio runtime of a raft-trio node."""

from ._pending import ReadAborted, WriteFailed, WriteIndeterminate
from .runtime import LeaseInfo, LeaseMissing, NodeEvent, NotLeaderError, RaftNode, Timing, Unavailable

__all__ = [
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
