"""A clean stop records the commit index it knows, but only as far as it
holds for the log on disk: the core's commit may stand on entries it holds
only in memory, which replaced conflicting entries the disk still has. A
review found the stop making those never-committed entries committed on
disk, and the next start applying them (RaftCore.durable_commit)."""

from __future__ import annotations

import random
from pathlib import Path

from raft_trio.core import AppendEntries, HardState, RaftConfig, RaftCore

from .helpers import entries, open_storage


def test_a_stop_never_commits_entries_the_leader_replaced(tmp_path: Path) -> None:
    storage = open_storage(tmp_path)
    # n1 followed the leader of term 2, which appended 5..9 and lost its
    # leadership before committing them.
    old = entries(1, 5, term=1) + entries(5, 10, term=2)
    storage.write_to_disk(HardState(2, "n2", 4), old, None)
    storage.apply_to_cache(HardState(2, "n2", 4), old, None)
    core = RaftCore("n1", storage, RaftConfig(), random.Random(0))
    # The leader of term 3 replaces 5.. and says 12 is committed; its Ready
    # is not persisted yet (a previous fsync is still running) when the
    # node stops.
    core.step(
        AppendEntries(
            3, "n3", "n1", prev_index=4, prev_term=1, entries=tuple(entries(5, 13, term=3)), commit=12
        )
    )
    assert core.basic_status().commit == 12
    assert core.durable_commit() == 4
    storage.close(core.durable_commit())

    reopened = open_storage(tmp_path)
    try:
        commit = reopened.hard_state().commit
        restarted = RaftCore("n1", reopened, RaftConfig(), random.Random(0))
        applied = [(e.index, e.term) for e in restarted.ready().committed_entries]
        assert (5, 2) not in applied, f"the restart applies entries no leader committed: {applied}"
        committed_terms = [e.term for e in reopened.entries(1, commit + 1)]
        assert 2 not in committed_terms, (
            f"commit {commit} on disk covers entries of term 2 the leader of term 3 replaced: {committed_terms}"
        )
    finally:
        reopened.close()
