"""The simulator's checks can fail: plant a known bug in the core and show
that the simulator finds it within its seed budget.

Each buggy core is the real core with one safety rule removed; the same
seeds pass with the real core (``test_simulation.py`` runs them).
"""

from __future__ import annotations

import pytest

from raft_trio.core import (
    AppendEntries,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    RaftCore,
    ReadState,
    RequestVote,
    TimeoutNow,
)

from . import cluster as cluster_module
from .cluster import Cluster, FaultProfile, SafetyViolation
from .test_simulation import KeepsLearners, run_lone_voter


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
        self._read_states.append(ReadState(request_id, self._log.committed))


class CampaignsInsideTheLease(RaftCore):
    """Takes a refused leader for dead at once: its turn ignores the lease
    it promised (§4.2.3)."""

    def report_refused(self, node_id: str) -> bool:
        moved = super().report_refused(node_id)
        if moved:
            self._randomized_election_timeout = self._election_elapsed + 1
        return moved


class CampaignsWhenTold(RaftCore):
    """Campaigns the moment it hears that its leader refuses, lease or not."""

    def report_refused(self, node_id: str) -> bool:
        moved = super().report_refused(node_id)
        if moved:
            self._campaign(transfer=False)
        return moved


class TakesItsQuietTurnInsideTheLease(RaftCore):
    """Gives up on a quiet leader halfway through the lease it promised,
    and campaigns at once (quiet_leader_turns counted from the wrong end)."""

    def _tick_election(self) -> None:
        half = self._config.election_ticks_min // 2
        if self._promotable() and self._turn_due() and self._election_elapsed + 1 >= half:
            self._randomized_election_timeout = self._election_elapsed + 1
            self._timer_is_a_turn = True
        super()._tick_election()


class GrantsVotesInsideTheLease(RaftCore):
    """Ignores the leader lease when asked for a vote (§4.2.3)."""

    def _in_leader_lease(self) -> bool:
        return False


class GrantsPreVotesInsideTheLease(RaftCore):
    """Ignores the leader lease when asked for a pre-vote only (§4.2.3,
    §9.6): a real vote is still refused, so nothing it changes shows it."""

    _asked_pre_vote = False

    def step(self, m: Message) -> None:
        self._asked_pre_vote = isinstance(m, RequestVote) and m.pre_vote
        try:
            super().step(m)
        finally:
            self._asked_pre_vote = False

    def _in_leader_lease(self) -> bool:
        return not self._asked_pre_vote and super()._in_leader_lease()


class SendsBeforeItsTermIsDurable(KeepsLearners):
    """A leader's appends and heartbeats leave before its fsync whatever
    their term (the rule before 12d1164): a lone voter's first Ready of a
    term sends that term's entries while the term is not yet durable."""

    def _send(self, message: Message) -> None:
        at_once = (AppendEntries, Heartbeat, InstallSnapshot, TimeoutNow, HeartbeatResponse)
        if isinstance(message, at_once):
            self._messages.append(message)
        else:
            self._messages_after_persist.append(message)


def first_violation(core_factory: type[RaftCore], seeds: range, faults: FaultProfile) -> str | None:
    """The first violation the simulator reports over ``seeds``, or None."""
    for seed in seeds:
        cluster = Cluster(seed, size=3 + 2 * (seed % 2), core_factory=core_factory, faults=faults)
        try:
            cluster.run(1200)
            cluster.stabilize()
        except SafetyViolation as violation:
            return str(violation)
        except AssertionError as error:  # the core's own invariants tripped
            return f"seed {seed}: core assertion: {error}"
    return None


def test_votes_without_log_check_are_caught() -> None:
    found = first_violation(VotesWithoutLogCheck, range(50), FaultProfile(fault_rate=0.02))
    assert found is not None, "granting votes to stale logs went unnoticed"


def test_commit_of_older_term_entries_is_caught() -> None:
    found = first_violation(CommitsOlderTerms, range(60), FaultProfile(fault_rate=0.02))
    assert found is not None, "committing older-term entries by counting went unnoticed"


def test_reads_without_quorum_are_caught_as_stale_reads() -> None:
    partitions_and_pauses = FaultProfile(
        fault_rate=0.05, crash=False, membership=False, transfer=False, compaction=False
    )
    # A stale read needs a partitioned leader to serve a read after the
    # other side committed a write: about one seed in forty shows one
    # (30 of 1,200 seeds measured, with and without the PROBE fix of
    # c51d88e), so 300 seeds miss it with a chance under 1 in 1,000; the
    # search stops at the first.
    found = first_violation(ReadsWithoutQuorum, range(300), partitions_and_pauses)
    assert found is not None and "stale read" in found, found


def test_campaigns_inside_the_lease_are_caught() -> None:
    for planted in (CampaignsInsideTheLease, CampaignsWhenTold, TakesItsQuietTurnInsideTheLease):
        found = first_violation(planted, range(20), FaultProfile(fault_rate=0.02))
        assert found is not None and "leader lease" in found, f"{planted.__name__}: {found}"


def test_votes_inside_the_lease_are_caught() -> None:
    found = first_violation(GrantsVotesInsideTheLease, range(60), FaultProfile(fault_rate=0.02))
    assert found is not None and "leader lease" in found, found


def test_pre_votes_inside_the_lease_are_caught() -> None:
    found = first_violation(GrantsPreVotesInsideTheLease, range(60), FaultProfile(fault_rate=0.02))
    assert found is not None and "a pre-vote" in found, found


def first_lone_voter_violation(core_factory: type[RaftCore], seeds: range) -> str | None:
    for seed in seeds:
        try:
            run_lone_voter(seed, core_factory)
        except SafetyViolation as violation:
            return str(violation)
    return None


def test_a_lone_voters_appends_before_its_term_is_durable_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The crash that 12d1164 fixed: the voter restarts in its old term,
    leads the same term again and writes other entries at indexes a
    learner already took from it. The simulator checks the rule itself
    (a leader's message never outruns its durable term), which the first
    seed breaks; without that check, the disks' Log Matching check still
    catches what it leads to, in about one seed in twenty (15 of 300
    measured), so 300 seeds miss it with a chance under 1 in a million."""
    found = first_lone_voter_violation(SendsBeforeItsTermIsDurable, range(300))
    assert found is not None and "not yet durable" in found, found
    monkeypatch.setattr(cluster_module, "_LEADERS_MESSAGES", ())
    found = first_lone_voter_violation(SendsBeforeItsTermIsDurable, range(300))
    assert found is not None, "a lone voter's appends of a term not yet durable went unnoticed"
    assert "log matching" in found or "state machine safety" in found, found
