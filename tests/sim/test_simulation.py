"""Whole clusters under faults, checked for Raft's safety properties.

Every run is seeded; a failure names its seed and the command that replays
it. The default run covers 500 seeds; ``-m soak`` runs 20,000.
"""

from __future__ import annotations

import pytest

from .cluster import Cluster, FaultProfile, SafetyViolation


def run_mixed_faults(seed: int, ticks: int = 1200) -> Cluster:
    """3 or 5 nodes, every kind of fault, clients writing and reading."""
    size = 3 if seed % 2 == 0 else 5
    cluster = Cluster(seed, size=size, faults=FaultProfile(fault_rate=0.02))
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


@pytest.mark.soak
def test_soak(soak_seed: int) -> None:
    """The long run, on seeds the default run does not cover."""
    test_mixed_faults_keep_raft_safe(soak_seed + 1_000_000)
