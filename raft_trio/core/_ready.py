"""What the core hands its runtime: the Ready, its only output.

Everything the core wants done comes out of ``ready()`` as a Ready: what to
persist, what to send and when, what to apply, which reads to serve, what
to announce. The runtime handles a Ready in this order (etcd's contract):

1. send ``messages`` at once: they promise nothing about this node's disk
   (a leader's AppendEntries, heartbeats, InstallSnapshot and TimeoutNow
   of a term already durable: a leader elected by others' votes made its
   term and vote durable before it asked for them, while a lone voter,
   which elects itself with nothing written, holds its messages of the
   new term until the Ready carrying that term is durable (they come in
   ``messages_after_persist``); and it counts its
   own entries towards a quorum only once ``advance`` reported them
   durable, §10.2.1; a follower's answer to a heartbeat, which
   acknowledges no entry and no vote: its term may be one a heartbeat of
   a newer leader just taught it and not yet durable, but this node voted
   for no one in that term, or the vote would be durable already, so a
   restart that forgets the term undoes nothing an election counted, as
   in etcd-io/raft, whose heartbeat answers do not wait either);
2. persist ``hard_state``, ``entries`` and ``snapshot`` (fsync);
3. send ``messages_after_persist``: they promise what step 2 made durable
   (a vote, an acknowledged entry);
4. install ``snapshot`` into the state machine, then apply
   ``committed_entries`` in order, and serve ``read_states`` once applied
   up to their index;
5. call ``advance(ready)``.

One Ready is in flight at a time, from ``ready()`` to ``advance``. While
it is (its fsync runs), ``ready()`` may be called again: it then returns a
Ready holding only ``messages`` (a leader's appends and heartbeats queued
meanwhile), which is done once they are sent and needs no ``advance``.
So a leader replicates new entries, and heartbeats, while its own disk is
busy, and everything else waits for the next full Ready: one fsync then
covers all that arrived meanwhile (group commit). Steps may be interleaved
with the core's other inputs; their effects go into a later Ready.

etcd-io/raft's asynchronous storage writes go further: any number of
Readys in flight, their writes addressed as messages to a local storage
thread that answers when durable. One in flight is all a runtime with one
disk writer needs: writes stay in order, and no two of them need merging.
"""

from __future__ import annotations

import dataclasses
import enum

from ._messages import Message
from ._types import Entry, HardState, Membership, NodeId, Snapshot


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
    #: Messages to send at once, before or while this Ready is persisted.
    messages: list[Message] = dataclasses.field(default_factory=list)
    #: Messages to send only once this Ready is persisted.
    messages_after_persist: list[Message] = dataclasses.field(default_factory=list)
    #: Reads now confirmed by a quorum.
    read_states: list[ReadState] = dataclasses.field(default_factory=list)
    #: Reads the core gave up on (leadership lost): answer "retry".
    dropped_reads: list[int] = dataclasses.field(default_factory=list)
    #: New role, term or leader, or None if unchanged.
    soft_state: SoftState | None = None
    #: The configuration now in force, if it changed (§4.1: on append).
    membership: Membership | None = None

    def all_messages(self) -> list[Message]:
        """Both kinds, in the order they go: for a driver that persists
        nothing (or has already persisted)."""
        return [*self.messages, *self.messages_after_persist]

    def only_messages(self) -> bool:
        """Nothing but messages to send at once: the Ready is done once
        they are sent (it needs no ``advance``)."""
        return not (
            self.hard_state
            or self.entries
            or self.snapshot
            or self.committed_entries
            or self.messages_after_persist
            or self.read_states
            or self.dropped_reads
            or self.soft_state
            or self.membership
        )

    def __bool__(self) -> bool:
        return bool(self.messages) or not self.only_messages()
