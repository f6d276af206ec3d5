"""Value types shared by every part of the core: log entries, hard state,
membership and snapshot metadata.

All of them are frozen msgspec structs: immutable, cheap to build, hashable,
and encodable as they are (the transport sends them as MessagePack). The core
never mutates a value it has handed out.
"""

from __future__ import annotations

import enum
from functools import cached_property

import msgspec

NodeId = str


class EntryKind(enum.IntEnum):
    """What a log entry carries. Only NORMAL entries reach the state machine
    as commands; the others are the protocol's own."""

    NORMAL = 0
    #: The empty entry a new leader appends to commit entries of older terms
    #: (dissertation §3.6.2, Figure 3.7; read-index needs it too, §6.4).
    NOOP = 1
    #: A membership configuration, in force from the moment it is appended
    #: to a log, committed or not (dissertation §4.1).
    CONFIG = 2


class Entry(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One log entry. ``data`` is opaque to the core for NORMAL entries and an
    encoded :class:`Membership` for CONFIG entries. (``gc=False``: an entry
    holds only ints and bytes, so it can never be part of a reference cycle;
    untracked, a million of them cost the garbage collector nothing.)"""

    index: int
    term: int
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""

    def size(self) -> int:
        """Approximate encoded size, used to cap message and batch sizes."""
        return len(self.data) + 16


class HardState(msgspec.Struct, frozen=True):
    """What a server must have on stable storage before it answers any RPC
    (Figure 3.1's persistent state; ``commit`` is kept as well so a restarted
    node can apply what it knew to be committed without waiting for a
    leader). ``known_commit`` and ``known_commit_term``: the highest commit
    index a leader told this node of and its entry's term, kept while the
    log is behind it (a member catching up), so that the node still knows
    after a restart that a candidate not reaching it lacks committed
    entries."""

    term: int = 0
    vote: NodeId | None = None
    commit: int = 0
    known_commit: int = 0
    known_commit_term: int = 0


class Member(msgspec.Struct, frozen=True, array_like=True):
    """A server in the configuration. ``url`` is how the others reach it;
    the core never reads it, the runtime does."""

    id: NodeId
    url: str
    voter: bool = True


class Membership(msgspec.Struct, frozen=True, dict=True):
    """A cluster configuration: voters elect and form quorums, learners only
    receive the log (dissertation §4.2.1, "catching up new servers").

    The id sets are made once a configuration (``dict=True`` gives the
    cached properties their room; they are not encoded): the core asks
    for the voters at every proposal and every tick's look at its
    timers, and a set built each time was 1 % of a follower's Python."""

    members: tuple[Member, ...] = ()

    @cached_property
    def voters(self) -> frozenset[NodeId]:
        return frozenset(m.id for m in self.members if m.voter)

    @cached_property
    def learners(self) -> frozenset[NodeId]:
        return frozenset(m.id for m in self.members if not m.voter)

    @cached_property
    def ids(self) -> frozenset[NodeId]:
        return frozenset(m.id for m in self.members)

    def get(self, node_id: NodeId) -> Member | None:
        for member in self.members:
            if member.id == node_id:
                return member
        return None

    def encode(self) -> bytes:
        return _membership_encoder.encode(self)

    @staticmethod
    def decode(data: bytes) -> Membership:
        return _membership_decoder.decode(data)

    @staticmethod
    def of(members: dict[NodeId, str] | list[Member]) -> Membership:
        """A configuration sorted by id, so equal memberships encode equally."""
        if isinstance(members, dict):
            items = [Member(node_id, url) for node_id, url in members.items()]
        else:
            items = list(members)
        return Membership(tuple(sorted(items, key=lambda m: m.id)))


_membership_encoder = msgspec.msgpack.Encoder()
_membership_decoder = msgspec.msgpack.Decoder(Membership)


class SnapshotMeta(msgspec.Struct, frozen=True):
    """Where a snapshot stands in the log: the last index and term it
    replaces, and the configuration in force at that index (§5.1)."""

    index: int = 0
    term: int = 0
    membership: Membership = Membership()


class Snapshot(msgspec.Struct, frozen=True):
    """A state machine snapshot: its place in the log and the state
    machine's own serialized state, opaque to the core."""

    meta: SnapshotMeta = SnapshotMeta()
    data: bytes = b""
