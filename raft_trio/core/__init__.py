"""The Raft protocol as a sans-IO state machine.

Drive a :class:`RaftCore` with its inputs (:data:`INPUTS`: ``tick()``,
``step(message)``, ``propose(data)``, ...); take what it needs done from
``ready()``, its only output, and acknowledge it with ``advance(ready)``;
read its state with ``status()``. See docs/design.md, "The core", and
:mod:`raft_trio.testing.driver` for a complete in-memory Ready loop.
"""

from ._config import RaftConfig
from ._errors import AlreadyMember, ConfigChangeRejected, NotLeader, NotMember, ProposalDropped, RaftError
from ._log import RaftLog
from ._membership import AddLearner, ConfChange, PromoteLearner, RemoveMember, UpdateMember, apply_change
from ._messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
    decode_message,
    encode_message,
)
from ._progress import Progress, ProgressState
from ._raft import INPUTS, RaftCore
from ._ready import ReadState, Ready, Role, SoftState
from ._status import BasicStatus, ProgressStatus, Status
from ._storage import CompactedError, LogStorage, MemoryStorage, UnavailableError
from ._types import Entry, EntryKind, HardState, Member, Membership, NodeId, Snapshot, SnapshotMeta

__all__ = [
    "INPUTS",
    "AddLearner",
    "AlreadyMember",
    "AppendEntries",
    "AppendEntriesResponse",
    "BasicStatus",
    "CompactedError",
    "ConfChange",
    "ConfigChangeRejected",
    "Entry",
    "EntryKind",
    "HardState",
    "Heartbeat",
    "HeartbeatResponse",
    "InstallSnapshot",
    "LogStorage",
    "Member",
    "Membership",
    "MemoryStorage",
    "Message",
    "NodeId",
    "NotLeader",
    "NotMember",
    "Progress",
    "ProgressState",
    "ProgressStatus",
    "PromoteLearner",
    "ProposalDropped",
    "RaftConfig",
    "RaftCore",
    "RaftError",
    "RaftLog",
    "ReadState",
    "Ready",
    "RemoveMember",
    "RequestVote",
    "RequestVoteResponse",
    "Role",
    "Snapshot",
    "SnapshotMeta",
    "SoftState",
    "Status",
    "TimeoutNow",
    "UnavailableError",
    "UpdateMember",
    "apply_change",
    "decode_message",
    "encode_message",
]
