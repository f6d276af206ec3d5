"""The core's view of stable storage, and an in-memory implementation.

The core only reads stable storage; the runtime writes it while handling a
``Ready`` (persist first, then send, then apply) and the core learns in
``advance()`` what became stable. This is etcd's ``Storage`` contract. The
durable implementation lives in ``raft_trio.storage``; :class:`MemoryStorage`
serves the tests and the simulator, where "crash" means "keep only what was
written here".

Invariant: storage holds a snapshot at ``first_index() - 1`` and every entry
from ``first_index()`` to ``last_index()``, contiguous.
"""

from __future__ import annotations

from typing import Protocol

from ._types import Entry, EntryKind, HardState, Snapshot


class CompactedError(LookupError):
    """The requested index lies before the first index still in the log."""


class UnavailableError(LookupError):
    """The requested index lies after the last index in the log."""


class LogStorage(Protocol):
    def hard_state(self) -> HardState: ...

    def snapshot(self) -> Snapshot:
        """The latest snapshot (empty, index 0, if none)."""
        ...

    def first_index(self) -> int:
        """Index of the first entry still stored (snapshot index + 1)."""
        ...

    def last_index(self) -> int:
        """Index of the last stored entry (the snapshot's if there is none)."""
        ...

    def term(self, index: int) -> int:
        """Term of the entry at ``index``; the snapshot's term at its index.
        Raises CompactedError or UnavailableError outside that range."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries [lo, hi), at least one if the range is not empty, then
        as many as fit in ``max_bytes``."""
        ...

    def config_entries(self) -> list[Entry]:
        """Every CONFIG entry after the snapshot, in index order: the core
        rebuilds its configuration history from them on restart."""
        ...


class MemoryStorage:
    """LogStorage held in memory, plus the write side the runtime uses."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self._hard_state = HardState()
        self._snapshot = snapshot or Snapshot()
        self._entries: list[Entry] = []  # index = snapshot.meta.index + 1 + position

    # -- read side (LogStorage) -------------------------------------------

    def hard_state(self) -> HardState:
        return self._hard_state

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def first_index(self) -> int:
        return self._snapshot.meta.index + 1

    def last_index(self) -> int:
        return self._snapshot.meta.index + len(self._entries)

    def term(self, index: int) -> int:
        offset = self._snapshot.meta.index
        if index < offset:
            raise CompactedError(index)
        if index == offset:
            return self._snapshot.meta.term
        if index > self.last_index():
            raise UnavailableError(index)
        return self._entries[index - offset - 1].term

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        if lo < self.first_index():
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise UnavailableError(hi)
        offset = self._snapshot.meta.index + 1
        start, stop = lo - offset, hi - offset
        if max_bytes is not None:
            # Find the size limit before slicing: a slice of a long log is a
            # copy, and the caller may want a few entries out of a million.
            total = 0
            for position in range(start, stop):
                total += self._entries[position].size()
                if total > max_bytes and position > start:
                    stop = position
                    break
        return self._entries[start:stop]

    def config_entries(self) -> list[Entry]:
        return [e for e in self._entries if e.kind is EntryKind.CONFIG]

    # -- write side ---------------------------------------------------------

    def set_hard_state(self, hard_state: HardState) -> None:
        self._hard_state = hard_state

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Append ``entries``, first replacing any stored suffix that starts
        at or after the first new index (a follower's log truncation)."""
        if not entries:
            return
        first = entries[0].index
        if first < self.first_index():
            # Entries already covered by the snapshot: keep only the rest.
            entries = [e for e in entries if e.index >= self.first_index()]
            if not entries:
                return
            first = entries[0].index
        if first > self.last_index() + 1:
            raise ValueError(f"gap in log: appending {first} after {self.last_index()}")
        del self._entries[first - self.first_index() :]
        self._entries.extend(entries)

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the whole log by ``snapshot`` (a follower installing the
        leader's snapshot: its own log did not match at that index)."""
        if snapshot.meta.index <= self._snapshot.meta.index:
            return
        self._snapshot = snapshot
        self._entries = []

    def compact(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` (taken from this node's own state machine) and
        drop the entries it covers."""
        index = snapshot.meta.index
        if index <= self._snapshot.meta.index:
            return
        if index > self.last_index():
            raise ValueError(f"cannot compact to {index} beyond last index {self.last_index()}")
        if self.term(index) != snapshot.meta.term:
            raise ValueError(f"snapshot term {snapshot.meta.term} differs from log at {index}")
        del self._entries[: index - self.first_index() + 1]
        self._snapshot = snapshot


def limit_size(entries: list[Entry], max_bytes: int | None) -> list[Entry]:
    """The longest prefix of ``entries`` within ``max_bytes``, but never
    empty when ``entries`` is not: one entry always makes progress."""
    if max_bytes is None or len(entries) <= 1:
        return entries
    total = 0
    for count, entry in enumerate(entries):
        total += entry.size()
        if total > max_bytes and count > 0:
            return entries[:count]
    return entries
