"""Whole clusters under faults, checked for Raft's safety properties.

Every run is seeded; a failure names its seed and the command that replays
it. The default run covers 500 seeds; ``-m soak`` runs 20,000.
"""

from __future__ import annotations

import pytest

from raft_trio.core import RaftCore

from .cluster import Cluster, FaultProfile, SafetyViolation


def run_mixed_faults(seed: int, ticks: int = 1200) -> Cluster:
    """3 or 5 nodes, every kind of fault, clients writing and reading."""
    size = 3 if seed % 2 == 0 else 5
    cluster = Cluster(seed, size=size, faults=FaultProfile(fault_rate=0.02))
    cluster.run(ticks)
    cluster.stabilize()
    return cluster


class KeepsLearners(RaftCore):
    """Never promotes a learner: the cluster keeps its lone voter."""

    def _maybe_promote_learner(self) -> None:
        return


CRASH_IN_FLIGHT = 0.01
FSYNC_DONE = 0.15


def run_lone_voter(seed: int, core_factory: type[RaftCore] = KeepsLearners, ticks: int = 1200) -> Cluster:
    """One voter and two learners, crashes often caught with a Ready in
    flight. A lone voter elects itself inside one tick, asking no one and
    writing nothing first, so its first Ready of a term carries the term
    and the appends of it together (the case of 12d1164)."""
    faults = FaultProfile(fault_rate=0.03, crash_in_flight=CRASH_IN_FLIGHT, fsync_done=FSYNC_DONE)
    cluster = Cluster(seed, size=3, faults=faults, core_factory=core_factory, voters=1)
    cluster.run(ticks)
    cluster.stabilize()
    return cluster


def run_wiped_readds(seed: int, ticks: int = 2000) -> Cluster:
    """Five members, removed, stopped and added again with empty disks,
    among crashes and partitions that leave removed members unaware of
    their removal (the case of a9467b5)."""
    faults = FaultProfile(fault_rate=0.08, wiped_readds=True)
    cluster = Cluster(seed, size=5, faults=faults)
    cluster.run(ticks)
    cluster.stabilize()
    return cluster


def replay_hint(seed: int) -> str:
    return f"replay with: pytest tests/sim/test_simulation.py --sim-seed {seed}"


def test_mixed_faults_keep_raft_safe(sim_seed: int) -> None:
    try:
        cluster = run_mixed_faults(sim_seed)
    except SafetyViolation as violation:
        pytest.fail(f"{violation}\n{replay_hint(sim_seed)}")
    except Exception as error:  # a core assertion is a failure of the run too
        raise AssertionError(f"seed {sim_seed} crashed: {error!r}\n{replay_hint(sim_seed)}") from error
    assert cluster.acked, f"seed {sim_seed}: no write was ever acknowledged"


def test_a_lone_voter_with_learners_keeps_raft_safe(lone_voter_seed: int) -> None:
    try:
        cluster = run_lone_voter(lone_voter_seed)
    except SafetyViolation as violation:
        pytest.fail(f"{violation}\n{replay_hint(lone_voter_seed)}")
    except Exception as error:
        raise AssertionError(
            f"seed {lone_voter_seed} crashed: {error!r}\n{replay_hint(lone_voter_seed)}"
        ) from error
    assert cluster.acked, f"seed {lone_voter_seed}: no write was ever acknowledged"


def test_members_added_again_with_wiped_disks_keep_raft_safe(readd_seed: int) -> None:
    try:
        cluster = run_wiped_readds(readd_seed)
    except SafetyViolation as violation:
        pytest.fail(f"{violation}\n{replay_hint(readd_seed)}")
    except Exception as error:
        raise AssertionError(f"seed {readd_seed} crashed: {error!r}\n{replay_hint(readd_seed)}") from error
    assert cluster.acked, f"seed {readd_seed}: no write was ever acknowledged"


@pytest.mark.soak
def test_soak(soak_seed: int) -> None:
    """The long run, on seeds the default run does not cover."""
    test_mixed_faults_keep_raft_safe(soak_seed + 1_000_000)


@pytest.mark.soak
def test_soak_wiped_readds(readd_soak_seed: int) -> None:
    test_members_added_again_with_wiped_disks_keep_raft_safe(readd_soak_seed + 1_000_000)
