"""The Trio runtime of one node: drives the core, the storage, the peer
transport and the key-value state machine.

One nursery owns every task, so cancelling it stops the node with nothing
left behind:

- the ticker, delivering the core's ticks when the next one matters
  (``raft_trio.node._ticks``: every input first gets the ticks that passed);
- the ready loop: persist (one fsync for everything that arrived while the
  previous one ran: group commit), send, apply, answer waiting clients,
  ``advance``;
- one stream per peer, with its outbox (``raft_trio.peer.transport``);
- the payload supervisor (``raft_trio.node.payload``).

Nothing that waits runs inside the core; nothing here decides protocol.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec
import trio

from .. import schema
from ..broadcast import Broadcast
from ..core import (
    AppendEntries,
    AppendEntriesResponse,
    ConfChange,
    ConfigChangeRejected,
    Entry,
    EntryKind,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    LogStorage,
    Membership,
    Message,
    NotLeader,
    ProposalDropped,
    RaftConfig,
    RaftCore,
    Ready,
    RemoveMember,
    Role,
    Snapshot,
)
from ..kv import (
    Command,
    KeyValueStore,
    LeaseCheckpoint,
    LeaseGrant,
    LeaseGranted,
    LeaseRevoke,
    LeaseRevoked,
    OpPut,
    Put,
    Result,
    Started,
    Txn,
    decode_command,
    encode_command,
)
from ..peer.auth import AcceptedNonces, PeerAuthenticator
from ..peer.inbound import LazyReads
from ..peer.stream import RequestFunction, StreamOpener
from ..peer.transport import Transport
from ..peer.wire import PeerReport
from ..security import Security
from ..storage import WAL_HEADROOM_BYTES, StorageError
from ..wakeups import SharedWakeups
from . import disk_watch, metrics
from ._pending import PendingReads, PendingWrites, WaitingClients, WriteIndeterminate
from ._ticks import LazyTicks
from .leases import CHECKPOINT_BATCH, LeaseClock, minimum_ttl
from .space import SpaceGuard
from .watches import WatchHub

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Timing:
    """The runtime's clock settings in milliseconds; the core counts ticks."""

    tick_ms: int = 10
    heartbeat_ms: int = 100
    election_min_ms: int = 1000
    election_max_ms: int = 2000

    def raft_config(self) -> RaftConfig:
        def ticks(ms: int) -> int:
            return max(1, round(ms / self.tick_ms))

        return RaftConfig(
            election_ticks_min=ticks(self.election_min_ms),
            election_ticks_max=ticks(self.election_max_ms),
            heartbeat_ticks=ticks(self.heartbeat_ms),
            # Followers learn a commit within a tick (10 ms) instead of at
            # once: half the peer requests per write at low concurrency.
            lazy_commit_broadcast=True,
        )

    @property
    def peer_deadline(self) -> float:
        """Deadline of one write to a peer's stream: a heartbeat round or
        two. A stream that takes no frame within it is dropped, and the peer
        treated as unreachable until a new stream opens."""
        return max(0.2, 2 * self.heartbeat_ms / 1000)

    @property
    def quiet_leader_s(self) -> float:
        """A follower that heard nothing from its leader for this long (three
        heartbeat rounds) holds a client's write or read instead of sending
        it there (:meth:`RaftNode.require_leadership`)."""
        return 3 * self.heartbeat_ms / 1000


class NodeStorage(LogStorage, Protocol):
    """What the runtime needs of storage (``raft_trio.storage.DurableStorage``
    in production): the core's reads, plus writes split into a disk half
    (run off the event loop) and a cache half (run on it)."""

    def write_to_disk(
        self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None
    ) -> None: ...

    def apply_to_cache(
        self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None
    ) -> None: ...

    def needs_snapshot(self, applied: int) -> bool: ...

    def compact_on_disk(self, snapshot: Snapshot) -> None: ...

    def compact_cache(self, snapshot: Snapshot) -> None: ...


#: Runs a blocking disk call off the event loop (``trio.to_thread.run_sync``).
DiskRunner = Callable[..., Awaitable[Any]]

#: A Ready of at most this many entries (and bytes of them), with no
#: snapshot, is a short write: one client's pace, which
#: ``run_short_write`` may run on the loop's own thread
#: (:meth:`raft_trio.node.disk.DiskWriter.short`). Batches come from
#: many clients at once, where the loop has requests to serve while the
#: writer thread waits on the disk (side by side at 16 clients, 4 entries
#: cost the leader 3-6 % of its writes/s, 1 entry nothing measurable).
SHORT_WRITE_ENTRIES = 1
SHORT_WRITE_BYTES = 64 * 1024


class NotLeaderError(Exception):
    def __init__(self, leader_id: str | None, leader_url: str | None) -> None:
        super().__init__(f"not the leader (leader: {leader_id or 'unknown'})")
        self.leader_id = leader_id
        self.leader_url = leader_url


class Unavailable(Exception):
    """The request cannot be taken now (transfer in progress, backlog);
    retrying shortly may succeed."""


class InsufficientStorage(Unavailable):
    """A new value is refused, having changed nothing: a member's free
    space is short (:mod:`raft_trio.node.space`)."""


class LeaseMissing(Exception):
    """The lease does not exist (never granted, expired or revoked)."""


@dataclasses.dataclass(frozen=True)
class LeaseInfo:
    id: int
    #: Seconds left before the leader revokes it.
    remaining: float
    granted_ttl: int
    keys: list[str]


#: ``commit`` events on ``/api/events`` come at most this often (seconds):
#: the last change is always announced, at most this late.
COMMIT_EVENT_INTERVAL_S = 0.1

#: A follower whose applied index is within this many entries of the
#: leader's commit index (as last heard) counts as caught up for ``/readyz``:
#: the same margin within which the leader promotes a learner, so that a
#: follower under a steady write load (always a batch or two behind) is
#: ready, and one replaying or fetching a backlog is not.
READY_MAX_LAG = 100

#: A compaction writes the whole state as a snapshot file, which takes
#: longer the larger the state: the disk-stall watch gives it this many
#: bytes a second on top of the minimum election timeout before a leader
#: steps down (a slow disk's sequential rate, as the peer streams' 1 s a MiB).
COMPACTION_MIN_WRITE_RATE = 4 << 20

#: While space is short, compact as soon as this many entries follow the
#: last snapshot (instead of the policy's 10,000): deletes then give their
#: space back within seconds.
LOW_SPACE_COMPACT_ENTRIES = 100

#: The longest a once-a-second duty waits for a turn the node has anyway
#: (raft_trio.wakeups): a keep-alive then leaves within 1.5 s of the last
#: frame, well inside a peer's silence check (5 s).
WAKEUP_SLACK_MAX_S = 0.5

#: How many heartbeat rounds' send times a leader keeps to date their
#: answers: an answer read more rounds late than this (never, at rest,
#: where it is read within one) extends nothing.
ROUNDS_REMEMBERED = 8


@dataclasses.dataclass(frozen=True)
class NodeEvent:
    """A change worth announcing on ``/api/events``."""

    name: str  # role, term, leader, membership, commit
    data: schema.NodeEventData


class RaftNode:
    def __init__(
        self,
        node_id: str,
        url: str,
        storage: NodeStorage,
        timing: Timing,
        seed: int | None = None,
        write_timeout: float = 5.0,
        *,
        run_disk: DiskRunner = trio.to_thread.run_sync,
        run_short_write: DiskRunner | None = None,
        request: RequestFunction | None = None,
        open_stream: StreamOpener | None = None,
        security: Security | None = None,
        cluster_id: str | None = None,
        space: SpaceGuard | None = None,
        peer_nonces: AcceptedNonces | None = None,
    ) -> None:
        self.id = node_id
        #: The cluster's id as recorded in the data directory (None: none).
        self.cluster_id = cluster_id
        #: Free space against the reserve (None: not guarded, as in tests).
        self.space = space
        self._next_compaction_try = 0
        #: Member -> the term in which this node proposed its Started record.
        self._started_proposed: dict[str, int] = {}
        #: When this node was made (its status's uptime).
        self._born = time.monotonic()
        self.url = url
        self.storage = storage
        self.timing = timing
        self.write_timeout = write_timeout
        self._run_disk = run_disk
        self._run_short_write = run_short_write or run_disk
        self._request = request
        self._open_stream = open_stream
        self.security = security = security or Security()
        #: Signs this node's peer requests and checks those it receives
        #: (None: no cluster secret, peers are trusted); ``peer_nonces``
        #: keeps what it accepted across restarts (the data directory's).
        self.peer_auth = (
            PeerAuthenticator(security.cluster_secret, node_id, kept=peer_nonces)
            if security.cluster_secret
            else None
        )
        self._known_peers: dict[str, str] = {}
        #: The core's removed_released when the transport last followed it.
        self._removed_released = 0
        # Where discovery last found members that the configuration records
        # at another URL (see use_found_addresses).
        self._found_addresses: dict[str, str] = {}
        self.kv = KeyValueStore()
        if space is not None:
            space.headroom = self._space_headroom
        snapshot = storage.snapshot()
        self.kv.restore(snapshot.data)
        self.watches = WatchHub(self.kv.history, lambda: self.kv.applied_index)
        #: Deadlines of the leases, while this node leads.
        self.leases = LeaseClock()
        #: The term whose leader started that clock (0: none runs): once it
        #: applied an entry of its own term (see leases.py).
        self._lease_clock_term = 0
        rng = random.Random(seed if seed is not None else random.SystemRandom().getrandbits(64))
        self.core = RaftCore(node_id, storage, timing.raft_config(), rng)
        # The ticker sleeps at most a heartbeat interval, so a pause is
        # told from time the node ran (see raft_trio.node._ticks).
        self._ticks = LazyTicks(self.core, timing.tick_ms / 1000, timing.heartbeat_ms / 1000)
        #: A leader at rest reads its peers' streams at its heartbeat rounds
        #: (raft_trio.peer.inbound.LazyReads), where each check-quorum round
        #: still sees a heartbeat answered at least twice: None when
        #: heartbeats are sparser than a third of the election timeout.
        config = self.core.config
        self.lazy_reads = (
            LazyReads(self.core.awaits_answers)
            if config.election_ticks_min >= 3 * config.heartbeat_ticks
            else None
        )
        #: Set in the ticker's turn: a Ready it causes is the ticker's to take.
        self._ticker_turn = False
        #: Once-a-second duties (keep-alive checks, the disk watch) end their
        #: sleeps in a turn the node has anyway: the ticker's, or a message's
        #: (a follower's heartbeats), within one and a half heartbeats, or
        #: half a second with sparse heartbeats: a keep-alive due every
        #: second must reach a peer well before its 5 s silence check.
        self.wakeups = SharedWakeups(slack=min(1.5 * timing.heartbeat_ms / 1000, WAKEUP_SLACK_MAX_S))
        self._writes = PendingWrites(write_timeout)
        self._reads = PendingReads(write_timeout)
        self._wake = trio.Event()
        self._pump_wake = trio.Event()
        #: The ready loop is inside ``_handle_ready``, which awaits the disk
        #: (a persist, a compaction): meanwhile the leader pump takes Readys.
        self._ready_loop_awaits = False
        #: The Ready in flight, taken and not yet handled by the ready loop
        #: (whoever takes one sends its ``messages`` at once).
        self._taken: Ready | None = None
        #: When the disk write under way began, if one is: a Ready's, or a
        #: compaction's, which is allowed ``_persist_allowance_s`` more.
        self._persist_started: float | None = None
        self._persist_allowance_s = 0.0
        self._transport: Transport | None = None
        self._events: Broadcast[NodeEvent] = Broadcast(256)
        self._commit_due = False
        self._commit_announced_at = -float("inf")
        self._role_listeners: list[Callable[[Role, int, str | None], None]] = []
        self._last_soft = self.core.basic_status().soft_state
        #: Set (and replaced) when the leader changes, when a quiet leader
        #: speaks again while a request is held for it, and at a stop.
        self._leader_news = trio.Event()
        #: Client requests held for news of a quiet leader.
        self._held_for_leader = 0
        self.closing = trio.Event()
        #: Set once the process was told to stop: ``/readyz`` answers 503 and
        #: a leader takes no new write (it is handing leadership over).
        self.stopping = False
        # The leader's commit index as last heard in this term, and when
        # (``/readyz``): AppendEntries carry the leader's commit index.
        self._leader_heard: tuple[int, str] | None = None
        self._leader_commit = 0
        self._leader_heard_at = -float("inf")
        # As leader: since when each follower is known to follow it in
        # this term, the lease behind ``/readyz`` (a quorum heard within
        # the minimum election timeout). A heartbeat's answer counts from
        # when its round left (``_round_sent_at``), not when it was read:
        # at rest a leader reads answers up to a round late.
        self._answered_at: dict[str, tuple[int, float]] = {}
        self._round_sent_at: dict[int, float] = {}
        # Clients waiting inside write/read/change calls; ``drain`` waits for
        # none to be left before the node stops.
        self._clients = WaitingClients()
        metrics.observe_state(self)

    # ------------------------------------------------------------------
    # Queries

    # What the layers above read of the core's state: through these, never
    # ``node.core`` (the core's state is the runtime's to drive).

    @property
    def term(self) -> int:
        return self.core.term

    @property
    def leader_id(self) -> str | None:
        return self.core.leader_id

    @property
    def is_leader(self) -> bool:
        return self.core.is_leader

    @property
    def handing_over(self) -> bool:
        """Leading, but taking no proposal: a transfer is under way, or this
        leader is being removed."""
        return self.core.basic_status().handing_over

    @property
    def commit_index(self) -> int:
        return self.core.basic_status().commit

    @property
    def last_log_index(self) -> int:
        return self.core.status().last_index

    @property
    def membership(self) -> Membership:
        """The configuration in force (§4.1: the latest in the log)."""
        return self.core.basic_status().membership

    @property
    def committed_membership(self) -> Membership:
        """The latest configuration known to be committed."""
        return self.core.status().committed_membership

    @property
    def role_name(self) -> schema.Role:
        core = self.core.basic_status()
        if core.role is Role.LEADER:
            return "leader"
        if core.role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
            return "candidate"
        if self.id in core.membership.learners:
            return "learner"
        return "follower"

    def leader_url(self) -> str | None:
        core = self.core.basic_status()
        leader = core.leader_id
        if leader is None:
            return None
        if leader in self._found_addresses:
            return self._found_addresses[leader]
        member = core.membership.get(leader)
        return member.url if member is not None else None

    def event_payload(self, *, with_members: bool = False) -> schema.NodeEventData:
        """What every event carries (the contract asks for at least id,
        role, term and leader_id)."""
        core = self.core.basic_status()
        return schema.NodeEventData(
            id=self.id,
            role=self.role_name,
            term=core.term,
            leader_id=core.leader_id,
            commit_index=core.commit,
            applied_index=self.kv.applied_index,
            members=self._members() if with_members else schema.UNSET,
            pre_vote=core.role is Role.PRE_CANDIDATE,
        )

    def _members(self) -> list[schema.Member]:
        started = self.kv.started
        return [schema.Member(m.id, m.url, m.voter, m.id in started) for m in self.membership.members]

    def readiness(self) -> schema.Readiness:
        """The ``/readyz`` document: ``ready`` is true when this node is a
        member that is caught up with a live leader, so that Kubernetes
        sends it clients and a rolling update waits for it before it stops
        the next pod.

        - The leader is ready while it holds its check-quorum lease (§6.2):
          a majority of the voters (itself included) answered it within the
          minimum election timeout, once it has committed an entry of its
          own term (before that its commit index may lag the cluster's,
          §6.4) and applied to within ``READY_MAX_LAG`` of it. (The core
          steps a leader down only at the end of a check-quorum round, up
          to two timeouts after the loss; readiness does not wait for that.)
        - Any other member is ready when it heard from a leader within the
          minimum election timeout (the lease that leader holds) and has
          applied to within ``READY_MAX_LAG`` of that leader's commit index
          as last heard.

        ``reason`` says why not, in words."""
        core = self.core.status()
        applied = self.kv.applied_index

        def answer(ready: bool, reason: str, leader_commit: int | None = None) -> schema.Readiness:
            return schema.Readiness(
                ready=ready,
                reason=reason,
                id=self.id,
                role=self.role_name,
                term=core.term,
                leader_id=core.leader_id,
                applied_index=applied,
                leader_commit_index=leader_commit,
            )

        if self.stopping:
            return answer(False, "the node is stopping")
        if self._persist_started is not None:
            writing_s = trio.current_time() - self._persist_started
            if writing_s >= self._stall_limit_s():
                return answer(
                    False, f"storage failing: a disk write has not finished in {writing_s * 1000:.0f} ms"
                )
        if core.membership.get(self.id) is None:
            return answer(False, "not a member of the cluster's configuration (yet, or any more)")
        out_of_touch = self.out_of_touch()
        if core.role is Role.LEADER:
            committed = core.commit
            if out_of_touch is not None:
                return answer(False, out_of_touch, committed)
            if core.commit_term != core.term:
                return answer(False, "new leader: no entry of its term has committed yet", committed)
            if applied + READY_MAX_LAG < committed:
                return answer(False, f"applying: applied {applied} of committed {committed}", committed)
            return answer(True, "leader holding its check-quorum lease", committed)
        leader = core.leader_id
        heard = leader is not None and self._leader_heard == (core.term, leader)
        leader_commit = self._leader_commit if heard else None
        if out_of_touch is not None:
            return answer(False, out_of_touch, leader_commit)
        if applied + READY_MAX_LAG < self._leader_commit:
            return answer(
                False,
                f"behind: applied {applied}, the leader's commit index is {self._leader_commit}",
                self._leader_commit,
            )
        return answer(True, f"caught up with the leader {leader}", self._leader_commit)

    def out_of_touch(self) -> str | None:
        """Why this node may not be in touch with the cluster's latest
        state, or None while it is: the leader while it holds its
        check-quorum lease (a majority of the voters, itself included,
        answered within the minimum election timeout), any other member
        while it heard from the leader within that timeout.

        ``/readyz`` reports it, and authorised requests are refused while
        it holds (raft_trio.http.auth): in touch, a change to users or
        roles reaches this node as fast as any other entry; cut off, it
        stops deciding who may do what at most one minimum election
        timeout (1 s by default) after it last heard from the cluster."""
        core = self.core.basic_status()
        now = trio.current_time()
        if core.role is Role.LEADER:
            lease_s = self.timing.election_min_ms / 1000
            heard = {self.id} | {
                peer
                for peer, (term, at) in self._answered_at.items()
                if term == core.term and now - at < lease_s
            }
            voters = core.membership.voters
            if 2 * len(voters & heard) > len(voters):
                return None
            return (
                f"lease lapsing: {len(voters & heard)} of {len(voters)} voters answered "
                f"within the last {self.timing.election_min_ms} ms"
            )
        leader = core.leader_id
        if leader is None:
            return "no leader is known"
        if self._leader_heard != (core.term, leader):
            return f"nothing heard yet from the leader {leader} in term {core.term}"
        silent_ms = (now - self._leader_heard_at) * 1000
        if silent_ms >= self.timing.election_min_ms:
            return f"the leader {leader} has been silent for {silent_ms:.0f} ms"
        return None

    def status(self) -> schema.Status:
        """The ``/api/status`` document."""
        core = self.core.status()
        return schema.Status(
            id=self.id,
            role=self.role_name,
            term=core.term,
            leader_id=core.leader_id,
            leader_url=self.leader_url(),
            commit_index=core.commit,
            applied_index=self.kv.applied_index,
            last_log_index=core.last_index,
            members=self._members(),
            url=self.url,
            alarms=self.space.alarms() if self.space is not None else [],
            pre_vote=core.role is Role.PRE_CANDIDATE,
            uptime_s=round(time.monotonic() - self._born, 3),
            cluster_id=self.cluster_id,
        )

    # ------------------------------------------------------------------
    # Running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._transport = Transport(
                self.id,
                nursery,
                self.timing.peer_deadline,
                on_unreachable=self._peer_unreachable,
                on_snapshot_sent=self._snapshot_sent,
                metrics=metrics.PeerStreamMetrics(),
                request=self._request,
                open_stream=self._open_stream,
                auth=self.peer_auth,
                verify=self.security.client_ssl(),
                report=self._report,
                wakeups=self.wakeups,
                on_refused=self._peer_refused,
                cluster_id=self.cluster_id,
            )
            self._transport.set_peers(self._peer_urls())
            self._ticks.start()
            try:
                nursery.start_soon(self._ticker, name="ticker")
                nursery.start_soon(self._ready_loop, name="ready-loop")
                nursery.start_soon(self._leader_pump, name="leader-pump")
                task_status.started()
                await self.closing.wait()
                nursery.cancel_scope.cancel()
            finally:
                self._writes.fail_all("the node is shutting down")
                self._reads.fail_all()
                self._events.close()
                self.watches.close()
                await self._transport.aclose()

    def close(self) -> None:
        self.closing.set()

    def _peer_urls(self) -> dict[str, str]:
        """Whom the transport keeps senders for: the configuration in force,
        and a member it drops until that removal commits (§4.2.2). A
        follower appends the configuration that removes its leader before it
        acknowledges it, and the removed leader commits its removal only
        with those acknowledgements; a removed follower learns from the
        leader that it is out."""
        core = self.core.status()
        # Known peers tell a node that joins whom to answer until the log
        # names its cluster; once it is in its own configuration they are
        # no longer wanted (a member removed later keeps no stream).
        peers = dict(self._known_peers) if self.id not in core.membership.ids else {}
        peers.update((m.id, m.url) for m in core.committed_membership.members)
        peers.update((m.id, m.url) for m in core.membership.members)
        peers.update((i, url) for i, url in self._found_addresses.items() if i in peers)
        for node_id in core.progress:
            # A removed member a leader still replicates to, until it holds
            # its removal and has been told it committed (RaftCore
            # removed_released): at the URL its stream has.
            sender = self._transport.senders.get(node_id) if self._transport is not None else None
            if node_id not in peers and sender is not None:
                peers[node_id] = sender.url
        peers.pop(self.id, None)
        return peers

    def use_found_addresses(self, found: dict[str, str]) -> None:
        """Members found answering at other URLs than the configuration
        records (the URL each advertises, found by discovery): messages go
        there until the leader commits the new URL. Without this, replicas
        that all came back at new addresses (a compose project stopped and
        started) could not reach each other to elect the leader that
        records the addresses."""
        recorded = {m.id: m.url for m in self.membership.members}
        found = {i: url for i, url in found.items() if i != self.id and i in recorded and recorded[i] != url}
        if found != self._found_addresses:
            for node_id, url in found.items():
                if self._found_addresses.get(node_id) != url:
                    log.info("reaching %s at %s (the configuration says %s)", node_id, url, recorded[node_id])
            self._found_addresses = found
            if self._transport is not None:
                self._transport.set_peers(self._peer_urls())

    def observe_term(self, term: int) -> None:
        """The cluster's term, read before this node asks to join
        (RaftCore.observe_term: a stale leader of an older term that still
        counts this id as an earlier server is then refused). Durable with
        the next Ready, as any new term."""
        self.core.observe_term(term)
        self.wake()

    def add_known_peers(self, peers: dict[str, str]) -> None:
        """Addresses of a cluster's members learned outside the log: a node
        that joins has an empty configuration until the leader's entries
        reach it, yet must answer the leader to get them. The configuration
        in force always wins over these, and once it names this node they
        are not used (see _peer_urls)."""
        self._known_peers.update(peers)
        if self._transport is not None:
            self._transport.set_peers(self._peer_urls())

    def _report(self) -> PeerReport:
        """What this node tells its peers about itself on its streams."""
        return PeerReport(tuple(self.space.alarms())) if self.space is not None else PeerReport()

    def report_changed(self) -> None:
        """This node's alarms changed: tell every peer now."""
        if self._transport is not None:
            self._transport.report_changed()

    def peer_reported(self, peer_id: str, report: PeerReport) -> None:
        """A peer's report arrived on its stream: keep its alarms (a
        leader refuses new values while a member is short of space)."""
        if self.space is not None:
            self.space.peer_reported(peer_id, report.alarms)

    def _peer_unreachable(self, peer_id: str) -> None:
        self.core.report_unreachable(peer_id)

    def _peer_refused(self, peer_id: str) -> None:
        """A peer's address refused a stream: if it is our leader, it is
        gone (a crash, a stop), and the core may campaign as soon as its
        lease lets it; the ticker must wake for that sooner. Said when the
        core takes its turn, not at each of the stream's retries."""
        self._ticks.catch_up()
        if self.core.report_refused(peer_id):
            log.info("the leader %s refuses connections: campaigning when its lease ends", peer_id)
            self.wake()

    def _snapshot_sent(self, peer_id: str, ok: bool) -> None:
        self.core.report_snapshot(peer_id, ok)
        self.wake()

    def wake(self) -> None:
        """The core took an input: handle what it has to do, and wake the
        ticker sooner if a timer moved closer."""
        self._wake.set()
        if self._ready_loop_awaits and self.is_leader and self.core.has_ready():
            # The ready loop waits on the disk: the leader pump sends now.
            # Otherwise the ready loop, woken above, takes the Ready itself
            # (the pump would cost two task steps for nothing).
            self._pump_wake.set()
        self._ticks.reschedule(*self._deadlines())
        self._wake_lazy_reads()

    def _wake_lazy_reads(self) -> None:
        if self.lazy_reads is not None:
            self.lazy_reads.wake_if_awaited()

    def _take_ready(self) -> None:
        """Take the core's Ready: its ``messages`` leave at once; if it
        holds more (a persist, answers, entries to apply), it is the ready
        loop's to handle. While one is in flight the core hands out only
        messages: a leader's appends and heartbeats never wait on its
        fsync (see raft_trio.core._ready)."""
        ready = self.core.ready()
        transport = self._transport
        assert transport is not None
        transport.send(ready.messages)
        if self.core.removed_released != self._removed_released:
            # A removed member released: its last heartbeat is on its way
            # (just sent), its stream ends (see _peer_urls).
            self._removed_released = self.core.removed_released
            transport.set_peers(self._peer_urls())
        self._note_heartbeat_round()
        if not ready.only_messages():
            self._taken = ready
            self._wake.set()
        self._wake_lazy_reads()

    def _note_heartbeat_round(self) -> None:
        """Remember when the latest heartbeat round left (a round's
        messages leave in the Ready taken right after the core numbers
        it); the last few rounds are enough, older answers count for
        nothing."""
        round_sent = self.core.heartbeat_round()
        sent_at = self._round_sent_at
        if round_sent and round_sent not in sent_at:
            sent_at[round_sent] = trio.current_time()
            if len(sent_at) > ROUNDS_REMEMBERED:
                del sent_at[next(iter(sent_at))]

    def _note_answer(self, message: AppendEntriesResponse | HeartbeatResponse) -> None:
        """A follower answered: it followed this leader at least since
        its answer's round left (a heartbeat's) or now (an append's,
        read as it comes: a leader awaiting entries' answers reads
        eagerly)."""
        if isinstance(message, HeartbeatResponse):
            at = self._round_sent_at.get(message.seq)
            if at is None:
                return
        else:
            at = trio.current_time()
        known = self._answered_at.get(message.src)
        if known is None or known[0] != message.term or known[1] < at:
            self._answered_at[message.src] = (message.term, at)

    async def _leader_pump(self) -> None:
        """Takes a leader's Readys while the ready loop waits on the disk
        (``wake`` calls it then): its appends go out during its own fsync
        (§10.2.1). Heartbeats leave from the ticker's turn, and at other
        times the ready loop takes the Ready itself."""
        while True:
            await self._pump_wake.wait()
            self._pump_wake = trio.Event()
            # Let the other tasks woken with us (concurrent client requests)
            # propose first, so that one AppendEntries carries them all.
            await trio.lowlevel.checkpoint()
            if self.core.has_ready():
                self._take_ready()

    async def _ticker(self) -> None:
        while True:
            with trio.CancelScope(deadline=self._ticks.next_wake(*self._deadlines())) as sleep:
                self._ticks.sleeping(sleep)
                await trio.sleep_forever()
            self._ticks.catch_up()
            self.wakeups.awake()
            if self.lazy_reads is not None:
                # A leader at rest reads its followers' answers here.
                self._ticker_turn = True
                try:
                    self.lazy_reads.read_parked()
                finally:
                    self._ticker_turn = False
            self._check_disk_stall()
            self._expire_waits()
            self._expire_leases()
            self._announce_commit()
            if self.core.has_ready():
                # Heartbeats (and a commit index) go out from here: no
                # other task needs waking for a Ready of messages only.
                self._take_ready()
            else:
                self._wake_lazy_reads()

    def _deadlines(self) -> tuple[float, float, float, float]:
        """When the ticker must look again besides the core's ticks: a
        persist under way has taken too long (see below), the first lease
        may have run out or be due a checkpoint, a held-back commit event
        is due, the first waiting write or read times out (on any node:
        one that stepped down keeps its writes waiting, and a follower
        that hears its leader would not wake for them)."""
        stall = lease = commit = math.inf
        started = self._persist_started
        if self.is_leader:
            if self._lease_clock_running:
                lease = self.leases.next_check
            if started is not None:
                stall = started + self._stall_limit_s() + self.timing.tick_ms / 1000
        if self._commit_due:
            commit = self._commit_announced_at + COMMIT_EVENT_INTERVAL_S
        waits = min(self._writes.next_deadline(), self._reads.next_deadline())
        return stall, lease, commit, waits

    async def _watched(
        self, run: DiskRunner, job: Callable[..., Any], *args: Any, allowance_s: float = 0.0
    ) -> None:
        """``run(job, *args)`` under the disk-stall watch (a Ready's write, a
        compaction): the watch counts from now, and a leader steps down once
        the job took longer than the election timeout and ``allowance_s``."""
        self._persist_started = trio.current_time()
        self._persist_allowance_s = allowance_s
        try:
            await run(job, *args)
        finally:
            self._persist_started = None
            self._persist_allowance_s = 0.0

    def _stall_limit_s(self) -> float:
        """How long the disk write under way may take before the disk counts
        as stalled: the minimum election timeout, and a compaction's
        allowance for the size of its snapshot."""
        return self.timing.election_min_ms / 1000 + self._persist_allowance_s

    def _check_disk_stall(self) -> None:
        """A leader whose fsync (or compaction) has stalled for longer than
        an election timeout steps down: it cannot make entries durable, nor
        apply what commits, and heartbeats alone would keep the others from
        electing one that can."""
        started = self._persist_started
        if started is None or not self.is_leader:
            return
        stalled = trio.current_time() - started
        if stalled > self._stall_limit_s():
            log.warning("disk write stalled for %.1f s: stepping down", stalled)
            self.core.step_down()
            self.wake()

    def _expire_waits(self) -> None:
        """Writes and reads whose timeout passed get their answer (one
        sweep a ticker turn instead of a cancel scope each)."""
        now = trio.current_time()
        self._writes.expire(now)
        self._reads.expire(now)

    @property
    def _lease_clock_running(self) -> bool:
        """This node leads and has started its lease clock in this term
        (once it applied an entry of its term): before that, the clock
        neither tracks, revokes nor records anything."""
        return self.is_leader and self._lease_clock_term == self.term

    def _expire_leases(self) -> None:
        """As leader: propose the revoke of every lease whose deadline
        passed (its keys go when the revoke applies, on every replica),
        and the checkpoints due."""
        if not self._lease_clock_running:
            return
        now = trio.current_time()
        due = self.leases.checkpoints_due(now)
        for start in range(0, len(due), CHECKPOINT_BATCH):
            batch = due[start : start + CHECKPOINT_BATCH]
            try:
                index = self._propose(encode_command(LeaseCheckpoint(batch)))
            except (NotLeaderError, ProposalDropped):
                self.leases.checkpoint_failed(batch, now)
            else:
                self.leases.checkpoint_proposed(batch, index)
                self.wake()
        for lease in self.leases.due(now):
            try:
                self._propose(encode_command(_with_timestamp(LeaseRevoke(lease))))
            except (NotLeaderError, ProposalDropped):
                self.leases.revoke_failed(lease)
            else:
                log.info("lease %016x expired: revoking it", lease)
                self.wake()

    async def _ready_loop(self) -> None:
        try:
            while True:
                while True:
                    if self._taken is None and self.core.has_ready():
                        self._take_ready()
                    ready, self._taken = self._taken, None
                    if ready is None:
                        break
                    self._ready_loop_awaits = True
                    try:
                        await self._handle_ready(ready)
                    finally:
                        self._ready_loop_awaits = False
                    if self._taken is not None or self.core.has_ready():
                        # A long backlog comes in slices (max_apply_bytes):
                        # let requests and ticks run between them.
                        await trio.lowlevel.checkpoint()
                # Nothing left: whatever set the event meanwhile was handled
                # above, so wait for the next input with a fresh one (no
                # turn for an event set already).
                self._wake = trio.Event()
                await self._wake.wait()
        except StorageError as error:
            # Fail-stop: nothing that depended on the failed write was
            # sent or answered; the node ends (the CLI prints one line).
            metrics.STORAGE_ERRORS.labels(type(error).__name__).inc()
            raise

    async def _handle_ready(self, ready: Ready) -> None:
        """Persist, send, apply and answer, then ``advance``; its
        ``messages`` were sent when it was taken (``_take_ready``)."""
        transport = self._transport
        assert transport is not None
        # 1. Persist: durable before anything that promises it is sent.
        if ready.hard_state is not None or ready.entries or ready.snapshot is not None:
            started = time.perf_counter()
            # The stall deadline (a leader's only) now runs. The ticker
            # needs no new plan for it: a leader's next heartbeat tick is
            # always sooner (the config keeps the heartbeat interval below
            # the minimum election timeout), and that wake looks again.
            run = self._run_short_write if _is_short_write(ready) else self._run_disk
            await self._watched(
                run, self.storage.write_to_disk, ready.hard_state, ready.entries, ready.snapshot
            )
            metrics.FSYNC_SECONDS.observe(time.perf_counter() - started)
            self.storage.apply_to_cache(ready.hard_state, ready.entries, ready.snapshot)
            if (
                self.space is not None
                and ready.entries
                and self.space.wrote(sum(len(e.data) for e in ready.entries))
            ):
                disk_watch.tell_if_changed(self, self.space)  # before the watch's next look
        # 2. Send.
        transport.send(ready.messages_after_persist)
        # 3. Apply, answer.
        if ready.snapshot is not None:
            self.kv.restore(ready.snapshot.data)
            self._writes.fail_up_to(ready.snapshot.meta.index, "a snapshot from the leader replaced the log")
            log.info("installed snapshot at index %d", ready.snapshot.meta.index)
        leading = self.is_leader
        clock_running = self._lease_clock_running
        for entry in ready.committed_entries:
            if entry.kind is EntryKind.NORMAL:
                command = decode_command(entry.data)
                result = self.kv.apply(entry.index, command, answered=self._writes.waiting_at(entry.index))
                if clock_running:
                    # Not before the takeover: it reads the leases from the
                    # state, and a deadline kept before it could have had its
                    # time left recorded, a record the takeover forgets.
                    if isinstance(result, (LeaseGranted, LeaseRevoked)):
                        self._track_lease(result, entry.index)
                    elif isinstance(command, LeaseCheckpoint):
                        self.leases.checkpoint_applied(command.leases, entry.index)
                self._writes.applied(entry.index, entry.term, result)
            else:
                members = Membership.decode(entry.data).ids if entry.kind is EntryKind.CONFIG else None
                self.kv.skip(entry.index, members)
                if members is not None:
                    # Added again later, in this term even, it is a new
                    # incarnation to record (_record_started).
                    for gone in [m for m in self._started_proposed if m not in members]:
                        del self._started_proposed[gone]
                self._writes.applied(entry.index, entry.term, None)
            if leading and not clock_running and entry.term == self.term:
                # Everything committed before this term is applied now.
                self.leases.take_over(self.kv.leases.values(), trio.current_time(), entry.index)
                self._lease_clock_term = entry.term
                clock_running = True
        if ready.snapshot is not None or ready.committed_entries:
            self.watches.notify()
            self._commit_due = True
            self._announce_commit()
        for read_state in ready.read_states:
            self._reads.confirmed(read_state.request_id, read_state.index, self.kv.applied_index)
        for request_id in ready.dropped_reads:
            self._reads.drop(request_id)
        self._reads.release(self.kv.applied_index)
        if ready.membership is not None or any(e.kind is EntryKind.CONFIG for e in ready.committed_entries):
            # A configuration appended (new peers) or committed (a removal
            # done: its member's sender goes once the leader released it,
            # see _peer_urls and _take_ready).
            transport.set_peers(self._peer_urls())
        if ready.membership is not None:
            self._announce("membership")
        if ready.soft_state is not None:
            self._on_soft_state_change()
        self.core.advance(ready)
        if self.is_leader and self.id not in self.kv.started:
            self._record_started(self.id)
        self._ticks.reschedule(*self._deadlines())  # a commit may wait for the next tick, a lease began
        await self._maybe_compact()

    def _space_headroom(self) -> int:
        """Room to keep besides the reserve: the next snapshot (about the
        state's size with the remembered answers, a tenth more for its
        encoding) and the WAL's growth."""
        state = self.kv.size + self.kv.session_bytes
        return state + state // 10 + WAL_HEADROOM_BYTES

    def _record_started(self, member: str) -> None:
        """As leader, put in the log that ``member`` has started (it
        acknowledged entries, or it leads): once committed, a new data
        directory for it is refused (:mod:`raft_trio.node.first_start`).
        Proposed once a term per member until it is applied."""
        term = self.term
        if member in self.kv.started or self._started_proposed.get(member) == term:
            return
        if member not in self.membership.ids:
            # An acknowledgement that came after its removal was appended:
            # recorded, it would outlive the removal and refuse the member
            # added again (a review's finding).
            return
        try:
            self.core.propose(encode_command(Started(member)))
        except (NotLeader, ProposalDropped):
            return  # not leading, or handing over: the next leader records it
        self._started_proposed[member] = term
        self.wake()

    def _track_lease(self, result: LeaseGranted | LeaseRevoked, index: int) -> None:
        # Only what this entry did: a retry's remembered answer (its token
        # applied before) granted or revoked nothing now, and the lease it
        # names may have been revoked, or granted, since.
        if (result.id if isinstance(result, LeaseGranted) else result.index) != index:
            return
        if isinstance(result, LeaseGranted):
            self.leases.granted(result.id, result.ttl, trio.current_time())
        else:
            self.leases.revoked(result.id)

    def _on_soft_state_change(self) -> None:
        old, new = self._last_soft, self.core.basic_status().soft_state
        self._last_soft = new
        if old.role is Role.LEADER and new.role is not Role.LEADER:
            # Only a leader keeps lease deadlines; the next starts its own
            # once it applied an entry of its term (_handle_ready).
            self.leases.step_down()
            self._lease_clock_term = 0
            # Pending writes keep waiting (each within its own timeout): as
            # a follower this node still applies the committed log, and the
            # entry applied at a write's index says its fate for certain
            # (its term: committed, 200; another: overwritten, a definite
            # failure). After a leadership transfer they almost always
            # commit, so a hand-over turns no write indeterminate.
            self._reads.fail_all()
        if new.role is not old.role:
            log.info("role %s -> %s in term %d", old.role.value, new.role.value, new.term)
            if new.role is Role.LEADER or old.role is Role.LEADER:
                metrics.LEADER_CHANGES.inc()
            self._announce("role")
            for listener in self._role_listeners:
                listener(new.role, new.term, new.leader_id)
        if new.term != old.term:
            self._announce("term")
        if new.leader_id != old.leader_id:
            log.info("leader is now %s (term %d)", new.leader_id, new.term)
            self._announce("leader")
            self._tell_leader_news()

    async def _maybe_compact(self) -> None:
        applied = self.kv.applied_index
        core = self.core.basic_status()
        if core.applied != applied or applied < core.commit:
            return  # still working through a backlog: snapshot once at its end
        if applied < self._next_compaction_try:
            return
        space = self.space
        short = space is not None and space.alarm
        if not self.storage.needs_snapshot(applied) and not (
            short and applied >= self.storage.snapshot().meta.index + LOW_SPACE_COMPACT_ENTRIES
        ):
            return
        snapshot = Snapshot(self.core.snapshot_meta(applied), self.kv.snapshot())
        if space is not None:
            # A snapshot file that cannot fit would stop the node (ENOSPC):
            # try again LOW_SPACE_COMPACT_ENTRIES entries later instead.
            needed = len(snapshot.data) + len(snapshot.data) // 10 + (1 << 20)
            free = space.free_bytes()
            if free < needed:
                self._next_compaction_try = applied + LOW_SPACE_COMPACT_ENTRIES
                log.warning(
                    "no room for a snapshot of %d bytes (%d free): compaction postponed",
                    len(snapshot.data),
                    free,
                )
                return
        # Watched as a Ready's write is: a leader stuck in it heartbeats on
        # but applies nothing.
        allowance = len(snapshot.data) / COMPACTION_MIN_WRITE_RATE
        await self._watched(self._run_disk, self.storage.compact_on_disk, snapshot, allowance_s=allowance)
        self.storage.compact_cache(snapshot)
        log.info("snapshot at index %d, log compacted%s", applied, " (space is short)" if short else "")

    # ------------------------------------------------------------------
    # Events

    def _announce_commit(self) -> None:
        """A ``commit`` event when the applied index moved, at most every
        ``COMMIT_EVENT_INTERVAL_S`` (the ticker sends a held-back one)."""
        if not self._commit_due:
            return
        if not len(self._events):
            self._commit_due = False
            return
        now = trio.current_time()
        if now - self._commit_announced_at < COMMIT_EVENT_INTERVAL_S:
            return
        self._commit_due = False
        self._commit_announced_at = now
        self._announce("commit")

    def on_role_change(self, listener: Callable[[Role, int, str | None], None]) -> None:
        self._role_listeners.append(listener)

    def _announce(self, name: str) -> None:
        data = self.event_payload(with_members=name == "membership")
        self._events.publish(NodeEvent(name, data))

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[trio.MemoryReceiveChannel[NodeEvent]]:
        """A stream of this node's events; one that falls 256 events behind
        is closed rather than hold the node's memory (its client
        reconnects)."""
        return self._events.subscribe()

    # ------------------------------------------------------------------
    # Client operations

    def step(self, messages: list[Message]) -> None:
        self._ticks.catch_up()
        self.wakeups.awake()
        for message in messages:
            self.core.step(message)
            if isinstance(message, (AppendEntries, Heartbeat)):
                self._heard_from_leader(message)
            elif isinstance(message, (AppendEntriesResponse, HeartbeatResponse)):
                self._note_answer(message)
                if (
                    isinstance(message, AppendEntriesResponse)
                    and message.success
                    and message.index > 0
                    and message.src not in self.kv.started
                    and self.is_leader
                ):
                    self._record_started(message.src)
        if not self.core.has_ready():
            # Nothing to do (a heartbeat's answer, most of the time): no
            # task needs waking, only the ticker's plan may change.
            self._ticks.reschedule(*self._deadlines())
        elif self._ticker_turn:
            pass  # read by the ticker, which takes the Ready at the end of its turn
        elif self.is_leader or self._transport is None:
            # A leader's pump batches what clients propose meanwhile; a
            # node not running yet sends nothing.
            self.wake()
        else:
            # A follower's answers that go at once (a heartbeat's, most of
            # the time) leave from here, without a turn of the ready loop,
            # which gets the Ready only if it holds more.
            self._take_ready()
            self._ticks.reschedule(*self._deadlines())

    def _heard_from_leader(self, message: AppendEntries | Heartbeat) -> None:
        """Remember the leader's commit index and when it spoke (``/readyz``).
        AppendEntries carry its commit index; a heartbeat carries at most
        what the follower holds, so the largest heard in the term counts."""
        core = self.core
        if message.term != core.term or message.src != core.leader_id:
            return
        heard = (message.term, message.src)
        if self._leader_heard != heard:
            self._leader_heard = heard
            self._leader_commit = 0
        self._leader_commit = max(self._leader_commit, message.commit)
        self._leader_heard_at = trio.current_time()
        if self._held_for_leader:
            self._tell_leader_news()

    def begin_stop(self) -> None:
        """The process was told to stop: report not ready, take no new writes."""
        self.stopping = True
        self._tell_leader_news()  # a request held for a quiet leader is answered now

    def _tell_leader_news(self) -> None:
        self._leader_news.set()
        self._leader_news = trio.Event()

    async def drain(self, timeout: float) -> bool:  # noqa: ASYNC109 (the answer says whether it drained)
        """Wait (at most ``timeout`` seconds) until no client request waits
        on this node, so that the writes it took get their answers before it
        stops: after a hand-over they commit under the new leader within a
        round trip or two. True if none is left."""
        with trio.move_on_after(timeout):
            await self._clients.idle.wait()
        return self._clients.count == 0

    async def _await_transfer(self) -> None:
        """Wait, at most the core's transfer timeout, until a leadership
        transfer this leader started has ended: another node leads (a write
        then gets a 307 to it instead of a 503), or it was abandoned."""
        with trio.move_on_after(self.timing.election_min_ms / 1000):
            while self.handing_over or (not self.is_leader and self.leader_id is None):
                await self._leader_news.wait()

    def _require_leader(self) -> None:
        if not self.core.is_leader:
            raise NotLeaderError(self.core.leader_id, self.leader_url())

    async def require_leadership(self) -> None:
        """Return if this node leads; else raise :class:`NotLeaderError`
        naming the leader to send the client to, once it is worth sending
        it there (:meth:`_hold_while_leader_quiet`). Every client request
        that only the leader serves starts here."""
        if not self.core.is_leader:
            await self._hold_while_leader_quiet()
            self._require_leader()

    def _leader_quiet(self) -> bool:
        """This follower knows a leader, heard from it in this term, and has
        heard nothing since for :attr:`Timing.quiet_leader_s`. Not on a node
        outside its configuration: a removed member the leader released
        hears from it no more and never campaigns, so no news would come.
        Nor once twice the upper election timeout has passed without news:
        a member that may not campaign (a learner, one whose log lacks a
        commit it heard of) and is cut off from a leader that the others
        still follow would wait each time for nothing."""
        core = self.core
        leader = core.leader_id
        if leader is None or self._leader_heard != (core.term, leader):
            return False
        quiet_for = trio.current_time() - self._leader_heard_at
        return (
            self.timing.quiet_leader_s <= quiet_for < self._no_news_after_s
            and self.membership.get(self.id) is not None
        )

    @property
    def _no_news_after_s(self) -> float:
        """Quiet for this long, a leader is past waiting for: any election
        that could end the silence would have ended it."""
        return 2 * self.timing.election_max_ms / 1000

    async def _hold_while_leader_quiet(self) -> None:
        """Before a follower sends a client to its leader: if that leader
        has gone quiet (paused, crashed behind a port that still accepts,
        cut off), wait for news, at most the upper election timeout: it
        speaks again, or another leader is elected, or this node is. A
        redirect to a quiet leader would hold the client there until its
        own timeout, past the election that ends the outage (Consul's
        servers hold requests through an election, ``rpc_hold_timeout``).
        A follower with no leader known still answers at once (503), and
        one that is stopping does not hold."""
        if self.core.is_leader or self.stopping or not self._leader_quiet():
            return
        self._held_for_leader += 1
        try:
            with trio.move_on_after(self.timing.election_max_ms / 1000):
                while not (self.core.is_leader or self.stopping) and (
                    self.core.leader_id is None or self._leader_quiet()
                ):
                    await self._leader_news.wait()
        finally:
            self._held_for_leader -= 1

    async def write(self, command: Command) -> Result:
        """Replicate ``command`` and return its result once applied."""
        with self._clients:
            await self.require_leadership()
            remembered = self.kv.remembered(command)
            if remembered is not None:
                return remembered
            if self.stopping and not self.handing_over:
                raise Unavailable("the node is stopping")
            new_bytes = _new_value_bytes(command)
            if self.space is not None and new_bytes is not None:
                refusal = self.space.refusal(new_bytes)
                disk_watch.tell_if_changed(self, self.space)  # it measured
                if refusal is not None:
                    metrics.WRITES_REFUSED_NOSPACE.inc()
                    raise InsufficientStorage(refusal)
            index = await self._propose_waiting_out_a_transfer(encode_command(_with_timestamp(command)))
            metrics.PROPOSALS.inc()
            waiter = self._writes.add(index, self.term)
            self.wake()
            result: Result = await self._writes.wait(waiter)
            return result

    async def _propose_waiting_out_a_transfer(self, data: bytes) -> int:
        """Propose ``data`` for a client; its index. Refused while a
        leadership transfer is under way: that ends within a round trip or
        two, and the client is better sent to the new leader (or, if the
        transfer failed, this node proposes it after all)."""
        try:
            return self._propose(data)
        except ProposalDropped as error:
            if not self.handing_over:
                raise Unavailable(str(error)) from error
        await self._await_transfer()
        self._require_leader()
        try:
            return self._propose(data)
        except ProposalDropped as again:
            raise Unavailable(str(again)) from again

    async def _write_own(self, command: LeaseCheckpoint) -> None:
        """Replicate a record of the leader's own and return once it is
        applied (as :meth:`write`, without a client's checks)."""
        with self._clients:
            index = await self._propose_waiting_out_a_transfer(encode_command(command))
            waiter = self._writes.add(index, self.term)
            self.wake()
            await self._writes.wait(waiter)
            self._require_leader()

    def _no_longer_leading(self, error: NotLeader) -> NotLeaderError:
        """The error for a call the core refused as not leader. The ticks
        the call caught up first may have stepped the leader down (its
        check-quorum round): the node wakes to announce that now, not at
        the ticker's next turn."""
        self.wake()
        return NotLeaderError(error.leader_id, self.leader_url())

    def _propose(self, data: bytes) -> int:
        self._ticks.catch_up()
        try:
            return self.core.propose(data)
        except NotLeader as error:
            raise self._no_longer_leading(error) from error

    async def linearizable_barrier(self) -> None:
        """Return once this node, as leader, has confirmed its leadership
        with a quorum and applied everything committed before the call
        (ReadIndex, §6.4)."""
        with self._clients:
            await self.require_leadership()
            request_id, waiter = self._reads.add()
            self._ticks.catch_up()
            try:
                self.core.read_index(request_id)
            except NotLeader as error:
                self._reads.drop(request_id)
                raise self._no_longer_leading(error) from error
            self.wake()
            await self._reads.wait(waiter)

    # -- backups ---------------------------------------------------------

    async def backup(self) -> Snapshot:
        """The state machine's snapshot at a linearizable point: after a
        ReadIndex round, everything committed before the call is in it."""
        await self.linearizable_barrier()
        self._require_leader()
        applied = self.kv.applied_index
        return Snapshot(self.core.snapshot_meta(applied), self.kv.snapshot())

    # -- leases ----------------------------------------------------------

    @property
    def minimum_lease_ttl(self) -> int:
        return minimum_ttl(self.timing.election_max_ms)

    async def grant_lease(self, ttl: int, token: str | None = None) -> LeaseGranted:
        """A new lease of ``ttl`` seconds (at least ``minimum_lease_ttl``)."""
        result = await self.write(LeaseGrant(max(ttl, self.minimum_lease_ttl), token=token))
        assert isinstance(result, LeaseGranted)
        return result

    async def revoke_lease(self, lease: int, token: str | None = None) -> LeaseRevoked:
        result = await self.write(LeaseRevoke(lease, token=token))
        assert isinstance(result, LeaseRevoked)
        return result

    async def keep_lease_alive(self, lease: int, check: Callable[[list[str]], None] | None = None) -> int:
        """Extend a lease to its full TTL; its TTL. Answered only once a
        quorum confirmed this node leads (see leases.py: never early).
        ``check`` is given the lease's keys after that barrier, before
        anything is extended, and raises to refuse: who may keep a lease
        alive is decided on the state the barrier reached (a permission
        revoked meanwhile counts), as for a read."""
        await self.linearizable_barrier()
        self._require_leader()
        if check is not None:
            held = self.kv.leases.get(lease)
            check(sorted(held.keys) if held is not None else [])
        ttl = self.leases.keep_alive(lease, trio.current_time())
        if ttl is None:
            raise LeaseMissing(f"lease {lease:016x} not found (expired or revoked)")
        while self.leases.recorded(lease):
            # A time left recorded before now would shorten the next
            # leader's deadline below this one: cleared first (leases.py).
            await self._write_own(LeaseCheckpoint([(lease, 0)]))
        return ttl

    async def lease_info(self, lease: int) -> LeaseInfo:
        await self.linearizable_barrier()
        self._require_leader()
        held = self.kv.leases.get(lease)
        remaining = self.leases.remaining(lease, trio.current_time())
        if held is None or remaining is None:
            raise LeaseMissing(f"lease {lease:016x} not found (expired or revoked)")
        return LeaseInfo(lease, remaining, held.ttl, sorted(held.keys))

    async def change_membership(self, change: ConfChange) -> int:
        with self._clients:
            self._require_leader()
            self._ticks.catch_up()
            if isinstance(change, RemoveMember) and (refused := self._removal_refusal(change.id)):
                raise ConfigChangeRejected(refused)
            try:
                index = self.core.change_membership(change)
            except NotLeader as error:
                raise self._no_longer_leading(error) from error
            except ProposalDropped as error:
                raise Unavailable(str(error)) from error
            waiter = self._writes.add(index, self.term)
            self.wake()
            await self._writes.wait(waiter)
            return index

    def _removal_refusal(self, node_id: str) -> str | None:
        """Why removing ``node_id`` would stall the cluster (None: it would
        not), as etcd's strict reconfiguration check: the voters left must
        hold a quorum among those that answered this leader within the
        minimum election timeout. Otherwise the removal cannot commit, the
        leader steps down at check-quorum, and the live voters (a majority
        of the configuration before) have no leader until more come back."""
        core = self.core.status()
        remaining = core.membership.voters - {node_id}
        if node_id not in core.membership.voters or not remaining:
            return None  # a learner's removal changes no quorum; the last voter's is refused by the core
        if core.commit_term != core.term:
            # Just elected: the core refuses any change until its term's
            # first commit, and says so.
            return None
        now = trio.current_time()
        window = self.timing.election_min_ms / 1000
        answering = {self.id} | {
            peer for peer, (term, at) in self._answered_at.items() if term == core.term and now - at < window
        }
        live = len(remaining & answering)
        if 2 * live > len(remaining):
            return None
        return (
            f"removing {node_id} would leave {live} of the {len(remaining)} remaining voters answering, "
            f"fewer than the {len(remaining) // 2 + 1} a quorum needs: the removal could not commit and "
            "the cluster would have no leader until more voters come back; bring them back (or remove "
            "the members that are down) first"
        )

    async def transfer_leadership(self, to: str | None) -> str:
        self._require_leader()
        self._ticks.catch_up()
        try:
            target = self.core.transfer_leadership(to)
        except NotLeader as error:
            raise self._no_longer_leading(error) from error
        self.wake()
        with trio.move_on_after(self.write_timeout):
            while self.leader_id != target:
                await self._leader_news.wait()
        return target


def _is_short_write(ready: Ready) -> bool:
    """Whether a Ready's write is short (SHORT_WRITE_ENTRIES)."""
    entries = ready.entries
    return (
        ready.snapshot is None
        and len(entries) <= SHORT_WRITE_ENTRIES
        and sum(len(entry.data) for entry in entries) <= SHORT_WRITE_BYTES
    )


def _new_value_bytes(command: Command) -> int | None:
    """The bytes of keys and values a command would add to the state (a
    put, or a transaction with one), or None for one that adds none
    (deletes, leases, read-only transactions): those stay allowed while
    space is short, since they give space back or take next to none."""
    if isinstance(command, Put):
        return len(command.key) + len(command.value)
    if isinstance(command, Txn):
        puts = [op for op in (*command.success, *command.failure) if isinstance(op, OpPut)]
        return sum(len(op.key) + len(op.value) for op in puts) if puts else None
    return None


def _with_timestamp(command: Command) -> Command:
    """Stamp the leader's clock into the command: the only time the state
    machine sees, so that idempotency keys expire the same on every replica."""
    return msgspec.structs.replace(command, ts=int(time.time() * 1000))


__all__ = [
    "InsufficientStorage",
    "LeaseInfo",
    "LeaseMissing",
    "NodeEvent",
    "NotLeaderError",
    "RaftNode",
    "Timing",
    "Unavailable",
    "WriteIndeterminate",
]
