"""The Ready loop for in-memory cores, and a cluster of them driven by hand.

The Trio runtime (:mod:`raft_trio.node.runtime`) drives a core over a
real disk and network; everything else that drives one (the core's tests,
the seeded simulator, the example in docs/design.md) uses this module, so
the contract of ``raft_trio.core._ready`` is written out twice in the
project, not once per harness:

1. :func:`take_ready`: take the Ready, send its ``messages`` at once;
2. :func:`persist`: its hard state, entries and snapshot to the disk;
3. :func:`finish_ready`: send ``messages_after_persist``, apply (the
   caller's state machine), ``advance``.

:class:`MemoryCluster` runs several cores over :class:`MemoryStorage`
"disks" and a network that moves messages only when asked, so that a test
reads like a transcript ("a times out and campaigns", "deliver
everything", "isolate c"). Nothing here waits or reads a clock. While it
runs it checks two of Raft's safety properties, so every use checks them
for free: at most one leader per term (Election Safety, §3.4) and no two
servers applying different entries at one index (State Machine Safety,
§3.6).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from ..core import (
    Entry,
    Member,
    Membership,
    MemoryStorage,
    Message,
    RaftConfig,
    RaftCore,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
)

Send = Callable[[Message], None]
#: Applies a persisted Ready to the caller's state machine (step 4 of the
#: contract: install its snapshot, apply its committed entries, serve its
#: reads, announce its soft state).
Apply = Callable[[Ready], None]
#: A network filter: True loses the message.
Filter = Callable[[Message], bool]


def take_ready(core: RaftCore, send: Send) -> Ready:
    """Take ``core``'s Ready and send its ``messages`` at once. Unless it
    holds only those, it is in flight until :func:`finish_ready`."""
    ready = core.ready()
    for message in ready.messages:
        send(message)
    return ready


def persist(storage: MemoryStorage, ready: Ready) -> None:
    """Make ``ready`` durable: snapshot, entries, then hard state."""
    if ready.snapshot is not None:
        storage.apply_snapshot(ready.snapshot)
    if ready.entries:
        storage.append(ready.entries)
    if ready.hard_state is not None:
        storage.set_hard_state(ready.hard_state)


def finish_ready(core: RaftCore, ready: Ready, send: Send, apply: Apply) -> None:
    """After :func:`persist`: send what promises it, apply, ``advance``."""
    for message in ready.messages_after_persist:
        send(message)
    apply(ready)
    core.advance(ready)


def url(node_id: str) -> str:
    return f"http://{node_id}"


def membership(voters: Iterable[str], learners: Iterable[str] = ()) -> Membership:
    """A configuration of ``voters`` and ``learners``, each at ``url(id)``."""
    members = [Member(v, url(v)) for v in voters]
    members += [Member(learner, url(learner), voter=False) for learner in learners]
    return Membership.of(members)


class MemoryCluster:
    """Cores by id, their disks, and the messages between them.

    ``deliver_all`` is the only place messages move on their own; a test
    that wants to look at one Ready takes it with ``take`` and hands
    messages over itself with ``step``. A crash keeps exactly what was
    persisted.
    """

    def __init__(
        self,
        ids: Iterable[str] = ("a", "b", "c"),
        *,
        config: RaftConfig,
        seed: int = 0,
        learners: Iterable[str] = (),
        storages: dict[str, MemoryStorage] | None = None,
    ) -> None:
        ids = list(ids)
        learners = list(learners)
        self.config = config
        self.seed = seed
        self.initial_membership = membership([i for i in ids if i not in learners], learners)
        self.storages: dict[str, MemoryStorage] = {}
        self.cores: dict[str, RaftCore] = {}
        #: What each node's state machine applied, in order (since its last start).
        self.applied: dict[str, list[Entry]] = {}
        #: The snapshot each node last installed into its state machine.
        self.snapshots: dict[str, Snapshot] = {}
        self.read_states: dict[str, list[ReadState]] = {}
        self.dropped_reads: dict[str, list[int]] = {}
        #: Every message handed to a core, in order (the transcript).
        self.delivered: list[Message] = []
        #: Messages lost to a filter.
        self.lost: list[Message] = []
        self.in_flight: list[Message] = []
        self.filters: list[Filter] = []
        self._starts = 0
        # Safety checks.
        self.leaders_by_term: dict[int, str] = {}
        self.applied_at: dict[int, Entry] = {}
        for node_id in ids:
            storage = (storages or {}).get(node_id)
            if storage is None:
                storage = MemoryStorage(Snapshot(SnapshotMeta(0, 0, self.initial_membership)))
            self.storages[node_id] = storage
            self.start(node_id)

    # -- nodes ------------------------------------------------------------------

    def start(self, node_id: str, storage: MemoryStorage | None = None) -> RaftCore:
        """Start (or restart) ``node_id`` from what its disk holds."""
        if storage is not None:
            self.storages[node_id] = storage
        self._starts += 1
        rng = random.Random(f"{self.seed}/{node_id}/{self._starts}")
        core = RaftCore(node_id, self.storages[node_id], self.config, rng)
        self.cores[node_id] = core
        self.applied[node_id] = []
        self.read_states.setdefault(node_id, [])
        self.dropped_reads.setdefault(node_id, [])
        return core

    restart = start

    def crash(self, node_id: str) -> None:
        """Lose the core (its disk stays); messages to it are lost."""
        del self.cores[node_id]

    def leader(self) -> str:
        """The one live leader, by id."""
        leaders = [i for i, c in self.cores.items() if c.basic_status().role is Role.LEADER]
        assert len(leaders) == 1, f"expected one leader, found {leaders}"
        return leaders[0]

    # -- faults ---------------------------------------------------------------

    def drop(self, lose: Filter) -> Filter:
        """Lose every message for which ``lose(message)`` is true."""
        self.filters.append(lose)
        return lose

    def isolate(self, node_id: str) -> Filter:
        return self.drop(lambda m: node_id in (m.src, m.dst))

    def cut(self, a: str, b: str) -> Filter:
        return self.drop(lambda m: {m.src, m.dst} == {a, b})

    def heal(self, lose: Filter | None = None) -> None:
        """Remove one filter, or all of them."""
        if lose is None:
            self.filters.clear()
        else:
            self.filters.remove(lose)

    # -- time -------------------------------------------------------------------

    def tick(self, node_id: str, ticks: int = 1) -> None:
        """Let time pass on one node only; nothing is delivered."""
        for _ in range(ticks):
            self.cores[node_id].tick()

    def elapse(self, ticks: int, nodes: Iterable[str] | None = None) -> None:
        """Tick every live node (or ``nodes``) once, deliver everything;
        ``ticks`` times."""
        for _ in range(ticks):
            for node_id in sorted(nodes if nodes is not None else self.cores):
                if node_id in self.cores:
                    self.cores[node_id].tick()
            self.deliver_all()

    def time_out(self, node_id: str) -> None:
        """Tick ``node_id`` alone until its election timer fires and it
        starts an election (or pre-vote); nothing is delivered."""
        core = self.cores[node_id]
        for _ in range(self.config.election_ticks_max + 1):
            core.tick()
            status = core.status()
            if status.role is not Role.FOLLOWER and status.election_elapsed == 0:
                return
        raise AssertionError(f"{node_id} did not campaign")

    def campaign(self, node_id: str) -> None:
        """``node_id`` times out and campaigns; deliver until quiet."""
        self.time_out(node_id)
        self.deliver_all()

    def elect(self, node_id: str) -> RaftCore:
        """``node_id`` campaigns and wins; everything is delivered, so its
        no-op reaches every server that can be reached."""
        self.campaign(node_id)
        core = self.cores[node_id]
        role = core.basic_status().role
        assert role is Role.LEADER, f"{node_id} is {role}"
        return core

    # -- readies and messages -----------------------------------------------

    def take(self, node_id: str) -> Ready:
        """Handle one Ready of ``node_id`` (persist, apply, advance) and
        return it; its messages are NOT sent: hand them on with ``step`` or
        ``send`` (``ready.all_messages()``)."""
        core = self.cores[node_id]
        ready = take_ready(core, send=lambda message: None)
        if not ready.only_messages():
            persist(self.storages[node_id], ready)
            finish_ready(core, ready, send=lambda message: None, apply=lambda r: self.apply(node_id, r))
        return ready

    def apply(self, node_id: str, ready: Ready) -> None:
        """Step 4 for ``node_id``'s state machine: a list of the entries it
        applied, checked against every other node's."""
        if ready.snapshot is not None:
            self.snapshots[node_id] = ready.snapshot
        for entry in ready.committed_entries:
            seen = self.applied_at.setdefault(entry.index, entry)
            assert seen == entry, f"{node_id} applied {entry} where another applied {seen}"
            self.applied[node_id].append(entry)
        self.read_states[node_id].extend(ready.read_states)
        self.dropped_reads[node_id].extend(ready.dropped_reads)
        if ready.soft_state is not None and ready.soft_state.role is Role.LEADER:
            term = ready.soft_state.term
            seen_leader = self.leaders_by_term.setdefault(term, node_id)
            assert seen_leader == node_id, f"two leaders in term {term}: {seen_leader}, {node_id}"

    def ready(self, node_id: str) -> Ready:
        """Handle one Ready and send its messages."""
        ready = self.take(node_id)
        self.send(*ready.all_messages())
        return ready

    def send(self, *messages: Message) -> None:
        self.in_flight.extend(messages)

    def step(self, *messages: Message) -> None:
        """Hand messages straight to their destinations (no filters)."""
        for m in messages:
            if m.dst in self.cores:
                self.delivered.append(m)
                self.cores[m.dst].step(m)

    def deliver_all(self, max_rounds: int = 1000) -> None:
        """Handle every Ready and deliver every message, round after round,
        until nothing is left to do."""
        for _ in range(max_rounds):
            for node_id in sorted(self.cores):
                while node_id in self.cores and self.cores[node_id].has_ready():
                    self.ready(node_id)
            if not self.in_flight:
                return
            batch, self.in_flight = self.in_flight, []
            for m in batch:
                if any(lose(m) for lose in self.filters):
                    self.lost.append(m)
                else:
                    self.step(m)
        raise AssertionError("the network did not go quiet")
