"""The Raft protocol as a sans-IO state machine.

Drive a :class:`RaftCore` with ``tick()``, ``step(message)``,
``propose(data)``, ``read_index(id)``, ``transfer_leadership(to)`` and
``change_membership(change)``; take what it needs done from ``ready()`` and
acknowledge it with ``advance(ready)``. See the README's "The core" section.
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
from ._raft import RaftCore
from ._ready import ReadState, Ready, Role, SoftState
from ._storage import CompactedError, LogStorage, MemoryStorage, UnavailableError
from ._types import Entry, EntryKind, HardState, Member, Membership, NodeId, Snapshot, SnapshotMeta

__all__ = [
    "AddLearner",
    "AlreadyMember",
    "AppendEntries",
    "AppendEntriesResponse",
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
    "TimeoutNow",
    "UnavailableError",
    "UpdateMember",
    "apply_change",
    "decode_message",
    "encode_message",
]
