"""DurableStorage behaves exactly like MemoryStorage, the model, through
any sequence of writes, closes, crashes and restarts.

Each rule does the same thing to both; after every step every read of the
LogStorage protocol must agree. A restart (clean or from a crash image)
swaps the DurableStorage for one recovered from disk, so whatever the cache
held and the disk did not shows up as a difference.

The writes keep the promises Raft keeps, which recovery holds the disk to
(a start that finds them broken is refused): the term never goes back, a
vote is never changed within its term, the commit index never goes back
nor beyond the log, and committed entries are never overwritten or
replaced by an older snapshot.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from raft_trio.core import Entry, EntryKind, HardState, Membership, MemoryStorage, Snapshot, SnapshotMeta
from raft_trio.storage import DurableStorage

from .helpers import INITIAL, MEMBERSHIP, assert_same, crash_image

OTHER_MEMBERSHIP = Membership.of({"n1": "http://n1", "n4": "http://n4"})

kinds = st.sampled_from(list(EntryKind))
payloads = st.binary(max_size=48)
votes = st.sampled_from([None, "n1", "n2", "n3"])
memberships = st.sampled_from([MEMBERSHIP, OTHER_MEMBERSHIP])


def _entries(data: st.DataObject, start: int, max_count: int = 6) -> list[Entry]:
    count = data.draw(st.integers(0, max_count), label="count")
    return [
        Entry(start + i, data.draw(st.integers(1, 6)), data.draw(kinds), data.draw(payloads))
        for i in range(count)
    ]


def _outcome_of(call: object, *args: object) -> type[BaseException] | None:
    try:
        call(*args)  # type: ignore[operator]
    except ValueError as exc:
        return type(exc)
    return None


class StorageMachine(RuleBasedStateMachine):
    keep_snapshots = 2

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="raft-storage-model-"))
        self.generation = 0
        self.path = self.root / "data0"
        self.model = MemoryStorage(INITIAL)
        self.storage = self._open()

    def _open(self) -> DurableStorage:
        return DurableStorage.open(
            self.path, "n1", "c1", initial_snapshot=INITIAL, keep_snapshots=self.keep_snapshots
        )

    def teardown(self) -> None:
        self.storage.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- writes -------------------------------------------------------------

    def _next_hard_state(self, data: st.DataObject, last: int) -> HardState:
        """A hard state that may follow the model's, with a log ending at ``last``."""
        now = self.model.hard_state()
        term = data.draw(st.integers(now.term, now.term + 2), label="term")
        vote = now.vote if term == now.term and now.vote is not None else data.draw(votes, label="vote")
        commit = data.draw(st.integers(now.commit, max(now.commit, last)), label="commit")
        return HardState(term, vote, commit)

    @rule(data=st.data())
    def set_hard_state(self, data: st.DataObject) -> None:
        hard_state = self._next_hard_state(data, self.model.last_index())
        self.model.set_hard_state(hard_state)
        self.storage.set_hard_state(hard_state)

    @rule(data=st.data())
    def append(self, data: st.DataObject) -> None:
        """Appends anywhere from inside the snapshot to one past the end,
        so overwrites truncate a suffix; sometimes leaves a gap (an error
        both must raise, changing nothing)."""
        first, last = self.model.first_index(), self.model.last_index()
        start = data.draw(st.integers(max(1, first - 3), last + 2), label="start")
        batch = _entries(data, start)
        # Committed entries are never overwritten.
        assume(not batch or start > self.model.hard_state().commit)
        expected = _outcome_of(self.model.append, batch)
        assert _outcome_of(self.storage.append, batch) == expected

    @rule(data=st.data())
    def persist(self, data: st.DataObject) -> None:
        """One Ready: maybe a leader's snapshot, maybe a hard state, and
        entries that fit after them, in one transaction."""
        snapshot = None
        snap_index = self.model.snapshot().meta.index
        last = self.model.last_index()
        if data.draw(st.booleans(), label="with snapshot"):
            index = data.draw(st.integers(max(0, snap_index - 1), last + 4), label="snapshot index")
            # A leader's snapshot below the commit index is never installed.
            assume(index <= snap_index or index >= self.model.hard_state().commit)
            snapshot = Snapshot(
                SnapshotMeta(index, data.draw(st.integers(1, 6)), data.draw(memberships)), b"s"
            )
            if index > snap_index:
                snap_index, last = index, index
        start = data.draw(st.integers(max(1, snap_index - 2), last + 1), label="start")
        batch = _entries(data, start)
        # Entries past the snapshot never overwrite committed ones.
        assume(
            not batch
            or batch[-1].index <= snap_index
            or max(start, snap_index + 1) > self.model.hard_state().commit
        )
        if snapshot is not None:
            self.model.apply_snapshot(snapshot)
        self.model.append(batch)
        hard_state = data.draw(st.none() | st.just(self._next_hard_state(data, self.model.last_index())))
        if hard_state is not None:
            self.model.set_hard_state(hard_state)
        self.storage.persist(hard_state, batch, snapshot)

    @rule(data=st.data())
    def compact(self, data: st.DataObject) -> None:
        """Compaction at, before or beyond the log's range, with the right
        term or (rarely) a wrong one; sometimes with the file staged ahead."""
        first, last = self.model.first_index(), self.model.last_index()
        index = data.draw(st.integers(max(0, first - 2), last + 1), label="compact index")
        if first - 1 <= index <= last and data.draw(st.integers(0, 9)) > 0:
            term = self.model.term(index)
        else:
            term = data.draw(st.integers(0, 7), label="term")
        snapshot = Snapshot(SnapshotMeta(index, term, data.draw(memberships)), data.draw(payloads))
        expected = _outcome_of(self.model.compact, snapshot)
        if expected is None and index >= first and data.draw(st.booleans(), label="stage"):
            self.storage.stage_snapshot(snapshot)
        assert _outcome_of(self.storage.compact, snapshot) == expected

    @rule(data=st.data())
    def apply_snapshot(self, data: st.DataObject) -> None:
        snap_index, last = self.model.snapshot().meta.index, self.model.last_index()
        index = data.draw(st.integers(max(0, snap_index - 1), last + 5), label="snapshot index")
        assume(index <= snap_index or index >= self.model.hard_state().commit)
        snapshot = Snapshot(
            SnapshotMeta(index, data.draw(st.integers(1, 6)), data.draw(memberships)), data.draw(payloads)
        )
        self.model.apply_snapshot(snapshot)
        self.storage.apply_snapshot(snapshot)

    # -- restarts -----------------------------------------------------------

    @rule()
    def close_and_reopen(self) -> None:
        self.storage.close()
        self.storage = self._open()

    @rule()
    def crash_and_restart(self) -> None:
        """Restart from the files as they are on disk now, WAL included,
        without a clean close."""
        self.generation += 1
        target = crash_image(self.path, self.root / f"data{self.generation}")
        self.storage.close()
        self.path = target
        self.storage = self._open()

    @precondition(lambda self: self.generation < 3)
    @rule()
    def reopen_twice(self) -> None:
        """Recovery is idempotent: a second start finds what the first did."""
        self.close_and_reopen()
        self.close_and_reopen()

    # -- the property ---------------------------------------------------------

    @invariant()
    def same_as_model(self) -> None:
        assert_same(self.model, self.storage)
        assert self.storage.log_bytes() == sum(
            e.size() for e in self.model.entries(self.model.first_index(), self.model.last_index() + 1)
        )


class KeepOneSnapshotMachine(StorageMachine):
    keep_snapshots = 1


_settings = settings(
    max_examples=80,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

TestDurableStorageMatchesModel = StorageMachine.TestCase
TestDurableStorageMatchesModel.settings = _settings
TestKeepOneSnapshot = KeepOneSnapshotMachine.TestCase
TestKeepOneSnapshot.settings = settings(_settings, max_examples=25)
