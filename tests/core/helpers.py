"""A tiny deterministic network of sans-IO cores, so that tests read like
transcripts ("a times out and campaigns", "deliver everything", "isolate c").

Nothing here waits or reads a clock: time passes only when a test calls
``tick``, and messages move only when it calls ``deliver_all`` or ``step``.
Each node's "disk" is a :class:`MemoryStorage`; handling a Ready means
persist (snapshot, entries, hard state), then queue its messages, apply its
committed entries, then ``advance``, as the runtime must (``_ready.py``).
A crash keeps exactly what was persisted.

While it runs the network checks two of Raft's safety properties, so every
test checks them for free: at most one leader per term (Election Safety,
§3.4) and no two servers applying different entries at one index (State
Machine Safety, §3.6).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from raft_trio.core import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    HardState,
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

#: Small timing for tests: heartbeats every tick, elections after 10-20.
CONFIG = RaftConfig(election_ticks_min=10, election_ticks_max=20, heartbeat_ticks=1)


def config(**changes: object) -> RaftConfig:
    """CONFIG with some settings changed."""
    return dataclasses.replace(CONFIG, **changes)  # type: ignore[arg-type]


def url(node_id: str) -> str:
    return f"http://{node_id}"


def membership(voters: Iterable[str], learners: Iterable[str] = ()) -> Membership:
    members = [Member(v, url(v)) for v in voters]
    members += [Member(learner, url(learner), voter=False) for learner in learners]
    return Membership.of(members)


def storage_with_log(
    members: Membership, terms: list[int], *, term: int, vote: str | None = None, commit: int = 0
) -> MemoryStorage:
    """A disk holding a log whose entry ``i + 1`` has term ``terms[i]`` (the
    way the paper draws logs), and the given hard state."""
    storage = MemoryStorage(Snapshot(SnapshotMeta(0, 0, members)))
    storage.append([Entry(i + 1, t, data=f"{i + 1}@{t}".encode()) for i, t in enumerate(terms)])
    storage.set_hard_state(HardState(term, vote, commit))
    return storage


def log_of(storage: MemoryStorage) -> list[tuple[int, int]]:
    """The persisted log after the snapshot, as (index, term) pairs."""
    entries = storage.entries(storage.first_index(), storage.last_index() + 1)
    return [(e.index, e.term) for e in entries]


def terms_of(storage: MemoryStorage) -> list[int]:
    return [term for _, term in log_of(storage)]


Filter = Callable[[Message], bool]


class Network:
    """Cores by id, their disks, and the messages between them.

    ``deliver_all`` is the only place messages move on their own; a test
    that wants to look at one Ready takes it with ``take`` and hands
    messages over itself with ``step``.
    """

    def __init__(
        self,
        ids: Iterable[str] = ("a", "b", "c"),
        *,
        config: RaftConfig = CONFIG,
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
        leaders = [i for i, c in self.cores.items() if c.role is Role.LEADER]
        assert len(leaders) == 1, f"expected one leader, found {leaders}"
        return leaders[0]

    def log(self, node_id: str) -> list[tuple[int, int]]:
        return log_of(self.storages[node_id])

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
            if core.role is not Role.FOLLOWER and core.election_elapsed == 0:
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
        assert core.role is Role.LEADER, f"{node_id} is {core.role}"
        return core

    # -- readies and messages -----------------------------------------------

    def take(self, node_id: str) -> Ready:
        """Handle one Ready of ``node_id`` (persist, apply, advance) and
        return it; its messages are NOT sent: hand them on with ``step`` or
        ``send``."""
        core = self.cores[node_id]
        ready = core.ready()
        storage = self.storages[node_id]
        if ready.snapshot is not None:
            storage.apply_snapshot(ready.snapshot)
            self.snapshots[node_id] = ready.snapshot
        if ready.entries:
            storage.append(ready.entries)
        if ready.hard_state is not None:
            storage.set_hard_state(ready.hard_state)
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
        core.advance(ready)
        return ready

    def ready(self, node_id: str) -> Ready:
        """Handle one Ready and send its messages."""
        ready = self.take(node_id)
        self.send(*ready.messages)
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

    # -- transcript queries -------------------------------------------------

    def sent(self, kind: type[Any], src: str | None = None, dst: str | None = None) -> list[Any]:
        """Delivered messages of ``kind``, optionally from ``src`` to ``dst``."""
        return [
            m for m in self.delivered if isinstance(m, kind) and src in (None, m.src) and dst in (None, m.dst)
        ]

    def rejections(self, src: str, dst: str) -> list[AppendEntriesResponse]:
        """AppendEntries rejections ``src`` sent to ``dst``."""
        return [m for m in self.sent(AppendEntriesResponse, src, dst) if not m.success]

    def appends(self, src: str, dst: str) -> list[AppendEntries]:
        return self.sent(AppendEntries, src, dst)


M = TypeVar("M")


def only(messages: Iterable[Message], kind: type[M]) -> list[M]:
    """``messages``, each of which must be a ``kind``."""
    listed = list(messages)
    assert all(isinstance(m, kind) for m in listed), listed
    return [m for m in listed if isinstance(m, kind)]


def of_type(messages: Iterable[Message], kind: type[Any], dst: str | None = None) -> list[Any]:
    """The messages of ``kind`` (to ``dst``) among ``messages``."""
    return [m for m in messages if isinstance(m, kind) and dst in (None, m.dst)]
