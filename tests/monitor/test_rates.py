"""The chart's samples, pure: each node's commit rate since the previous
sample and each follower's lag behind the leader's commit index, with
explicit times; gaps where a node is unreachable; a bounded history."""

from __future__ import annotations

from raft_monitor import ClusterView
from raft_monitor._rates import RateSampler

from .helpers import URLS, report


def cluster_at(
    view: ClusterView, now: float, commits: dict[str, tuple[int, int]], leader: str = "n1"
) -> None:
    """Every node reports (commit, applied) in term 3 under ``leader``."""
    for node_id, (commit, applied) in commits.items():
        role = "leader" if node_id == leader else "follower"
        view.apply(
            URLS[node_id],
            report(
                "commit", node_id=node_id, role=role, term=3, leader_id=leader, commit=commit, applied=applied
            ),
            now,
        )


def seeded(*ids: str) -> ClusterView:
    view = ClusterView()
    for node_id in ids:
        view.add_source(URLS[node_id], 0.0, seed=True)
    return view


def test_rates_are_commits_per_second_since_the_previous_sample_and_lags_trail_the_leader() -> None:
    view = seeded("n1", "n2", "n3")
    sampler = RateSampler(wall_offset=1000.0)
    cluster_at(view, 0.0, {"n1": (10, 10), "n2": (10, 10), "n3": (8, 8)})
    first = sampler.sample(view, 0.0)
    assert first["at_ms"] == 1_000_000 and first["leader"] == "n1"
    assert {k: v["commit_rate"] for k, v in first["nodes"].items()} == {"n1": None, "n2": None, "n3": None}
    assert {k: v["lag"] for k, v in first["nodes"].items()} == {"n1": None, "n2": 0, "n3": 2}

    cluster_at(view, 0.4, {"n1": (60, 60), "n2": (55, 50), "n3": (20, 12)})
    second = sampler.sample(view, 0.5)
    assert {k: v["commit_rate"] for k, v in second["nodes"].items()} == {"n1": 100.0, "n2": 90.0, "n3": 24.0}
    assert {k: v["lag"] for k, v in second["nodes"].items()} == {"n1": None, "n2": 10, "n3": 48}
    assert sampler.history_json() == [first, second]


def test_an_unreachable_node_is_a_gap_and_a_quiet_cluster_commits_nothing() -> None:
    view = seeded("n1", "n2")
    sampler = RateSampler()
    cluster_at(view, 0.0, {"n1": (5, 5), "n2": (5, 5)})
    sampler.sample(view, 0.0)
    view.mark_unreachable(URLS["n2"], 0.2, "connection refused")
    quiet = sampler.sample(view, 0.5)["nodes"]
    assert quiet["n1"] == {"commit_rate": 0.0, "lag": None, "voter": None}
    assert quiet["n2"] == {"commit_rate": None, "lag": None, "voter": None}
    # Back: no rate until two samples saw it (none spans its absence).
    cluster_at(view, 0.7, {"n1": (9, 9), "n2": (9, 7)})
    back = sampler.sample(view, 1.0)["nodes"]
    assert back["n2"]["commit_rate"] is None and back["n2"]["lag"] == 2
    assert back["n1"]["commit_rate"] == 8.0


def test_no_leader_no_lag_and_the_history_is_bounded() -> None:
    view = seeded("n1")
    view.apply(
        URLS["n1"], report("status", node_id="n1", role="follower", term=1, leader_id=None, commit=3), 0.0
    )
    sampler = RateSampler(history=3)
    for i in range(5):
        sample = sampler.sample(view, float(i))
    assert sample["leader"] is None and sample["nodes"]["n1"]["lag"] is None
    assert [s["at_ms"] for s in sampler.history_json()] == [2000, 3000, 4000]
