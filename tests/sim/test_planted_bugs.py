"""The simulator's checks can fail: plant a known bug in the core and show
that the simulator finds it within its seed budget.

Each buggy core is the real core with one safety rule removed.
"""

from __future__ import annotations

from raft_trio.core import RaftCore, ReadState, RequestVote

from .cluster import Cluster, FaultProfile, SafetyViolation


class VotesWithoutLogCheck(RaftCore):
    """Grants votes without the up-to-date check of §3.6.1."""

    def _log_ok_for_vote(self, m: RequestVote) -> bool:
        return True


class CommitsOlderTerms(RaftCore):
    """Commits entries of older terms by counting replicas (Figure 3.7)."""

    def _may_commit_by_counting(self, index: int) -> bool:
        return True


class ReadsWithoutQuorum(RaftCore):
    """Serves read-index requests without confirming leadership (§6.4)."""

    def _enqueue_read(self, request_id: int) -> None:
        self._read_states.append(ReadState(request_id, self.log.committed))


def first_failing_seed(core_factory: type[RaftCore], seeds: range, **faults: object) -> int | None:
    for seed in seeds:
        cluster = Cluster(seed, size=3 + 2 * (seed % 2), core_factory=core_factory,
                          faults=FaultProfile(**faults))  # type: ignore[arg-type]
        try:
            cluster.run(1200)
            cluster.stabilize()
        except (SafetyViolation, AssertionError):
            return seed
    return None
