"""A whole cluster of sans-IO cores, stepped from a plain seeded loop.

Nothing here uses Trio: Trio's scheduler is randomized on purpose, so a
reproducible simulation drives the cores itself. One ``random.Random`` seeded
from the run's seed decides everything (timeouts, message fates, faults,
client actions); the same seed replays the same run exactly.

The network delays, drops, duplicates and reorders messages, and can
partition nodes (both ways or one way). Nodes can crash (losing everything
not persisted, and sometimes the messages of a Ready they persisted but did
not send), restart, and pause (a paused node neither ticks nor receives;
what is sent to it waits, as in a TCP buffer, and arrives late). A
follower hears, as a runtime's streams tell it, that its leader's address
refuses connections: mostly when the leader crashed, sometimes across a
partition, and now and then falsely, of a live leader it can reach.

Checks run as the simulation goes (:class:`SafetyViolation` on the first
failure): election safety, leader completeness, state machine safety,
the leader lease (no campaign started, no vote given, inside it),
linearizable reads, and log matching over every pair of nodes at the end.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import heapq
import random
from collections.abc import Callable, Sequence

from raft_trio.core import (
    AddLearner,
    AppendEntries,
    CompactedError,
    ConfigChangeRejected,
    Entry,
    EntryKind,
    Heartbeat,
    InstallSnapshot,
    Member,
    Membership,
    MemoryStorage,
    Message,
    NotLeader,
    ProposalDropped,
    RaftConfig,
    RaftCore,
    RaftError,
    Ready,
    RemoveMember,
    RequestVote,
    RequestVoteResponse,
    Role,
    Snapshot,
    SnapshotMeta,
    TimeoutNow,
)
from raft_trio.testing.memory import finish_ready, persist, take_ready

CoreFactory = Callable[[str, MemoryStorage, RaftConfig, random.Random], RaftCore]
#: What a leader may send before its Ready's fsync, once its term is durable.
_LEADERS_MESSAGES = (AppendEntries, Heartbeat, InstallSnapshot, TimeoutNow)


class SafetyViolation(AssertionError):
    """A Raft safety property failed."""


@dataclasses.dataclass
class FaultProfile:
    drop_rate: float = 0.02
    duplicate_rate: float = 0.02
    max_delay: int = 3
    #: Per tick, the chance that the fault scheduler changes something.
    fault_rate: float = 0.01
    crash: bool = True
    pause: bool = True
    partition: bool = True
    membership: bool = True
    #: Membership changes are mostly a member removed, stopped and added
    #: again under its id with its disk wiped (``add_wiped_again``).
    wiped_readds: bool = False
    transfer: bool = True
    compaction: bool = True
    #: Followers are told that their leader's address refuses connections
    #: (``report_refused``), truly or falsely.
    refusals: bool = True
    #: Each turn a Ready waits for its fsync, the chance that its node
    #: crashes then (with ``crash``): the messages that left at once are
    #: out, the Ready's writes are lost. Drawn apart from the schedule, so
    #: a seed replays the schedule it had without it.
    crash_in_flight: float = 0.0
    #: Each turn a Ready waits for its fsync, the chance that it is done
    #: (a slow disk: lower).
    fsync_done: float = 0.5


def _digest(previous: bytes, entry: Entry) -> bytes:
    return hashlib.blake2b(previous + entry.data, digest_size=8).digest()


class SimNode:
    """One server: its core, its 'disk' (MemoryStorage) and its state
    machine, a hash chain over the commands it applied."""

    def __init__(self, node_id: str, storage: MemoryStorage, cluster: Cluster) -> None:
        self.id = node_id
        self.storage = storage
        self.cluster = cluster
        self.alive = True
        self.paused = False
        #: Messages that reached this node while it was paused.
        self.held: list[tuple[int, int, Message]] = []
        #: A Ready taken and not yet persisted (its fsync is "running").
        self.in_flight: Ready | None = None
        #: Ticks this process has counted, and the count when it last took
        #: a message from the leader it follows (the lease check).
        self.ticks = 0
        self.heard_leader_at = -(10**9)
        self.core = cluster.make_core(node_id, storage)
        self._restore_state_machine()

    def _restore_state_machine(self) -> None:
        snap = self.storage.snapshot()
        self.applied_index = snap.meta.index
        self.state = snap.data or b""

    def restart(self) -> None:
        self.alive = True
        self.paused = False
        self.heard_leader_at = -(10**9)  # a new process has heard nothing
        self.held.clear()
        self.in_flight = None  # lost with the process: it was not durable
        self.core = self.cluster.make_core(self.id, self.storage)
        self._restore_state_machine()

    def snapshot_data(self) -> bytes:
        return self.state


@dataclasses.dataclass
class Proposal:
    node: str
    index: int
    term: int
    data: bytes
    invoked_at: int
    acked_at: int | None = None


@dataclasses.dataclass
class PendingRead:
    node: str
    term: int
    invoked_at: int
    index: int | None = None


class Cluster:
    def __init__(
        self,
        seed: int,
        size: int = 3,
        config: RaftConfig | None = None,
        faults: FaultProfile | None = None,
        core_factory: CoreFactory = RaftCore,
        voters: int | None = None,
    ) -> None:
        """``size`` nodes, the first ``voters`` of them voters (all if
        None) and the others learners."""
        self.seed = seed
        self.rng = random.Random(seed)
        self.config = config or RaftConfig(
            election_ticks_min=10,
            election_ticks_max=20,
            heartbeat_ticks=2,
            max_inflight=self.rng.choice([1, 4, 64]),
            max_append_entries=self.rng.choice([1, 3, 100]),
            max_uncommitted_entries=100,
            # Half the seeds run the runtime's setting; from the seed, not
            # the rng, so that older seeds replay the same schedule.
            lazy_commit_broadcast=seed % 2 == 1,
        )
        # A copy: stabilize() turns faults off, which must not carry over
        # to the next cluster given the same profile (a seed replays alone).
        self.faults = dataclasses.replace(faults) if faults is not None else FaultProfile()
        self.core_factory = core_factory
        #: Decides the refusal reports, apart from ``rng``, so that the rest
        #: of a seed's schedule is the one it had before there were any.
        self.refusal_rng = random.Random(f"refusals-{seed}")
        self.crash_rng = random.Random(f"crash-in-flight-{seed}")
        self.now = 0
        self._sequence = 0
        self._next_id = size
        self._in_flight: list[tuple[int, int, Message]] = []
        #: Directed links that drop everything: (src, dst).
        self.blocked: set[tuple[str, str]] = set()

        ids = [f"n{i}" for i in range(size)]
        voting = size if voters is None else voters
        membership = Membership.of([Member(i, f"sim://{i}", voter=n < voting) for n, i in enumerate(ids)])
        self.nodes: dict[str, SimNode] = {}
        for node_id in ids:
            storage = MemoryStorage(Snapshot(SnapshotMeta(0, 0, membership)))
            self.nodes[node_id] = SimNode(node_id, storage, self)

        # What the checks remember.
        self.leaders_by_term: dict[int, str] = {}
        self.applied_entries: dict[int, tuple[int, bytes]] = {}  # index -> (term, data)
        self.state_at: dict[int, bytes] = {0: b""}  # applied index -> state digest
        self.commit_term: dict[int, int] = {}  # applied index -> term it was committed in (at most)
        self.proposals: dict[tuple[str, int, int], Proposal] = {}
        self.acked: list[Proposal] = []
        self._ack_times: list[int] = []  # when each acked write was acked, in order
        self._ack_max_index: list[int] = []  # highest acked index up to then
        self.reads: dict[int, PendingRead] = {}
        self.reads_served = 0
        self._next_read = 0
        self.events: list[str] = []
        #: (index, term) -> (kind, data) of every entry written to any disk.
        self.written: dict[tuple[int, int], tuple[EntryKind, bytes]] = {}

    # ------------------------------------------------------------------
    # Plumbing

    def make_core(self, node_id: str, storage: MemoryStorage) -> RaftCore:
        rng = random.Random(self.rng.getrandbits(64))
        return self.core_factory(node_id, storage, self.config, rng)

    def fail(self, what: str) -> SafetyViolation:
        tail = "\n".join(self.events[-30:])
        return SafetyViolation(f"seed {self.seed}, tick {self.now}: {what}\nlast events:\n{tail}")

    def log_event(self, text: str) -> None:
        self.events.append(f"[{self.now}] {text}")

    def live_nodes(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.alive]

    def leaders(self) -> list[SimNode]:
        return [n for n in self.live_nodes() if n.core.basic_status().is_leader]

    def send(self, message: Message) -> None:
        sender = self.nodes.get(message.src)
        if (
            isinstance(message, _LEADERS_MESSAGES)
            and sender is not None
            and message.term > sender.storage.hard_state().term
        ):
            # What a leader sends before its fsync must not outrun its
            # durable term (a lone voter elects itself with nothing
            # written; see RaftCore._send).
            raise self.fail(
                f"{message.src} sent {type(message).__name__} of term {message.term} not yet durable"
            )
        if (message.src, message.dst) in self.blocked or message.dst not in self.nodes:
            return
        if self.rng.random() < self.faults.drop_rate:
            return
        copies = 2 if self.rng.random() < self.faults.duplicate_rate else 1
        for _ in range(copies):
            delay = self.rng.randint(0, self.faults.max_delay)
            self._sequence += 1
            heapq.heappush(self._in_flight, (self.now + delay, self._sequence, message))

    def deliver_due(self) -> None:
        while self._in_flight and self._in_flight[0][0] <= self.now:
            entry = heapq.heappop(self._in_flight)
            message = entry[2]
            node = self.nodes.get(message.dst)
            if node is None or not node.alive:
                continue
            if node.paused:
                node.held.append(entry)  # waits in the socket buffer
                continue
            leased = (
                message if isinstance(message, RequestVote) and self.asks_in_lease(node, message) else None
            )
            if leased is None:
                node.core.step(message)
            else:
                answers = self.step_recording(node, message)
                self.check_no_new_vote(node, leased, answers)
            if isinstance(message, (AppendEntries, Heartbeat, InstallSnapshot)):
                status = node.core.basic_status()
                if status.role is Role.FOLLOWER and (status.leader_id, status.term) == (
                    message.src,
                    message.term,
                ):
                    node.heard_leader_at = node.ticks
            self.handle_ready(node)

    def resume(self, node: SimNode) -> None:
        """A paused node runs again; what waited for it arrives late."""
        node.paused = False
        for _, sequence, message in node.held:
            heapq.heappush(
                self._in_flight, (self.now + self.rng.randint(0, self.faults.max_delay), sequence, message)
            )
        node.held.clear()

    def handle_ready(self, node: SimNode) -> None:
        """The runtime's Ready loop (raft_trio.testing.memory's steps), with
        a disk that may be slow: a Ready stays in flight, unpersisted, until
        the node's next turn unless its fsync is done (``fsync_done``, half
        the time by default), and meanwhile the core
        hands out what may go at once (a leader's appends and heartbeats).
        A crash loses a Ready in flight, whose ``messages`` are out."""
        core = node.core
        while node.alive:
            ready = node.in_flight
            if ready is not None:
                if core.has_ready():
                    take_ready(core, self.send)  # messages only, while in flight
                f = self.faults
                if self.rng.random() < 1 - f.fsync_done:
                    if (
                        f.crash
                        and f.crash_in_flight
                        and self.crash_rng.random() < f.crash_in_flight
                        and sum(n.alive for n in self.nodes.values()) > 1
                    ):
                        self.crash(node)  # before the fsync: the Ready is lost
                    return  # the fsync is still running
                node.in_flight = None
                self.check_written(node, ready.entries)
                persist(node.storage, ready)
                if self.faults.crash and self.rng.random() < 0.0005:
                    # Crash after the fsync, before anything else was sent.
                    self.crash(node)
                    return
                finish_ready(core, ready, self.send, lambda r: self._apply_ready(node, r))
                self._serve_reads(node)
                self._maybe_compact(node)
            elif core.has_ready():
                ready = take_ready(core, self.send)
                if not ready.only_messages():
                    node.in_flight = ready
            else:
                return

    def _apply_ready(self, node: SimNode, ready: Ready) -> None:
        if ready.snapshot is not None:
            self._install_snapshot(node, ready.snapshot)
        for entry in ready.committed_entries:
            self._apply(node, entry)
        for read in ready.read_states:
            pending = self.reads.get(read.request_id)
            if pending is not None:
                pending.index = read.index
        for request_id in ready.dropped_reads:
            self.reads.pop(request_id, None)
        if ready.soft_state is not None:
            self._on_soft_state(node)

    # ------------------------------------------------------------------
    # The state machine and the checks

    def _on_soft_state(self, node: SimNode) -> None:
        core = node.core.basic_status()
        if core.role is not Role.LEADER:
            return
        previous = self.leaders_by_term.setdefault(core.term, node.id)
        if previous != node.id:
            raise self.fail(f"election safety: {previous} and {node.id} both lead term {core.term}")
        self.log_event(f"{node.id} leads term {core.term}")
        log = node.storage  # the leader's log, just persisted with this Ready
        # Leader completeness (§3.6): an entry committed in term C is in the
        # log of every leader of a term after C. (A leader of an older term
        # can still appear, from votes that waited in a paused node's
        # buffer; it need not hold what later terms committed.)
        first = log.first_index()
        for index, (term, _) in self.applied_entries.items():
            if self.commit_term[index] >= core.term:
                continue
            if first <= index <= log.last_index() and log.term(index) != term:
                raise self.fail(
                    f"leader completeness: {node.id} leads term {core.term} without entry "
                    f"{index} of term {term}, committed in term {self.commit_term[index]}"
                )
            if index > log.last_index():
                raise self.fail(f"leader completeness: {node.id}'s log ends before committed {index}")

    def _apply(self, node: SimNode, entry: Entry) -> None:
        if entry.index != node.applied_index + 1:
            raise self.fail(f"{node.id} applies {entry.index} after {node.applied_index}")
        known = self.applied_entries.setdefault(entry.index, (entry.term, entry.data))
        # The applier's term bounds the term the entry was committed in
        # from above (the committing leader applies it first, in its term).
        term = node.core.basic_status().term
        committed_in = self.commit_term.get(entry.index, term)
        self.commit_term[entry.index] = min(committed_in, term)
        if known != (entry.term, entry.data):
            raise self.fail(
                f"state machine safety: {node.id} applies {entry.index} as term {entry.term}, "
                f"another node applied term {known[0]}"
            )
        if entry.kind is EntryKind.NORMAL:
            node.state = _digest(node.state, entry)
        node.applied_index = entry.index
        expected = self.state_at.setdefault(entry.index, node.state)
        if expected != node.state:
            raise self.fail(f"state machine safety: {node.id}'s state differs at {entry.index}")
        proposal = self.proposals.pop((node.id, entry.index, entry.term), None)
        if proposal is not None:
            # The proposer applied its own entry at the index and term it
            # was given: the client gets its success answer now.
            proposal.acked_at = self.now
            self.acked.append(proposal)
            self._ack_times.append(self.now)
            self._ack_max_index.append(
                max(entry.index, self._ack_max_index[-1] if self._ack_max_index else 0)
            )

    def _install_snapshot(self, node: SimNode, snapshot: Snapshot) -> None:
        index = snapshot.meta.index
        expected = self.state_at.get(index)
        if expected is not None and expected != snapshot.data:
            raise self.fail(f"{node.id} installs a snapshot at {index} that differs from the applied state")
        self.state_at.setdefault(index, snapshot.data)
        node.state = snapshot.data
        node.applied_index = index

    def _serve_reads(self, node: SimNode) -> None:
        for request_id, read in list(self.reads.items()):
            if read.node != node.id or read.index is None or node.applied_index < read.index:
                continue
            del self.reads[request_id]
            # Linearizability: every write acknowledged before the read was
            # invoked must be visible in the state the read returns.
            before = bisect.bisect_left(self._ack_times, read.invoked_at)
            if before and self._ack_max_index[before - 1] > node.applied_index:
                raise self.fail(
                    f"stale read on {node.id}: write {self._ack_max_index[before - 1]} was acked "
                    f"before the read was invoked at {read.invoked_at}, state is at {node.applied_index}"
                )
            self.reads_served += 1

    def _maybe_compact(self, node: SimNode) -> None:
        if not self.faults.compaction:
            return
        applied = node.applied_index
        if applied - node.storage.first_index() < 20 or self.rng.random() < 0.5:
            return
        if node.core.basic_status().applied != applied:
            return
        try:
            meta = node.core.snapshot_meta(applied)
        except CompactedError:
            return  # a leader's snapshot, received meanwhile, replaced the log there
        node.storage.compact(Snapshot(meta, node.snapshot_data()))

    def check_acknowledged_writes(self) -> None:
        """Every acknowledged write is the entry applied at its index (and
        so, by the apply-time checks, on every node that applied that far)."""
        for proposal in self.acked:
            applied = self.applied_entries.get(proposal.index)
            if applied != (proposal.term, proposal.data):
                raise self.fail(f"acknowledged write at {proposal.index} was lost")

    def check_written(self, node: SimNode, entries: Sequence[Entry]) -> None:
        """Log Matching as each entry reaches a disk: no two entries ever
        written with the same index and term differ. Caught here, not only
        on the final disks, which a snapshot may have replaced since."""
        for entry in entries:
            key = (entry.index, entry.term)
            written = self.written.setdefault(key, (entry.kind, entry.data))
            if written != (entry.kind, entry.data):
                raise self.fail(f"log matching: {node.id} writes entry {key} unlike another disk's")

    def check_log_matching(self) -> None:
        """§3.5 Log Matching: two logs holding an entry with the same index
        and term are identical up to it (the logs on the nodes' disks)."""
        nodes = self.live_nodes()
        for a_pos, a in enumerate(nodes):
            for b in nodes[a_pos + 1 :]:
                left_log, right_log = a.storage, b.storage
                lo = max(left_log.first_index(), right_log.first_index())
                hi = min(left_log.last_index(), right_log.last_index())
                agreed = 0
                for index in range(hi, lo - 1, -1):
                    if left_log.term(index) == right_log.term(index):
                        agreed = index
                        break
                if agreed >= lo:
                    left = left_log.entries(lo, agreed + 1)
                    right = right_log.entries(lo, agreed + 1)
                    if left != right:
                        raise self.fail(f"log matching: {a.id} and {b.id} differ before {agreed}")

    # ------------------------------------------------------------------
    # Faults and clients

    def crash(self, node: SimNode) -> None:
        self.log_event(f"crash {node.id}")
        node.alive = False
        for request_id in [r for r, read in self.reads.items() if read.node == node.id]:
            del self.reads[request_id]
        for key in [k for k in self.proposals if k[0] == node.id]:
            del self.proposals[key]

    def restart(self, node: SimNode) -> None:
        self.log_event(f"restart {node.id}")
        node.restart()

    def partition(self, group: set[str], one_way: bool = False) -> None:
        others = set(self.nodes) - group
        for a in group:
            for b in others:
                self.blocked.add((a, b))
                if not one_way:
                    self.blocked.add((b, a))
        self.log_event(f"partition {sorted(group)} {'one-way' if one_way else ''}")

    def heal(self) -> None:
        self.blocked.clear()
        for node in self.nodes.values():
            if not node.alive:
                self.restart(node)
            elif node.paused:
                self.resume(node)
        self.log_event("heal")

    def propose(self, node: SimNode) -> None:
        data = self.rng.randbytes(8)
        try:
            index = node.core.propose(data)
        except (NotLeader, ProposalDropped):
            return
        term = node.core.basic_status().term
        self.proposals[(node.id, index, term)] = Proposal(node.id, index, term, data, self.now)

    def read(self, node: SimNode) -> None:
        self._next_read += 1
        try:
            node.core.read_index(self._next_read)
        except NotLeader:
            return
        self.reads[self._next_read] = PendingRead(node.id, node.core.basic_status().term, self.now)

    def add_node(self, leader: SimNode) -> None:
        node_id = f"n{self._next_id}"
        try:
            leader.core.change_membership(AddLearner(node_id, f"sim://{node_id}"))
        except (ConfigChangeRejected, ProposalDropped):
            return
        self._next_id += 1
        self.nodes[node_id] = SimNode(node_id, MemoryStorage(), self)
        self.log_event(f"add learner {node_id}")

    def add_wiped_again(self, leader: SimNode) -> None:
        """The way back for a member whose disk broke: removed, stopped,
        its directory moved aside, added again under its id with nothing
        on its disk. Removed members that never learnt of their removal
        may still count the new server as its old self; what the old one
        sent may still be on its way (a paused leader reads it late), and
        what was sent to it may reach the new one (a leader's stream keeps
        its outbox across a reconnection to the same URL)."""
        members = leader.core.basic_status().membership.ids
        removed = [node for node_id, node in sorted(self.nodes.items()) if node_id not in members]
        running = [node for node in removed if node.alive]
        if running:
            self.crash(self.rng.choice(running))  # first the old process stops
            return
        if not removed:
            return
        node = self.rng.choice(removed)
        try:
            leader.core.change_membership(AddLearner(node.id, f"sim://{node.id}"))
        except (ConfigChangeRejected, ProposalDropped):
            return
        node.storage = MemoryStorage()
        node.restart()
        self.log_event(f"add {node.id} again, its disk wiped")

    def remove_node(self, leader: SimNode) -> None:
        voters = sorted(leader.core.basic_status().membership.voters)
        if len(voters) <= 3:
            return
        victim = self.rng.choice(voters)
        try:
            leader.core.change_membership(RemoveMember(victim))
        except (ConfigChangeRejected, ProposalDropped):
            return
        self.log_event(f"remove {victim}")

    def check_lease(self, node: SimNode, was_following: bool) -> None:
        """A follower never starts a campaign on its own (a tick, a report)
        within the minimum election timeout of its last message from its
        leader: that is the lease it promised the leader (§4.2.3), on
        which check-quorum rests (a transfer's TimeoutNow, which overrides
        it, comes as a message and is not checked here; votes granted
        inside the lease are not checked here either)."""
        if not was_following or node.core.basic_status().role is Role.FOLLOWER:
            return
        if self.inside_lease(node):
            silent = node.ticks - node.heard_leader_at
            raise self.fail(
                f"leader lease: {node.id} campaigned {silent} ticks after it last heard its leader "
                f"(the lease is {self.config.election_ticks_min})"
            )

    def asks_in_lease(self, node: SimNode, request: RequestVote) -> bool:
        """Whether ``request`` asks ``node`` for a vote of a later term (not
        a transfer's) while it follows a leader it heard within the
        minimum election timeout (its own ticks): the lease (§4.2.3)."""
        status = node.core.basic_status()
        return (
            not request.transfer
            and request.term > status.term
            and status.role is Role.FOLLOWER
            and status.leader_id is not None
            and self.inside_lease(node)
        )

    def inside_lease(self, node: SimNode) -> bool:
        """Whether ``node`` heard its leader within the minimum election
        timeout (its own ticks)."""
        return node.ticks - node.heard_leader_at < self.config.election_ticks_min

    @staticmethod
    def step_recording(node: SimNode, message: Message) -> list[Message]:
        """Step ``message`` into ``node``'s core; the messages that step
        produced, whether they leave at once or after a persist (the
        core's ``_send``, seen for this one step)."""
        core = node.core
        produced: list[Message] = []
        send = core._send

        def recording(out: Message) -> None:
            produced.append(out)
            send(out)

        core._send = recording  # type: ignore[method-assign, assignment]
        try:
            core.step(message)
        finally:
            del core._send
        return produced

    def check_no_new_vote(self, node: SimNode, request: RequestVote, answers: list[Message]) -> None:
        """A follower asked inside its lease gave no vote: seen as the state
        a vote changes, and for a pre-vote (which changes none) as a granted
        answer among the messages the request's step produced."""
        status = node.core.basic_status()
        if (status.term, status.vote) == (request.term, request.src):
            raise self.fail(
                f"leader lease: {node.id} voted for {request.src} in term {request.term} inside its lease"
            )
        for answer in answers:
            if isinstance(answer, RequestVoteResponse) and answer.granted:
                kind = "pre-vote" if answer.pre_vote else "vote"
                raise self.fail(
                    f"leader lease: {node.id} granted {request.src} a {kind} for term {request.term} inside its lease"
                )

    def report_refusals(self) -> None:
        """What a runtime's streams tell followers about their leader's
        address: a crashed leader's refuses (a stream retries it every few
        ticks); a cut link may (a proxy that closed its port); a live,
        reachable leader's rarely does (a port that refused one follower
        once), which must cost no more than one early pre-vote."""
        rng = self.refusal_rng
        for node in self.live_nodes():
            if node.paused:
                continue
            leader = node.core.basic_status().leader_id
            if leader is None or leader == node.id:
                continue
            target = self.nodes.get(leader)
            if target is None or not target.alive:
                chance = 0.3
            elif (node.id, leader) in self.blocked:
                chance = 0.1
            else:
                chance = 0.002
            if rng.random() < chance:
                self.log_event(f"{node.id} told {leader} refuses")
                was_following = node.core.basic_status().role is Role.FOLLOWER
                node.core.report_refused(leader)
                self.check_lease(node, was_following)

    def _random_fault(self) -> None:
        f = self.faults
        nodes = sorted(self.nodes)
        choice = self.rng.random()
        leaders = self.leaders()
        # Faults hit the leader more often than chance would (as Jepsen's
        # nemeses do): that is where the interesting bugs are.
        node = leaders[0] if leaders and self.rng.random() < 0.3 else self.nodes[self.rng.choice(nodes)]
        if choice < 0.2 and f.crash:
            if node.alive and sum(n.alive for n in self.nodes.values()) > 1:
                self.crash(node)
            elif not node.alive:
                self.restart(node)
        elif choice < 0.35 and f.pause:
            if node.paused:
                self.resume(node)
                self.log_event(f"resume {node.id}")
            else:
                node.paused = True
                self.log_event(f"pause {node.id}")
        elif choice < 0.55 and f.partition:
            if self.blocked:
                self.blocked.clear()
                self.log_event("partition healed")
            else:
                group = set(self.rng.sample(nodes, self.rng.randint(1, len(nodes) // 2)))
                self.partition(group, one_way=self.rng.random() < 0.3)
        elif choice < 0.7 and f.membership and leaders:
            roll = self.rng.random()
            if f.wiped_readds:
                if roll < 0.6:
                    self.add_wiped_again(leaders[0])
                else:
                    self.remove_node(leaders[0])
            elif roll < 0.5 and len(self.nodes) < 7:
                self.add_node(leaders[0])
            else:
                self.remove_node(leaders[0])
        elif choice < 0.85 and f.transfer and leaders:
            try:
                leaders[0].core.transfer_leadership(None)
                self.log_event(f"transfer from {leaders[0].id}")
            except RaftError:
                pass
        else:
            self.heal()

    # ------------------------------------------------------------------
    # Running

    def tick(self, faults: bool = True, clients: bool = True) -> None:
        self.now += 1
        for node in self.nodes.values():
            if node.alive and not node.paused:
                was_following = node.core.basic_status().role is Role.FOLLOWER
                node.ticks += 1
                node.core.tick()
                self.check_lease(node, was_following)
                self.handle_ready(node)
        if self.faults.refusals:
            self.report_refusals()
        self.deliver_due()
        if clients:
            for leader in self.leaders():
                if leader.paused:
                    continue
                if self.rng.random() < 0.5:
                    for _ in range(self.rng.randint(1, 3)):
                        self.propose(leader)
                if self.rng.random() < 0.2:
                    self.read(leader)
                self.handle_ready(leader)
        if faults and self.rng.random() < self.faults.fault_rate:
            self._random_fault()

    def run(self, ticks: int, faults: bool = True) -> None:
        for _ in range(ticks):
            self.tick(faults=faults)

    def stabilize(self, max_ticks: int = 1000) -> int:
        """Heal everything, then run until one leader commits a fresh entry
        that every member of its configuration has applied. Returns the
        ticks it took; raises if it does not happen within ``max_ticks``
        (liveness)."""
        self.faults.crash = False
        self.heal()
        self.faults.drop_rate = 0.0
        self.faults.duplicate_rate = 0.0
        start = self.now
        marker: tuple[str, int] | None = None
        while self.now - start < max_ticks:
            self.tick(faults=False, clients=False)
            leaders = self.leaders()
            if len(leaders) != 1:
                marker = None
                continue
            leader = leaders[0]
            if marker is None or marker[0] != leader.id:
                try:
                    marker = (leader.id, leader.core.propose(b"marker"))
                except (NotLeader, ProposalDropped):
                    continue
            members = leader.core.basic_status().membership.ids
            if all(self.nodes[m].applied_index >= marker[1] for m in members if m in self.nodes) and all(
                m in self.nodes for m in members
            ):
                self.check_log_matching()
                self.check_acknowledged_writes()
                return self.now - start
        raise self.fail(f"no progress within {max_ticks} ticks after healing")
