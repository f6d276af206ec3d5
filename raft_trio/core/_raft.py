"""The Raft protocol as a deterministic state machine (etcd's ``raft.go``).

Every input the core takes is a method named in :data:`INPUTS`, and its
only output is the Ready (``ready()``; ``_ready.py`` says how to handle
one). ``status()`` reports its state as a frozen value; nothing else of it
is public (tests/core/test_ready.py holds the class to that).

Same inputs, same outputs: the core reads no clock, touches no disk or
socket, and draws its randomness only from the ``random.Random`` it is given.

``step`` applies the term rules once for every message and every role
(Figure 3.1, "all servers"; pre-vote §9.6; leader leases §4.2.3), then hands
the message to the handler for the node's role.

Safety rules and where they live:
- a vote is granted only to a candidate whose log is at least as
  up-to-date (§3.6.1): ``_handle_request_vote``;
- a leader counts itself towards a quorum only for entries it has made
  durable (``advance``), and commits by counting replicas only entries of
  its own term (§3.6.2, Figure 3.7): ``_maybe_commit``;
- configurations take effect when appended (§4.1), one change at a time,
  and only after the leader committed an entry of its term (the 2015
  single-server change fix): ``change_membership``;
- a leader that removes itself takes no proposal until the removal
  commits, then hands over and steps down (§4.2.2, §3.10):
  ``_step_down_removed``.
"""

from __future__ import annotations

import random

from ._config import RaftConfig
from ._errors import ConfigChangeRejected, NotLeader, ProposalDropped, RaftError
from ._log import RaftLog
from ._membership import ConfChange, PromoteLearner, apply_change
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
)
from ._progress import Progress, ProgressState
from ._quorum import VoteResult, committed_index, has_quorum, vote_result
from ._ready import ReadState, Ready, Role, SoftState
from ._status import BasicStatus, ProgressStatus, Status
from ._storage import CompactedError, LogStorage
from ._types import Entry, EntryKind, HardState, Membership, NodeId, Snapshot, SnapshotMeta

#: Every input the core takes, each a method of :class:`RaftCore`:
INPUTS = (
    # from the clock (``ticks_until_due()`` says when the next one matters)
    "tick",
    # from peers
    "step",
    # from clients
    "propose",
    "read_index",
    "change_membership",
    "transfer_leadership",
    # from the runtime's own observations: a peer's stream broke, a peer's
    # address refused a connection, a snapshot was sent (or not), the disk
    # stalled past an election timeout, the cluster's term read by a node
    # that asks to join
    "report_unreachable",
    "report_refused",
    "report_snapshot",
    "step_down",
    "observe_term",
    # the runtime handled a Ready
    "advance",
)
#: The core's one output.
OUTPUT = "ready"
#: What may be asked without changing anything.
QUERIES = (
    "has_ready",
    "basic_status",
    "is_leader",
    "term",
    "leader_id",
    "status",
    "ticks_until_due",
    "awaits_answers",
    "heartbeat_round",
    "snapshot_meta",
    "id",
    "config",
    "durable_commit",
)

_LEADER_MESSAGES = (AppendEntries, Heartbeat, InstallSnapshot)

#: The commit index alone rides along with a Ready's entries at most this
#: often (ticks: 100 ms at the default 10 ms tick). It is volatile state
#: (Figure 3.1): what is recorded only lets a restarted node apply that far
#: before it hears a leader, and recovery hold the log to it, so a record
#: up to 100 ms old does both jobs. Recorded with every entry, it made the
#: hard state's row a second page of every one-entry transaction at one
#: client's pace (a 4 KiB WAL frame and 25-60 us of CPU a node a write).
COMMIT_RECORD_TICKS = 10

#: The messages sent at once, ahead of their Ready's persist: a leader's
#: (and a follower's answer to a heartbeat: ``_ready.py``). They promise
#: nothing about the sender's disk once their term is durable (a candidate's
#: RequestVotes wait for its term and vote; a lone voter, which elects
#: itself with nothing written, holds them until its new term is durable:
#: ``_send``), and a leader counts its own entries only once ``advance``
#: reported them durable, §10.2.1. Every other message (a vote, an
#: acknowledgement) promises what its Ready persists, and waits for it.
_LEADERS_AT_ONCE = (AppendEntries, Heartbeat, InstallSnapshot, TimeoutNow)


class RaftCore:
    def __init__(
        self,
        node_id: NodeId,
        storage: LogStorage,
        config: RaftConfig,
        rng: random.Random,
    ) -> None:
        config.validate()
        self._id = node_id
        self._config = config
        self._rng = rng
        self._log = RaftLog(storage)

        hard_state = storage.hard_state()
        self._term = hard_state.term
        self._vote: NodeId | None = hard_state.vote
        #: (term, index) of the highest commit a leader told us of. A member
        #: added again after its directory was lost replays the log from
        #: nothing, through the older configurations in which its old self
        #: was a voter; a removed member that never learnt of its removal
        #: counts it as that voter, and while its log is short would win its
        #: vote and overwrite entries committed with the old self's
        #: acknowledgement. A candidate whose log does not reach this point
        #: lacks a committed entry: refused, and never one ourselves. A
        #: candidate holding every committed entry always reaches it, so the
        #: refusal costs no election. (etcd closes the same gap with a new
        #: member id for each incarnation.)
        self._known_commit = (hard_state.known_commit_term, hard_state.known_commit)

        # Configuration history: (index, membership) for the snapshot's
        # configuration and every CONFIG entry after it. The last item is in
        # force (§4.1); earlier ones come back if a conflicting leader
        # truncates the later ones away.
        snap_meta = storage.snapshot().meta
        self._config_history: list[tuple[int, Membership]] = [(snap_meta.index, snap_meta.membership)]
        for entry in storage.config_entries():
            self._config_history.append((entry.index, Membership.decode(entry.data)))

        self._role = Role.FOLLOWER
        self._leader_id: NodeId | None = None
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_election_timeout = 0
        #: The timer is a turn after a refused leader (``report_refused``),
        #: not a random draw.
        self._timer_is_a_turn = False
        self._reset_election_timeout()

        self._progress: dict[NodeId, Progress] = {}
        #: The last Progress.epoch given out (see AppendEntries.epoch). A
        #: counter of this process is enough: an answer to an earlier
        #: process's leadership carries an older term.
        self._last_epoch = 0
        #: Counts the times a leader stopped replicating to members that its
        #: configurations no longer name (released, given up, or its
        #: leadership over): a runtime keeps streams to such a member, as
        #: the leader's progress does, and looks again when this moves.
        self.removed_released = 0
        self._votes: dict[NodeId, bool] = {}
        self._lead_transferee: NodeId | None = None
        self._transfer_elapsed = 0

        # Read index (§6.4). A read arriving now is confirmed by the
        # heartbeat round numbered ``_heartbeat_seq + 1`` or later.
        self._heartbeat_seq = 0
        self._pending_reads: list[tuple[int, int, int]] = []  # (seq, request_id, index)
        self._reads_awaiting_term_commit: list[int] = []
        self._read_states: list[ReadState] = []
        self._dropped_reads: list[int] = []

        #: Queued messages: to send at once, and after the next persist.
        self._messages: list[Message] = []
        self._messages_after_persist: list[Message] = []
        #: The Ready handed out and not yet advanced (one at a time).
        self._in_flight: Ready | None = None
        self._broadcast_pending = False
        self._commit_broadcast = self._log.committed
        self._persisted_hard_state = hard_state
        #: Ticks so far, and the tick at which a Ready last carried the
        #: hard state (see COMMIT_RECORD_TICKS).
        self._ticks = 0
        self._hard_state_taken_at = 0
        self._announced_soft_state = SoftState(Role.FOLLOWER, self._term, None)
        self._announced_membership = self._membership

    # ------------------------------------------------------------------
    # Queries

    @property
    def id(self) -> NodeId:
        return self._id

    @property
    def config(self) -> RaftConfig:
        return self._config

    @property
    def is_leader(self) -> bool:
        """Whether this node leads now: the runtime asks several times a
        write, so without building a :class:`BasicStatus` each time."""
        return self._role is Role.LEADER

    @property
    def term(self) -> int:
        return self._term

    @property
    def leader_id(self) -> NodeId | None:
        return self._leader_id

    def durable_commit(self) -> int | None:
        """The commit index a stopping node may record with the log it has
        on disk (see :meth:`RaftLog.durable_commit`)."""
        return self._log.durable_commit()

    def basic_status(self) -> BasicStatus:
        """The core's state now, without its log bounds, timers and
        progress: cheap enough to ask on every input."""
        return BasicStatus(
            self._id,
            self._role,
            self._term,
            self._vote,
            self._leader_id,
            self._log.committed,
            self._log.applied,
            self._membership,
            self._lead_transferee,
        )

    def status(self) -> Status:
        """All of the core's state worth reporting, now."""
        log = self._log
        progress = {
            node_id: ProgressStatus(
                pr.match, pr.next, pr.state, pr.recent_active, len(pr.inflights), pr.paused()
            )
            for node_id, pr in self._progress.items()
        }
        return Status(
            self._id,
            self._role,
            self._term,
            self._vote,
            self._leader_id,
            log.committed,
            log.applied,
            self._membership,
            self._lead_transferee,
            commit_term=log.term(log.committed) or 0,
            first_index=log.first_index(),
            last_index=log.last_index(),
            committed_membership=self._committed_membership,
            election_elapsed=self._election_elapsed,
            election_timeout=self._randomized_election_timeout,
            heartbeat_elapsed=self._heartbeat_elapsed,
            progress=progress if self._role is Role.LEADER else {},
            promotable=self._promotable(),
        )

    @property
    def _membership(self) -> Membership:
        return self._config_history[-1][1]

    @property
    def _hard_state(self) -> HardState:
        known_term, known_index = self._known_commit
        return HardState(self._term, self._vote, self._log.committed, known_index, known_term)

    def _log_reaches_known_commit(self) -> bool:
        if self._known_commit[1] <= self._log.committed:
            return True  # the committed prefix holds it (asked at every tick)
        return (self._log.last_term(), self._log.last_index()) >= self._known_commit

    @property
    def _soft_state(self) -> SoftState:
        return SoftState(self._role, self._term, self._leader_id)

    @property
    def _committed_membership(self) -> Membership:
        """The configuration of the last committed configuration entry. A
        member that the configuration in force drops is still in this one
        until its removal commits, and still gets messages until then
        (§4.2.2): a removed leader needs its followers' acknowledgements to
        commit its own removal."""
        return self._membership_at(self._log.committed)

    def _promotable(self) -> bool:
        """Whether this node may campaign: a voter of the configuration in
        force, or (§4.2.2) a voter that the configuration in force drops
        while that change is not committed here. Such a node may hold the
        only copy of its own removal (the leader that appended it crashed
        with the entry on this node alone), and the others, still under
        the old configuration, cannot win without its vote, which it
        refuses them for its longer log: it must lead to commit the change
        (not counting its own vote: ``vote_result`` counts the voters in
        force), then steps down as a removed leader does."""
        if not self._log_reaches_known_commit():
            return False  # it lacks committed entries: see _known_commit
        if self._id in self._membership.voters:
            return True
        return self._id in self._committed_membership.voters

    def _membership_at(self, index: int) -> Membership:
        """The configuration in force at ``index``, for a snapshot taken
        there. ``index`` must be at least the applied index at the last
        ``advance`` (older history is pruned)."""
        result = self._config_history[0][1]
        for at, membership in self._config_history:
            if at > index:
                break
            result = membership
        return result

    def snapshot_meta(self, index: int) -> SnapshotMeta:
        """Metadata for a state machine snapshot taken at applied ``index``."""
        term = self._log.term(index)
        if term is None:
            raise CompactedError(index)
        return SnapshotMeta(index, term, self._membership_at(index))

    # ------------------------------------------------------------------
    # Inputs

    def tick(self) -> None:
        """One unit of logical time."""
        self._ticks += 1
        if self._role is Role.LEADER:
            self._tick_leader()
        else:
            self._tick_election()

    def ticks_until_due(self) -> int | None:
        """How many ticks from now the next one that matters falls: the
        ticks before it only count (no timer fires, nothing is sent), so a
        runtime may sleep until then and deliver them all at once, as long
        as it does so before any other input. None: no timer runs (a
        member that may not campaign)."""
        if self._role is Role.LEADER:
            due = min(
                self._config.heartbeat_ticks - self._heartbeat_elapsed,
                self._config.election_ticks_min - self._election_elapsed,
            )
            if self._lead_transferee is not None:
                due = min(due, self._config.transfer_ticks - self._transfer_elapsed)
            if self._log.committed > self._commit_broadcast:
                due = 1  # the commit index waits for the next tick (lazy_commit_broadcast)
            return max(1, due)
        if not self._promotable():
            return None
        due = self._randomized_election_timeout
        if self._turn_due():
            due = min(due, self._config.election_ticks_min)  # the lease ends: a turn is taken
        return max(1, due - self._election_elapsed)

    def awaits_answers(self) -> bool:
        """Whether anything here may wait for a peer's message now. False
        only for a leader at rest: every follower and learner holds the
        whole log and is in step, no read index round or read is pending,
        no transfer runs. Such a leader's heartbeats still want answers,
        but only for check-quorum and liveness, which count rounds: a
        runtime may read those answers late (at its next heartbeat round)
        rather than wake for each as it comes. Any input that makes this
        True again (a proposal, a read, a transfer, a role change) also
        hands out a Ready, which is where a runtime looks again."""
        if self._role is not Role.LEADER:
            return True
        if self._pending_reads or self._reads_awaiting_term_commit or self._lead_transferee is not None:
            return True
        last_index = self._log.last_index()
        return any(
            pr.match < last_index or pr.state is not ProgressState.REPLICATE
            for node_id, pr in self._progress.items()
            if node_id != self._id
        )

    def heartbeat_round(self) -> int:
        """The number of the latest heartbeat round, which a follower's
        ``HeartbeatResponse.seq`` echoes: a runtime that notes when each
        round left knows, from an answer, a time the follower still
        followed this leader, however late it reads the answer."""
        return self._heartbeat_seq

    def propose(self, data: bytes) -> int:
        """Append a command; returns its log index. The command is committed
        once an entry of this term at that index is applied."""
        self._check_can_propose()
        if self._log.last_index() - self._log.committed >= self._config.max_uncommitted_entries:
            raise ProposalDropped("too many uncommitted entries; the cluster is not keeping up")
        return self._append_as_leader(EntryKind.NORMAL, data)

    def change_membership(self, change: ConfChange) -> int:
        """Append a configuration change; returns its log index."""
        self._check_can_propose()
        if self._log.term(self._log.committed) != self._term:
            # §4.1 and the 2015 fix: a new leader must commit an entry of its
            # own term before it changes the configuration.
            raise ConfigChangeRejected("the leader has not yet committed an entry of its term")
        if self._config_history[-1][0] > self._log.committed:
            raise ConfigChangeRejected("another membership change is still in progress")
        new = apply_change(self._membership, change)
        return self._append_as_leader(EntryKind.CONFIG, new.encode())

    def read_index(self, request_id: int) -> None:
        """Ask for a linearizable read (§6.4). A ``ReadState`` with this id
        comes out in a later Ready once a quorum confirmed leadership;
        ``dropped_reads`` carries it instead if leadership is lost."""
        if self._role is not Role.LEADER:
            raise NotLeader(self._leader_id)
        if not self._committed_in_current_term():
            # §6.4 step 1: until the leader's no-op commits, its commit
            # index may be behind the cluster's.
            self._reads_awaiting_term_commit.append(request_id)
            return
        self._enqueue_read(request_id)

    def transfer_leadership(self, to: NodeId | None = None) -> NodeId:
        """Hand leadership to ``to`` (or the most caught-up voter) (§3.10):
        stop taking proposals, catch the target up, send TimeoutNow.
        Returns the target's id."""
        if self._role is not Role.LEADER:
            raise NotLeader(self._leader_id)
        voters = self._membership.voters
        if to is None:
            candidates = sorted(v for v in voters if v != self._id)
            if not candidates:
                raise RaftError("there is no other voter to transfer leadership to")
            # A voter heard from in this check-quorum round first (one that
            # went silent cannot take over), then the most caught up.
            to = max(candidates, key=lambda v: (self._progress[v].recent_active, self._progress[v].match))
        if to == self._id:
            return to
        if to not in voters:
            raise RaftError(f"{to} is not a voter")
        if self._lead_transferee == to:
            return to
        self._lead_transferee = to
        self._transfer_elapsed = 0
        if self._progress[to].match == self._log.last_index():
            self._send(TimeoutNow(self._term, self._id, to))
        else:
            self._send_append(to)
        return to

    def report_unreachable(self, node_id: NodeId) -> None:
        """The runtime could not deliver to ``node_id``: stop pipelining to
        it and probe, so nothing more piles up for it."""
        pr = self._progress.get(node_id)
        if pr is not None and pr.state is ProgressState.REPLICATE:
            pr.become_probe()

    def report_refused(self, node_id: NodeId) -> bool:
        """The runtime saw ``node_id``'s address refuse a connection: no
        process listens there. A crashed or stopped leader's port refuses
        at once, while a paused or slow one still accepts, so this is news
        of a leader gone, long before an election timeout could tell.

        A follower told so of its own leader trades its random election
        timeout, whose randomness keeps followers from campaigning
        together (§3.4), for a turn: it campaigns in a window of
        :attr:`RaftConfig.refused_stagger_ticks` ticks that opens one tick
        after the minimum timeout has passed since it last heard from the
        leader (or after this report, if that was longer ago: a leader
        silent for a while before it died),
        :attr:`RaftConfig.turn_spacing_ticks` (a window and a heartbeat
        interval) later for each voter whose id sorts before its own (the
        leader left out; a voter being removed goes after all that stay),
        at a random tick of its window.
        Followers that heard the leader last at the same moment (the usual
        case: its appends and heartbeats reach them together) campaign a
        heartbeat interval apart at least, time for the first one's
        election to end; ones that did not may meet, with a chance of at
        most one in the window's ticks, which costs a random timeout more
        (a split vote), as before. The minimum is kept: it is the lease this
        follower promised the leader (§4.2.3), which the leader's standing
        (check-quorum) counts on, so a false report (a live leader whose
        port refuses this follower only) moves nothing but this follower's
        next pre-vote, which the others, still in their leases, refuse;
        and the next message from the leader puts its random timeout back.

        With ``RaftConfig.quiet_leader_turns`` (the default) the lease's
        end takes this same turn unasked, so a report moves the timing
        only with those turns off; the runtime still logs it, which tells
        an operator why the leader was given up.

        Returns whether this report set the turn (False: this node is not
        a voter following ``node_id``, or its turn already stands, as when
        the stream's next attempt is refused too)."""
        if self._role is not Role.FOLLOWER or self._leader_id != node_id or not self._promotable():
            return False
        if self._timer_is_a_turn:
            return False  # the stream retries (or the lease ended): the turn stands
        self._take_turn(node_id)
        return True

    def _take_turn(self, leader: NodeId) -> None:
        """Trade the random election timeout for a turn after ``leader``
        (``report_refused`` says when and why)."""
        window = self._config.refused_stagger_ticks
        # Ranked among the voters that stay, as the others rank themselves;
        # a voter being removed, which may campaign too (_promotable), goes
        # after them all: ranked by its id it took a staying voter's turn.
        staying = sorted(v for v in self._membership.voters if v != leader)
        turn = staying.index(self._id) if self._id in staying else len(staying)
        opens = max(self._config.election_ticks_min, self._election_elapsed) + 1
        spacing = self._config.turn_spacing_ticks
        self._randomized_election_timeout = opens + turn * spacing + self._rng.randrange(window)
        self._timer_is_a_turn = True

    def _turn_due(self) -> bool:
        """Whether this follower takes a turn once its lease ends
        (``RaftConfig.quiet_leader_turns``): it follows a leader it has
        not yet given up on, and its timer is still a random draw."""
        return (
            self._config.quiet_leader_turns
            and self._role is Role.FOLLOWER
            and self._leader_id is not None
            and not self._timer_is_a_turn
        )

    def report_snapshot(self, node_id: NodeId, success: bool) -> None:
        """The runtime finished sending a snapshot to ``node_id``; on failure
        probe again (which sends a fresh one)."""
        pr = self._progress.get(node_id)
        if pr is not None and pr.state is ProgressState.SNAPSHOT and not success:
            pr.become_probe()

    def step_down(self) -> None:
        """Stop leading (keeping the term): the runtime calls this when its
        disk has stalled for longer than an election timeout, so that a
        leader that cannot make entries durable does not linger (a zombie
        leader holds clients while the others could elect a working one)."""
        if self._role is Role.LEADER:
            self._become_follower(self._term, None)

    def observe_term(self, term: int) -> None:
        """A term learnt from the cluster outside Raft's messages: a member
        that joins with an empty directory reads a member's status before
        it asks to be added. Taken as any higher term is (§3.3: follower,
        no leader, no vote), so that a leader of an older term, one that
        slept through this id's removal and re-adding and still counts it
        as its old server, is refused rather than followed (it would
        commit its own entries with the new server's acknowledgements)."""
        if term > self._term:
            self._become_follower(term, None)

    def step(self, m: Message) -> None:
        """Take in one message from a peer."""
        if m.dst != self._id:
            return
        if m.term > self._term:
            if isinstance(m, RequestVote) and not m.transfer and self._in_leader_lease():
                # §4.2.3: a server that heard from a leader within the
                # minimum election timeout neither updates its term nor
                # grants its vote; a disruptive server gets no answer.
                return
            if isinstance(m, RequestVote) and m.pre_vote:
                pass  # §9.6: a pre-vote changes nobody's term
            elif isinstance(m, RequestVoteResponse) and m.pre_vote and m.granted:
                pass  # granted pre-votes carry the term we asked for
            else:
                leader = m.src if isinstance(m, _LEADER_MESSAGES) else None
                self._become_follower(m.term, leader)
        elif m.term < self._term:
            if isinstance(m, (AppendEntries, Heartbeat)) and (
                self._config.check_quorum or self._config.pre_vote
            ):
                # A stale leader would otherwise never learn of the new term
                # (pre-vote keeps our term from reaching it through votes).
                self._send(AppendEntriesResponse(self._term, self._id, m.src, success=False, index=0))
            elif isinstance(m, RequestVote) and m.pre_vote:
                self._send(RequestVoteResponse(self._term, self._id, m.src, granted=False, pre_vote=True))
            return

        if isinstance(m, RequestVote):
            self._handle_request_vote(m)
        elif self._role is Role.LEADER:
            self._step_leader(m)
        elif self._role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
            self._step_candidate(m)
        else:
            self._step_follower(m)

    # ------------------------------------------------------------------
    # Output

    def has_ready(self) -> bool:
        """Whether ``ready()`` has anything to hand out: while a Ready is
        in flight, only messages to send at once count."""
        if self._messages or self._broadcast_pending:
            return True
        if self._in_flight is not None:
            return False
        return bool(
            self._messages_after_persist
            or self._log.unstable_entries
            or self._log.unstable_snapshot is not None
            or self._log.has_entries_to_apply()
            or self._read_states
            or self._dropped_reads
            or self._hard_state_to_persist() is not None
            or self._soft_state_changed()
            or self._membership != self._announced_membership
        )

    def _soft_state_changed(self) -> bool:
        announced = self._announced_soft_state
        return (
            self._role is not announced.role
            or self._term != announced.term
            or self._leader_id != announced.leader_id
        )

    def ready(self) -> Ready:
        """Everything the runtime must do now (``_ready.py``: in what
        order). Unless it holds only messages, the Ready is in flight until
        ``advance(ready)``; asked again meanwhile, the core hands out only
        the messages that may be sent at once."""
        self._flush_broadcast()
        messages, self._messages = self._messages, []
        if self._in_flight is not None:
            return Ready(messages=messages)
        hard_state = self._hard_state_to_persist()
        if hard_state is not None:
            self._hard_state_taken_at = self._ticks
        soft_state = self._soft_state
        membership = self._membership
        committed: list[Entry] = []
        if self._log.has_entries_to_apply():
            committed = self._log.committed_entries_to_apply(self._config.max_apply_bytes)
        ready = Ready(
            hard_state=hard_state,
            entries=list(self._log.unstable_entries),
            snapshot=self._log.unstable_snapshot,
            committed_entries=committed,
            messages=messages,
            messages_after_persist=self._messages_after_persist,
            read_states=self._read_states,
            dropped_reads=self._dropped_reads,
            soft_state=soft_state if soft_state != self._announced_soft_state else None,
            membership=membership if membership != self._announced_membership else None,
        )
        self._messages_after_persist = []
        self._read_states = []
        self._dropped_reads = []
        if not ready.only_messages():
            self._in_flight = ready
        return ready

    def _hard_state_to_persist(self) -> HardState | None:
        """The hard state, if it must be written with the next Ready. Term
        and vote must be durable before anything is sent (Figure 3.1); the
        commit index need not be (it is volatile state), so a change of it
        alone costs no fsync: it rides along with a snapshot, or with the
        next entries written once COMMIT_RECORD_TICKS passed since the last
        record; one that commits a configuration entry is written at once."""
        persisted = self._persisted_hard_state
        if self._term != persisted.term or self._vote != persisted.vote:
            return self._hard_state
        if self._known_commit[1] > persisted.known_commit and not self._log_reaches_known_commit():
            # Behind a commit we heard of: recorded now (see _known_commit).
            # A log that reaches it guards the same point itself.
            return self._hard_state
        if self._log.committed == persisted.commit:
            return None
        if self._log.unstable_snapshot is not None:
            return self._hard_state
        if self._committed_config_index() > persisted.commit:
            # A configuration committed: recorded now, so that a member it
            # removes still knows after a restart that its removal
            # committed (else it would campaign again: _promotable).
            return self._hard_state
        if self._log.unstable_entries and self._ticks - self._hard_state_taken_at >= COMMIT_RECORD_TICKS:
            return self._hard_state
        return None

    def _flush_broadcast(self) -> None:
        if self._broadcast_pending:
            # One AppendEntries per follower for everything proposed since
            # the last flush (batching); an empty one only to carry a new
            # commit index.
            self._broadcast_pending = False
            commit_news = self._log.committed > self._commit_broadcast
            self._commit_broadcast = self._log.committed
            self._broadcast_append(send_if_empty=commit_news)

    def advance(self, ready: Ready) -> None:
        """The runtime has persisted, sent and applied ``ready``, the Ready
        in flight (one that holds only messages needs no ``advance``)."""
        if ready is not self._in_flight:
            if ready.only_messages():
                return
            raise RaftError("advance() takes the Ready in flight, once: the last one ready() handed out")
        self._in_flight = None
        if ready.hard_state is not None:
            self._persisted_hard_state = ready.hard_state
        if ready.soft_state is not None:
            self._announced_soft_state = ready.soft_state
        if ready.membership is not None:
            self._announced_membership = ready.membership
        if ready.snapshot is not None:
            self._log.stable_snapshot(ready.snapshot.meta.index)
        if ready.entries:
            last = ready.entries[-1]
            self._log.stable_to(last.index, last.term)
        if ready.committed_entries:
            self._log.applied_to(ready.committed_entries[-1].index)
        self._prune_config_history()
        own = self._progress.get(self._id) if self._role is Role.LEADER else None
        if own is not None and own.maybe_update(self._stable_last_index()):
            # The leader's own entries count towards a quorum only once
            # durable (DESIGN: durable before counted).
            self._maybe_commit()

    # ------------------------------------------------------------------
    # Role transitions

    def _become_follower(self, term: int, leader_id: NodeId | None) -> None:
        if self._role is Role.LEADER:
            self._abandon_leadership()
        if term != self._term:
            self._term = term
            self._vote = None
        self._role = Role.FOLLOWER
        self._leader_id = leader_id
        self._reset_election_timeout()

    def _become_pre_candidate(self) -> None:
        # §9.6: no change of term or vote; a pre-candidate has no leader.
        self._role = Role.PRE_CANDIDATE
        self._leader_id = None
        self._votes = {self._id: True}

    def _become_candidate(self) -> None:
        self._term += 1
        self._vote = self._id
        self._role = Role.CANDIDATE
        self._leader_id = None
        self._votes = {self._id: True}
        self._reset_election_timeout()

    def _become_leader(self) -> None:
        self._role = Role.LEADER
        self._leader_id = self._id
        self._reset_election_timeout()
        self._heartbeat_elapsed = 0
        self._progress = {}
        for node_id in self._replicated_ids():
            self._add_progress(node_id)
        # A leader being removed still leads until the removal commits
        # (§4.2.2) but has no progress of its own, so it never counts itself.
        own = self._progress.get(self._id)
        if own is not None:
            own.maybe_update(self._stable_last_index())
            own.become_replicate()
        # §3.6.2 / §6.4: a no-op of the new term lets the leader learn which
        # entries are committed and commit the previous terms' entries.
        self._append_as_leader(EntryKind.NOOP, b"")

    def _abandon_leadership(self) -> None:
        if not self._progress.keys() <= self._replicated_ids():
            self.removed_released += 1
        self._progress = {}
        self._lead_transferee = None
        self._dropped_reads.extend(request_id for _, request_id, _ in self._pending_reads)
        self._dropped_reads.extend(self._reads_awaiting_term_commit)
        self._pending_reads = []
        self._reads_awaiting_term_commit = []
        self._broadcast_pending = False

    def _reset_election_timeout(self) -> None:
        self._election_elapsed = 0
        self._timer_is_a_turn = False
        self._randomized_election_timeout = self._rng.randint(
            self._config.election_ticks_min, self._config.election_ticks_max
        )

    # ------------------------------------------------------------------
    # Timers

    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if not self._promotable():
            return
        if self._election_elapsed >= self._config.election_ticks_min and self._turn_due():
            # The lease ended without a word from the leader: a turn, as
            # after a refused port (quiet_leader_turns).
            assert self._leader_id is not None
            self._take_turn(self._leader_id)
        if self._election_elapsed >= self._randomized_election_timeout:
            self._campaign(transfer=False)

    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._election_elapsed >= self._config.election_ticks_min:
            self._election_elapsed = 0
            if self._config.check_quorum and not self._quorum_active():
                # §6.2: a leader cut off from a majority steps down rather
                # than serve stale reads or hang clients forever.
                self._become_follower(self._term, None)
                return
            replicated = self._replicated_ids()
            for node_id in [
                n for n, pr in self._progress.items() if not pr.recent_active and n not in replicated
            ]:
                del self._progress[node_id]  # removed, silent for a round: told no more (_release_removed)
                self.removed_released += 1
            for node_id, pr in self._progress.items():
                pr.recent_active = node_id == self._id
                if pr.state is ProgressState.SNAPSHOT:
                    # An InstallSnapshot unanswered for two election
                    # timeouts was lost: probe, which sends a fresh one.
                    pr.snapshot_rounds += 1
                    if pr.snapshot_rounds > 2:
                        pr.become_probe()
        if self._lead_transferee is not None:
            self._transfer_elapsed += 1
            if self._transfer_elapsed >= self._config.transfer_ticks:
                self._lead_transferee = None  # §3.10: abort, take proposals again
        if self._heartbeat_elapsed >= self._config.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._broadcast_heartbeat()
            self._maybe_promote_learner()
        if self._log.committed > self._commit_broadcast:
            # A commit not yet carried by any broadcast (lazy_commit_broadcast).
            self._broadcast_pending = True

    def _campaign(self, transfer: bool) -> None:
        """Start an election: a pre-vote first unless this is a leadership
        transfer (§3.10 elections skip pre-vote and override leases)."""
        if self._config.pre_vote and not transfer:
            self._reset_election_timeout()
            self._become_pre_candidate()
        else:
            self._become_candidate()
        self._request_votes(transfer)

    def _request_votes(self, transfer: bool) -> None:
        if self._tally_votes() is not VoteResult.PENDING:
            return  # a cluster of one decides at once
        pre_vote = self._role is Role.PRE_CANDIDATE
        ask_term = self._term + 1 if pre_vote else self._term
        last_index, last_term = self._log.last_index(), self._log.last_term()
        for voter in sorted(self._membership.voters):
            if voter != self._id:
                self._send(
                    RequestVote(
                        ask_term, self._id, voter, last_index, last_term, pre_vote=pre_vote, transfer=transfer
                    )
                )

    def _tally_votes(self) -> VoteResult:
        result = vote_result(self._membership.voters, self._votes)
        if result is VoteResult.WON:
            if self._role is Role.PRE_CANDIDATE:
                self._become_candidate()
                self._request_votes(transfer=False)
            else:
                self._become_leader()
        elif result is VoteResult.LOST:
            self._become_follower(self._term, None)
        return result

    # ------------------------------------------------------------------
    # Votes

    def _in_leader_lease(self) -> bool:
        return (
            self._config.check_quorum
            and self._leader_id is not None
            and self._election_elapsed < self._config.election_ticks_min
        )

    def _handle_request_vote(self, m: RequestVote) -> None:
        """Grant (pre-)votes as Figure 3.1 says, with one refusal more: a
        server that knows no configuration (a member added with an empty
        data directory, before the leader first reached it) grants none.
        It is no voter of any configuration in force (unless promoted
        before it held a single entry), and refusing is always safe. A
        member added again after its directory was lost is such a server,
        and a removed member that never learnt of its removal still counts
        it a voter of their old configuration: its vote won such a member
        an election, whose leader then overwrote committed entries."""
        can_vote = (
            self._vote == m.src
            or (self._vote is None and self._leader_id is None)
            or (m.pre_vote and m.term > self._term)
        )
        if can_vote and self._membership.members and self._log_ok_for_vote(m):
            if m.pre_vote:
                self._send(RequestVoteResponse(m.term, self._id, m.src, granted=True, pre_vote=True))
            else:
                self._vote = m.src
                self._election_elapsed = 0
                self._send(RequestVoteResponse(self._term, self._id, m.src, granted=True))
        else:
            self._send(RequestVoteResponse(self._term, self._id, m.src, granted=False, pre_vote=m.pre_vote))

    def _log_ok_for_vote(self, m: RequestVote) -> bool:
        """§3.6.1: grant only to a candidate whose log is at least as
        up-to-date as ours (Leader Completeness rests on this), and as the
        highest commit we heard of (``_known_commit``)."""
        return (
            self._log.is_up_to_date(m.last_log_index, m.last_log_term)
            and (m.last_log_term, m.last_log_index) >= self._known_commit
        )

    # ------------------------------------------------------------------
    # Candidate

    def _step_candidate(self, m: Message) -> None:
        if isinstance(m, _LEADER_MESSAGES):
            # A leader of our term exists (§3.4): return to follower.
            self._become_follower(m.term, m.src)
            self._step_follower(m)
        elif isinstance(m, RequestVoteResponse):
            if m.pre_vote != (self._role is Role.PRE_CANDIDATE):
                return
            if m.src not in self._membership.voters:
                return
            self._votes[m.src] = m.granted
            self._tally_votes()

    # ------------------------------------------------------------------
    # Follower

    def _step_follower(self, m: Message) -> None:
        if isinstance(m, _LEADER_MESSAGES):
            if self._timer_is_a_turn:
                self._reset_election_timeout()  # the leader is there after all
            self._election_elapsed = 0
            self._leader_id = m.src
            if isinstance(m, AppendEntries):
                self._handle_append_entries(m)
            elif isinstance(m, Heartbeat):
                self._handle_heartbeat(m)
            else:
                self._handle_install_snapshot(m)
        elif isinstance(m, TimeoutNow) and self._promotable():
            self._campaign(transfer=True)

    def _handle_append_entries(self, m: AppendEntries) -> None:
        if m.commit > self._known_commit[1]:
            self._known_commit = (m.commit_term, m.commit)
        if m.prev_index < self._log.committed:
            # Already have everything up to our commit index.
            self._send(
                AppendEntriesResponse(
                    self._term, self._id, m.src, success=True, index=self._log.committed, epoch=m.epoch
                )
            )
            return
        result = self._log.maybe_append(m.prev_index, m.prev_term, m.commit, m.entries)
        if result is None:
            hint_index = min(m.prev_index, self._log.last_index())
            hint_index = self._log.find_conflict_by_term(hint_index, m.prev_term)
            hint_term = self._log.term(hint_index) or 0
            self._send(
                AppendEntriesResponse(
                    self._term,
                    self._id,
                    m.src,
                    success=False,
                    index=m.prev_index,
                    hint_index=hint_index,
                    hint_term=hint_term,
                    epoch=m.epoch,
                )
            )
            return
        last, conflict = result
        if conflict:
            self._log_changed(conflict, m.entries)
        self._send(
            AppendEntriesResponse(self._term, self._id, m.src, success=True, index=last, epoch=m.epoch)
        )

    def _handle_heartbeat(self, m: Heartbeat) -> None:
        lacks = False
        if m.commit > self._log.committed:
            if self._holds(m.commit, m.commit_term):
                self._log.commit_to(m.commit)
            else:
                lacks = m.commit_term != 0
        self._send(HeartbeatResponse(self._term, self._id, m.src, seq=m.seq, epoch=m.epoch, lacks=lacks))

    def _holds(self, index: int, term: int) -> bool:
        """Whether our entry at ``index`` is the leader's, whose term there
        is ``term`` (Log Matching: then so is every entry before it). A
        heartbeat's commit index is only what the leader's record of this
        member says it holds, and a record can outlive the server it was
        made for: one removed and added again with an empty disk got the
        old server's heartbeat, whose commit index was past its log (an
        assertion stopped it), and one that had meanwhile taken entries of
        an older term there would have committed those. An older leader
        sends no term (0): its index is taken if the log reaches it."""
        if term == 0:
            return index <= self._log.last_index()
        return self._log.term(index) == term

    def _handle_install_snapshot(self, m: InstallSnapshot) -> None:
        meta = m.meta
        if meta.index <= self._log.committed:
            index = self._log.committed
        elif self._log.match_term(meta.index, meta.term):
            # Our log already holds the snapshot's last entry: keep what
            # follows it (§5.3, InstallSnapshot receiver rule 6).
            self._log.commit_to(meta.index)
            index = meta.index
        else:
            self._log.restore(Snapshot(meta, m.data))
            self._config_history = [(meta.index, meta.membership)]
            index = meta.index
        self._send(
            AppendEntriesResponse(self._term, self._id, m.src, success=True, index=index, epoch=m.epoch)
        )

    # ------------------------------------------------------------------
    # Leader

    def _step_leader(self, m: Message) -> None:
        if isinstance(m, _LEADER_MESSAGES):
            raise AssertionError(f"two leaders in term {self._term}: {self._id} and {m.src}")
        pr = self._progress.get(m.src)
        if pr is None:
            return
        if isinstance(m, (AppendEntriesResponse, HeartbeatResponse)) and m.epoch and m.epoch != pr.epoch:
            return  # answers a record since replaced: its server's, removed and added again
        pr.responded = True
        if isinstance(m, AppendEntriesResponse):
            pr.recent_active = True
            if m.success:
                self._handle_append_success(m.src, pr, m.index)
            else:
                self._handle_append_reject(m.src, pr, m)
        elif isinstance(m, HeartbeatResponse):
            pr.recent_active = True
            pr.probe_sent = False
            if m.lacks and pr.match:
                # It does not hold what was acknowledged under its id (see
                # Progress.maybe_decrease_to): from the start again.
                pr.match = 0
                pr.become_probe()
            if pr.state is ProgressState.REPLICATE and pr.inflights.full():
                # A lost AppendEntries would stall the window forever; free
                # one slot so the follower's reject reveals the gap.
                pr.inflights.free_first()
            if m.seq > pr.acked_seq:
                pr.acked_seq = m.seq
                self._release_confirmed_reads()
            if pr.match < self._log.last_index() or pr.state is ProgressState.PROBE:
                # In PROBE with the whole log (a stream broke: the runtime
                # reported it unreachable), an empty append's answer moves
                # it back to REPLICATE, so the leader can be at rest again.
                self._send_append(m.src)

    def _handle_append_success(self, node_id: NodeId, pr: Progress, index: int) -> None:
        if not pr.maybe_update(index) and not (pr.state is ProgressState.PROBE and index == pr.match):
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT:
            if pr.match >= pr.pending_snapshot:
                pr.become_replicate()
        else:
            pr.inflights.free_up_to(index)
        self._maybe_commit()
        if self._role is not Role.LEADER:
            return  # the commit removed this leader (§4.2.2)
        if node_id not in self._progress:
            return  # the commit completed this member's removal
        if node_id not in self._membership.ids and node_id not in self._committed_membership.ids:
            self._release_removed(node_id)  # removed, and now holds its removal
            if node_id not in self._progress:
                return
        while self._send_append(node_id, send_if_empty=False):
            pass
        if node_id == self._lead_transferee and pr.match == self._log.last_index():
            self._send(TimeoutNow(self._term, self._id, node_id))
        if node_id in self._membership.learners:
            self._maybe_promote_learner()

    def _handle_append_reject(self, node_id: NodeId, pr: Progress, m: AppendEntriesResponse) -> None:
        hint = m.hint_index
        if m.hint_term > 0:
            hint = self._log.find_conflict_by_term(m.hint_index, m.hint_term)
        if pr.maybe_decrease_to(m.index, hint):
            if pr.state is ProgressState.REPLICATE:
                pr.become_probe()
            self._send_append(node_id)

    def _check_can_propose(self) -> None:
        if self._role is not Role.LEADER:
            raise NotLeader(self._leader_id)
        if self._lead_transferee is not None:
            raise ProposalDropped(f"leadership is being transferred to {self._lead_transferee}")
        if self._id not in self._membership.voters:
            # §4.2.2: appending nothing after its own removal means that the
            # voters whose acknowledgements commit the removal hold the whole
            # log, so one of them can take over at once (_step_down_removed).
            raise ProposalDropped("this leader is being removed; it hands over once the removal commits")

    def _append_as_leader(self, kind: EntryKind, data: bytes) -> int:
        index = self._log.last_index() + 1
        entry = Entry(index, self._term, kind, data)
        self._log.append([entry])
        self._log_changed(index, (entry,))
        self._broadcast_pending = True
        return index

    def _maybe_commit(self) -> bool:
        match = {node_id: pr.match for node_id, pr in self._progress.items()}
        index = committed_index(self._membership.voters, match)
        if index <= self._log.committed:
            return False
        if not self._may_commit_by_counting(index):
            return False
        first_commit_in_term = not self._committed_in_current_term()
        previous = self._log.committed
        self._log.commit_to(index)
        if previous < self._config_history[-1][0] <= index:
            self._sync_progress()  # a removed member's removal committed: stop replicating to it
        if not self._config.lazy_commit_broadcast:
            self._broadcast_pending = True  # followers learn the new commit index
        if first_commit_in_term:
            waiting, self._reads_awaiting_term_commit = self._reads_awaiting_term_commit, []
            for request_id in waiting:
                self._enqueue_read(request_id)
        if self._id not in self._membership.voters and self._config_history[-1][0] <= index:
            self._step_down_removed()
            return False
        self._maybe_promote_learner()
        return True

    def _step_down_removed(self) -> None:
        """§4.2.2: a leader removed from the configuration steps down once
        the removal is committed. It first sends TimeoutNow (§3.10) to a
        remaining voter that holds its whole log, so that voter is elected
        at once: without it the others would wait out their election
        timeouts, which their leader leases (§4.2.3) make at least the
        minimum timeout. Since the leader appended nothing after its removal
        (``_check_can_propose``), the voters whose acknowledgements just
        committed it hold every entry."""
        last = self._log.last_index()
        caught_up = [
            v
            for v in sorted(self._membership.voters)
            if v in self._progress and self._progress[v].match == last
        ]
        if caught_up:
            preferred = [v for v in caught_up if self._progress[v].recent_active]
            target = (
                self._lead_transferee if self._lead_transferee in caught_up else (preferred or caught_up)[0]
            )
            self._send(TimeoutNow(self._term, self._id, target))
        self._become_follower(self._term, None)

    def _may_commit_by_counting(self, index: int) -> bool:
        """Figure 3.7 (the paper's Figure 8): an entry of an older term is
        never committed by counting replicas, only indirectly, by committing
        an entry of the current term after it."""
        return self._log.term(index) == self._term

    def _committed_in_current_term(self) -> bool:
        return self._log.term(self._log.committed) == self._term

    def _maybe_promote_learner(self) -> None:
        """Promote one caught-up learner (§4.2.1): it holds everything
        committed, so counting it in quorums cannot stall commitment. It
        must hold at least the configuration in force, which names it:
        within ``learner_catch_up_entries`` of a short log, a learner that
        answered without holding a single entry was promoted, a voter with
        an empty log that knows no configuration (and so grants no vote)."""
        if self._role is not Role.LEADER or self._lead_transferee is not None:
            return
        if not self._committed_in_current_term():
            return
        config_index = self._config_history[-1][0]
        if config_index > self._log.committed:
            return
        for learner in sorted(self._membership.learners):
            pr = self._progress.get(learner)
            caught_up = (
                pr is not None
                and pr.match >= config_index
                and pr.match + self._config.learner_catch_up_entries >= self._log.committed
            )
            if pr is not None and caught_up and pr.responded and pr.recent_active:
                self.change_membership(PromoteLearner(learner))
                return

    def _quorum_active(self) -> bool:
        active = [
            node_id for node_id, pr in self._progress.items() if pr.recent_active or node_id == self._id
        ]
        return has_quorum(self._membership.voters, active)

    def _add_progress(self, node_id: NodeId) -> None:
        self._last_epoch += 1
        pr = Progress(self._log.last_index() + 1, self._config.max_inflight, self._last_epoch)
        pr.recent_active = True  # give new followers one check-quorum round
        self._progress[node_id] = pr

    def _peers(self) -> list[NodeId]:
        return sorted(node_id for node_id in self._progress if node_id != self._id)

    def _broadcast_append(self, send_if_empty: bool) -> None:
        for node_id in self._peers():
            self._send_append(node_id, send_if_empty)

    def _broadcast_heartbeat(self) -> None:
        self._heartbeat_seq += 1
        for node_id in self._peers():
            pr = self._progress[node_id]
            self._send(self._heartbeat(node_id, pr))

    def _send_append(self, node_id: NodeId, send_if_empty: bool = True) -> bool:
        """Send ``node_id`` the entries it needs next, or a snapshot if they
        are compacted away. False if nothing was sent."""
        pr = self._progress[node_id]
        if pr.paused():
            return False
        prev_index = pr.next - 1
        prev_term = self._log.term(prev_index)
        try:
            if prev_term is None:
                raise CompactedError(prev_index)
            entries = self._log.entries(
                pr.next,
                pr.next + self._config.max_append_entries,
                self._config.max_append_bytes,
            )
        except CompactedError:
            return self._send_snapshot(node_id, pr)
        if not entries and not send_if_empty:
            return False
        commit = self._log.committed
        self._send(
            AppendEntries(
                self._term,
                self._id,
                node_id,
                prev_index,
                prev_term,
                tuple(entries),
                commit,
                self._log.term(commit) or 0,
                pr.epoch,
            )
        )
        if entries:
            pr.sent_entries(entries[-1].index)
        elif pr.state is ProgressState.PROBE:
            pr.probe_sent = True
        return True

    def _send_snapshot(self, node_id: NodeId, pr: Progress) -> bool:
        if not pr.recent_active:
            return False
        snapshot = self._log.storage.snapshot()
        self._send(InstallSnapshot(self._term, self._id, node_id, snapshot.meta, snapshot.data, pr.epoch))
        pr.become_snapshot(snapshot.meta.index)
        return True

    # ------------------------------------------------------------------
    # Read index (§6.4)

    def _enqueue_read(self, request_id: int) -> None:
        if self._membership.voters == {self._id}:
            self._read_states.append(ReadState(request_id, self._log.committed))
            return
        round_in_flight = bool(self._pending_reads)
        self._pending_reads.append((self._heartbeat_seq + 1, request_id, self._log.committed))
        if not round_in_flight:
            # Start a round now; reads arriving while it is in flight wait
            # for the next one, so one round confirms a whole batch.
            self._broadcast_heartbeat()

    def _release_confirmed_reads(self) -> None:
        if not self._pending_reads:
            return
        acked = {node_id: pr.acked_seq for node_id, pr in self._progress.items()}
        acked[self._id] = self._heartbeat_seq
        confirmed = committed_index(self._membership.voters, acked)
        released = 0
        for seq, request_id, index in self._pending_reads:
            if seq > confirmed:
                break
            self._read_states.append(ReadState(request_id, index))
            released += 1
        del self._pending_reads[:released]
        if released and self._pending_reads and self._pending_reads[0][0] > self._heartbeat_seq:
            self._broadcast_heartbeat()

    # ------------------------------------------------------------------
    # Log bookkeeping

    def _log_changed(self, first_index: int, entries: tuple[Entry, ...]) -> None:
        """Entries from ``first_index`` on were (re)written: drop truncated
        configurations and adopt appended ones (§4.1)."""
        while len(self._config_history) > 1 and self._config_history[-1][0] >= first_index:
            self._config_history.pop()
        for entry in entries:
            if entry.index >= first_index and entry.kind is EntryKind.CONFIG:
                before = self._membership.ids
                self._config_history.append((entry.index, Membership.decode(entry.data)))
                if self._role is Role.LEADER:
                    self._forget_added_progress(self._membership.ids - before)
                    self._sync_progress()

    def _forget_added_progress(self, added: frozenset[NodeId]) -> None:
        """A member added (again) starts from a fresh progress: one that a
        leader still kept for it (removed, and not yet released) is the old
        server's, whose match index a new, empty one does not hold. Kept,
        its rejections read as stale, its heartbeats carried a commit index
        beyond its log, and that match alone had it promoted."""
        for node_id in added:
            if node_id != self._id:
                self._progress.pop(node_id, None)

    def _replicated_ids(self) -> frozenset[NodeId]:
        """Whom a leader replicates to: the configuration in force, and a
        member it removes until the removal commits (§4.2.2), so that the
        removed server learns the new configuration (and, by a last
        heartbeat, that it committed: it stops campaigning). Only the
        configuration in force counts in quorums."""
        return self._membership.ids | self._committed_membership.ids

    def _sync_progress(self) -> None:
        ids = self._replicated_ids()
        for node_id in ids:
            if node_id not in self._progress:
                self._add_progress(node_id)
        for node_id in list(self._progress):
            if node_id not in ids and node_id != self._id:
                self._release_removed(node_id)

    def _release_removed(self, node_id: NodeId) -> None:
        """A member whose removal committed: once it holds the committed
        configuration, a last heartbeat tells it the commit (else it would
        campaign on as a voter being removed, see ``_promotable``) and it
        is replicated to no more. Until then it is, uncounted; one that
        does not answer for a check-quorum round is dropped anyway
        (``_tick_leader``): it may pre-vote, refused by the voters' leases."""
        pr = self._progress[node_id]
        if pr.match < self._committed_config_index():
            return
        del self._progress[node_id]
        self.removed_released += 1
        self._send(self._heartbeat(node_id, pr))

    def _heartbeat(self, node_id: NodeId, pr: Progress) -> Heartbeat:
        """A heartbeat carrying the commit index as far as ``node_id`` is
        known to hold the log, and that entry's term for it to check."""
        commit = min(pr.match, self._log.committed)
        return Heartbeat(
            self._term,
            self._id,
            node_id,
            commit=commit,
            seq=self._heartbeat_seq,
            commit_term=self._log.term(commit) or 0,
            epoch=pr.epoch,
        )

    def _committed_config_index(self) -> int:
        """The index of the committed configuration's entry."""
        for index, _ in reversed(self._config_history):
            if index <= self._log.committed:
                return index
        return self._config_history[0][0]

    def _prune_config_history(self) -> None:
        keep_from = 0
        for position, (index, _) in enumerate(self._config_history):
            if index <= self._log.applied:
                keep_from = position
        if keep_from:
            del self._config_history[:keep_from]

    def _stable_last_index(self) -> int:
        if self._log.unstable_snapshot is not None:
            return 0
        if self._log.unstable_entries:
            return self._log.unstable_offset - 1
        return self._log.last_index()

    def _send(self, message: Message) -> None:
        """Queue ``message`` to leave at once (``Ready.messages``) or after
        the Ready's fsync (``messages_after_persist``); ``_ready.py`` says
        why each kind may leave when. A leader's message of a term not yet
        durable waits: a lone voter elects itself with no vote asked and
        nothing written, and if its first Ready's fsync never happened it
        would restart in the old term, lead the same term again and write
        other entries at indexes a learner already took from it."""
        if isinstance(message, HeartbeatResponse) or (
            isinstance(message, _LEADERS_AT_ONCE) and message.term <= self._persisted_hard_state.term
        ):
            self._messages.append(message)
        else:
            self._messages_after_persist.append(message)
