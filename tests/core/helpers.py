"""The core's tests drive an in-memory cluster
(:class:`raft_trio.testing.memory.MemoryCluster`: nothing waits or reads a
clock, time passes only when a test calls ``tick``, messages move only when
it calls ``deliver_all`` or ``step``, and Election Safety and State Machine
Safety are checked as it runs), with small timing, logs drawn the way the
paper draws them, and queries over the transcript.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

from raft_trio.core import (
    AppendEntries,
    AppendEntriesResponse,
    CompactedError,
    Entry,
    HardState,
    Membership,
    MemoryStorage,
    Message,
    RaftConfig,
    Snapshot,
    SnapshotMeta,
    UnavailableError,
)
from raft_trio.testing.memory import MemoryCluster
from raft_trio.testing.memory import membership as membership
from raft_trio.testing.memory import url as url

#: Small timing for tests: heartbeats every tick, elections after 10-20.
CONFIG = RaftConfig(election_ticks_min=10, election_ticks_max=20, heartbeat_ticks=1)


def config(**changes: object) -> RaftConfig:
    """CONFIG with some settings changed."""
    return dataclasses.replace(CONFIG, **changes)  # type: ignore[arg-type]


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


def term_at(storage: MemoryStorage, index: int) -> int | None:
    """The term of the persisted entry at ``index``, or None if there is
    none (or it is compacted away)."""
    try:
        return storage.term(index)
    except (CompactedError, UnavailableError):
        return None


def terms_of(storage: MemoryStorage) -> list[int]:
    return [term for _, term in log_of(storage)]


class Network(MemoryCluster):
    """raft_trio.testing's in-memory cluster with the test timing, and
    queries over its transcript."""

    def __init__(
        self,
        ids: Iterable[str] = ("a", "b", "c"),
        *,
        config: RaftConfig = CONFIG,
        seed: int = 0,
        learners: Iterable[str] = (),
        storages: dict[str, MemoryStorage] | None = None,
    ) -> None:
        super().__init__(ids, config=config, seed=seed, learners=learners, storages=storages)

    def log(self, node_id: str) -> list[tuple[int, int]]:
        return log_of(self.storages[node_id])

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
