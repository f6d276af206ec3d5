"""What the core's state looks like from outside: frozen values (etcd's
``raft.Status`` and ``raft.BasicStatus``).

The core's state is its own: the runtime drives it with inputs and reads
it only through :meth:`RaftCore.status`, which copies what it reports, so
that nothing outside can change the core by mistake, and a value kept
(for a log line, a test's "before") stays what it was.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from ._progress import ProgressState
from ._ready import Role, SoftState
from ._types import Membership, NodeId


class ProgressStatus(msgspec.Struct, frozen=True):
    """A leader's view of one member's log (``_progress.py``)."""

    match: int
    next: int
    state: ProgressState
    #: Heard from in the current check-quorum round (§6.2).
    recent_active: bool
    #: AppendEntries sent and not yet acknowledged.
    inflight: int
    #: Nothing more is sent to it until it answers (probe outstanding,
    #: window full, or a snapshot on its way).
    paused: bool


class BasicStatus(msgspec.Struct, frozen=True):
    """The core's state at the moment :meth:`RaftCore.basic_status` was
    called, without what costs a copy or a search (etcd's ``BasicStatus``):
    cheap enough for a runtime's every input."""

    id: NodeId
    role: Role
    term: int
    #: Whom this node voted for in ``term`` (None: nobody yet).
    vote: NodeId | None
    leader_id: NodeId | None
    commit: int
    #: The last index handed out in a Ready's ``committed_entries`` and
    #: acknowledged by ``advance``.
    applied: int
    #: The configuration in force (§4.1: the latest in the log).
    membership: Membership
    #: A leader's transfer target (§3.10), or None.
    lead_transferee: NodeId | None

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    @property
    def handing_over(self) -> bool:
        """A leader that takes no proposal because it is handing leadership
        over: a transfer is under way, or it is being removed (it hands over
        once the removal commits)."""
        return self.role is Role.LEADER and (
            self.lead_transferee is not None or self.id not in self.membership.voters
        )

    @property
    def soft_state(self) -> SoftState:
        return SoftState(self.role, self.term, self.leader_id)


class Status(BasicStatus, frozen=True):
    """All of the core's state worth reporting, at the moment
    :meth:`RaftCore.status` was called (etcd's ``Status``)."""

    #: The term of the entry at ``commit``: a leader whose ``commit_term``
    #: is not its term has not yet committed its no-op, and may not know
    #: the cluster's commit index (§6.4).
    commit_term: int
    first_index: int
    last_index: int
    #: The latest committed configuration (a member being removed is still
    #: in it until its removal commits, §4.2.2).
    committed_membership: Membership
    #: Ticks since the election timer was reset, the timeout it runs to
    #: (randomized per election, §3.4), and ticks since the last heartbeat
    #: round (a leader's).
    election_elapsed: int
    election_timeout: int
    heartbeat_elapsed: int
    #: A leader's view of each member it replicates to (itself included);
    #: empty on any other node.
    progress: Mapping[NodeId, ProgressStatus]
    #: Whether it campaigns when its timer runs out: a voter of the
    #: configuration in force, or one that it drops while the change is
    #: not committed (§4.2.2: it may hold the only copy of its removal),
    #: whose log reaches the highest commit a leader told it of.
    promotable: bool
