"""What the core hands its runtime: one ``Ready`` at a time.

The runtime must handle a Ready in this order (etcd's contract):
1. persist ``hard_state``, ``entries`` and ``snapshot`` (fsync);
2. send ``messages`` (they may promise what step 1 made durable: a vote,
   an acknowledged entry). A leader's own messages (AppendEntries,
   Heartbeat, InstallSnapshot, TimeoutNow) promise nothing about its disk
   and may be sent before or during step 1 (§10.2.1): the leader counts
   itself towards a quorum only for entries ``advance`` reported durable;
3. install ``snapshot`` into the state machine, then apply
   ``committed_entries`` in order, and serve ``read_states`` once applied
   up to their index;
4. call ``advance(ready)``.
Steps may be interleaved with ``step``/``tick``/``propose`` calls; their
effects go into the next Ready.
"""

from __future__ import annotations

import dataclasses
import enum

from ._messages import AppendEntries, Heartbeat, InstallSnapshot, Message, TimeoutNow
from ._types import Entry, HardState, Membership, NodeId, Snapshot

#: The messages only a leader sends. They promise nothing about the
#: sender's disk (its term and vote were durable before it could lead, and
#: it counts its own entries only once ``advance`` reported them durable,
#: §10.2.1), so they may leave before or during the persist of their Ready.
SENT_BEFORE_PERSIST: tuple[type[Message], ...] = (AppendEntries, Heartbeat, InstallSnapshot, TimeoutNow)


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclasses.dataclass(frozen=True)
class SoftState:
    """Volatile state worth announcing (events, metrics, the monitor)."""

    role: Role
    term: int
    leader_id: NodeId | None


@dataclasses.dataclass(frozen=True)
class ReadState:
    """A read-index request confirmed by a quorum: it may be served once the
    state machine has applied ``index`` (§6.4)."""

    request_id: int
    index: int


@dataclasses.dataclass(frozen=True)
class Ready:
    #: New hard state to persist, or None if unchanged.
    hard_state: HardState | None = None
    #: Entries to append to stable storage (replacing any stored entries
    #: from the first one's index on).
    entries: list[Entry] = dataclasses.field(default_factory=list)
    #: A leader's snapshot to persist and install, replacing the whole log.
    snapshot: Snapshot | None = None
    #: Entries now committed, to apply in order.
    committed_entries: list[Entry] = dataclasses.field(default_factory=list)
    #: Messages to send after persisting.
    messages: list[Message] = dataclasses.field(default_factory=list)
    #: Reads now confirmed by a quorum.
    read_states: list[ReadState] = dataclasses.field(default_factory=list)
    #: Reads the core gave up on (leadership lost): answer "retry".
    dropped_reads: list[int] = dataclasses.field(default_factory=list)
    #: New role, term or leader, or None if unchanged.
    soft_state: SoftState | None = None
    #: The configuration now in force, if it changed (§4.1: on append).
    membership: Membership | None = None

    def messages_before_persist(self) -> list[Message]:
        """The messages that may be sent at once (see ``SENT_BEFORE_PERSIST``)."""
        return [m for m in self.messages if isinstance(m, SENT_BEFORE_PERSIST)]

    def messages_after_persist(self) -> list[Message]:
        """The messages that promise what the persist makes durable (a
        vote, an acknowledged entry): sent only after it."""
        return [m for m in self.messages if not isinstance(m, SENT_BEFORE_PERSIST)]

    def __bool__(self) -> bool:
        return bool(
            self.hard_state
            or self.entries
            or self.snapshot
            or self.committed_entries
            or self.messages
            or self.read_states
            or self.dropped_reads
            or self.soft_state
            or self.membership
        )
