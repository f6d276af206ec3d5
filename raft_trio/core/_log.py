"""The Raft log as the core sees it: stable storage plus the unstable tail
(as etcd's ``log.go`` and ``log_unstable.go``).

Entries a node appends or receives sit in the unstable tail until the
runtime reports them durable (``stable_to``); a snapshot received from a
leader sits here until the runtime has installed it (``stable_snapshot``).

Invariants:
- ``applied <= committed <= last_index()``; ``committed`` never decreases.
- Indexes are contiguous from ``first_index()`` to ``last_index()``.
- The unstable tail starts at ``unstable_offset``; entries before it are in
  storage (or covered by a snapshot).
- A committed entry is never truncated (Log Matching plus Leader
  Completeness, §3.5 and §3.6): doing so raises ``AssertionError``.
"""

from __future__ import annotations

from ._storage import CompactedError, LogStorage, UnavailableError, limit_size
from ._types import Entry, Snapshot


class RaftLog:
    def __init__(self, storage: LogStorage) -> None:
        self.storage = storage
        self.unstable_entries: list[Entry] = []
        self.unstable_offset = storage.last_index() + 1
        #: A snapshot from the leader, not yet installed by the runtime.
        self.unstable_snapshot: Snapshot | None = None
        first = storage.first_index()
        # The commit index is volatile in Raft (Figure 3.1); the persisted
        # one only saves a restarted node a round trip. Never trust it past
        # the log actually recovered.
        self.committed = max(first - 1, min(storage.hard_state().commit, storage.last_index()))
        self.applied = first - 1

    def __repr__(self) -> str:
        return (
            f"RaftLog(first={self.first_index()}, last={self.last_index()}, "
            f"committed={self.committed}, applied={self.applied}, "
            f"unstable_offset={self.unstable_offset})"
        )

    # -- reading ------------------------------------------------------------

    def durable_commit(self) -> int | None:
        """The commit index as far as it holds for the log in storage: the
        entries before the unstable tail are there and are the ones this log
        holds (past it, storage may still hold entries a new leader
        replaced). None while a snapshot waits to be installed."""
        if self.unstable_snapshot is not None:
            return None
        return min(self.committed, self.unstable_offset - 1)

    def first_index(self) -> int:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.meta.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        if self.unstable_entries:
            return self.unstable_offset + len(self.unstable_entries) - 1
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.meta.index
        return self.storage.last_index()

    def last_term(self) -> int:
        term = self.term(self.last_index())
        assert term is not None
        return term

    def term(self, index: int) -> int | None:
        """Term at ``index``, or None if compacted away or beyond the log."""
        if self.unstable_entries and index >= self.unstable_offset:
            position = index - self.unstable_offset
            if position < len(self.unstable_entries):
                return self.unstable_entries[position].term
            return None
        snap = self.unstable_snapshot
        if snap is not None:
            return snap.meta.term if index == snap.meta.index else None
        try:
            return self.storage.term(index)
        except (CompactedError, UnavailableError):
            return None

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """§3.6.1: a log is at least as up-to-date as ours if its last term
        is higher, or equal with an index at least as high."""
        ours = self.last_term()
        return last_term > ours or (last_term == ours and last_index >= self.last_index())

    def entries(self, lo: int, hi: int | None = None, max_bytes: int | None = None) -> list[Entry]:
        """Entries [lo, hi) (to the end when ``hi`` is None), limited in size.
        Raises CompactedError if ``lo`` is before the first index."""
        if hi is None:
            hi = self.last_index() + 1
        if lo < self.first_index():
            raise CompactedError(lo)
        hi = min(hi, self.last_index() + 1)
        if lo >= hi:
            return []
        result: list[Entry] = []
        if lo < self.unstable_offset:
            stable_hi = min(hi, self.unstable_offset)
            result = self.storage.entries(lo, stable_hi, max_bytes)
            if len(result) < stable_hi - lo:
                return result  # size limit reached inside storage
        if hi > self.unstable_offset:
            start = max(lo, self.unstable_offset) - self.unstable_offset
            result = result + self.unstable_entries[start : hi - self.unstable_offset]
        return limit_size(result, max_bytes)

    def committed_entries_to_apply(self, max_bytes: int | None = None) -> list[Entry]:
        if self.applied >= self.committed:
            return []
        lo = max(self.applied + 1, self.first_index())
        return self.entries(lo, self.committed + 1, max_bytes)

    def has_entries_to_apply(self) -> bool:
        return self.committed > self.applied and self.unstable_snapshot is None

    # -- writing ------------------------------------------------------------

    def append(self, entries: list[Entry]) -> int:
        """Append entries that follow or replace the tail; returns the last
        index. The caller has checked that they fit (§3.5)."""
        if not entries:
            return self.last_index()
        after = entries[0].index
        assert after > self.committed, f"truncating committed entry {after} <= {self.committed}"
        self._truncate_and_append(entries)
        return self.last_index()

    def _truncate_and_append(self, entries: list[Entry]) -> None:
        first = entries[0].index
        end = self.unstable_offset + len(self.unstable_entries)
        if first == end:
            self.unstable_entries.extend(entries)
        elif first <= self.unstable_offset:
            # Replaces the whole unstable tail and maybe stable entries too:
            # storage truncates when these are persisted.
            self.unstable_offset = first
            self.unstable_entries = list(entries)
        else:
            keep = self.unstable_entries[: first - self.unstable_offset]
            self.unstable_entries = keep + list(entries)

    def maybe_append(
        self, prev_index: int, prev_term: int, commit: int, entries: tuple[Entry, ...]
    ) -> tuple[int, int] | None:
        """The follower side of AppendEntries (§3.5, Figure 3.1 receiver
        rules 2-5). Returns the last index known to match the leader's and
        the index from which entries were (re)written (0 if none were), or
        None if our log does not contain (prev_index, prev_term)."""
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        conflict = self._find_conflict(entries)
        if conflict:
            assert conflict > self.committed, (
                f"conflict at committed index {conflict} (committed {self.committed})"
            )
            self.append(list(entries[conflict - prev_index - 1 :]))
        self.commit_to(min(commit, last_new))
        return last_new, conflict

    def _find_conflict(self, entries: tuple[Entry, ...]) -> int:
        """Index of the first entry that is new or whose term differs from
        ours; 0 if we already hold them all."""
        for entry in entries:
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= ``index`` whose term is <= ``term``: every
        entry after it is known to differ (the leader's and follower's
        halves of the fast back-off, §5.3)."""
        while index > 0:
            ours = self.term(index)
            if ours is None or ours <= term:
                break
            index -= 1
        return index

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            assert index <= self.last_index(), f"commit {index} beyond last {self.last_index()}"
            self.committed = index

    def applied_to(self, index: int) -> None:
        assert index <= self.committed, f"applied {index} beyond committed {self.committed}"
        self.applied = max(self.applied, index)

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to (index, term) are durable: drop them from the
        unstable tail, unless they were replaced meanwhile."""
        if not self.unstable_entries or index < self.unstable_offset:
            return
        position = index - self.unstable_offset
        if position >= len(self.unstable_entries):
            return
        if self.unstable_entries[position].term != term:
            return
        del self.unstable_entries[: position + 1]
        self.unstable_offset = index + 1

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the log by a leader's snapshot (§5.3, InstallSnapshot
        receiver rule 7: discard the entire log)."""
        self.unstable_snapshot = snapshot
        self.unstable_entries = []
        self.unstable_offset = snapshot.meta.index + 1
        self.committed = snapshot.meta.index

    def stable_snapshot(self, index: int) -> None:
        """The runtime installed the snapshot at ``index``."""
        snap = self.unstable_snapshot
        if snap is not None and snap.meta.index == index:
            self.unstable_snapshot = None
            self.applied = max(self.applied, index)
