"""A voter's late first start, with real processes: n1 and n2 form the
cluster before n3 ever runs. n3's data directory is new and the cluster
lists it as a voter that has not started, which is also how a voter wiped
in its first moment looks; so n3 waits until every voter answers and
starts past every term they hold; or, when a voter is down and the
operator says it never ran (--never-ran), past the terms of those that
answer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from raft_trio.testing.waiting import wait_until

from .cluster import Cluster
from .conftest import ClusterFactory


@pytest.mark.integration
def test_a_late_voter_waits_for_every_voter_then_starts_past_their_terms(
    tmp_path: Path, make_cluster: ClusterFactory
) -> None:
    c = Cluster(tmp_path / "late", "late")
    make_cluster.clusters.append(c)  # closed, and its logs reported, with the rest (not started)
    c["n1"].start()
    c["n2"].start()
    _, term = c.wait_for_leader(["n1", "n2"])
    written = c.write("before-n3", "1")
    assert c["n2"].stop() == 0

    c["n3"].start()
    wait_until(
        lambda: ("waiting for n2 to answer" in c["n3"].log_text(), c["n3"].log_tail()),
        30,
        "n3 to wait for n2",
    )
    waiting = c.status("n3")
    assert waiting is not None and waiting.get("first_start") is not None, waiting

    c["n2"].start()
    c.wait_caught_up("n3", written["index"])
    started = re.search(r"first start: bootstrap: .* starting at term (\d+)", c["n3"].log_text())
    assert started is not None, c["n3"].log_tail()
    floor = int(started.group(1))
    assert floor >= term
    status = c.status("n3")
    assert status is not None and status["term"] >= floor
    assert c.get("n3", "before-n3", stale=True).json()["value"] == "1"


@pytest.mark.integration
def test_a_late_voter_the_operator_says_never_ran_starts_while_a_voter_is_down(
    tmp_path: Path, make_cluster: ClusterFactory
) -> None:
    c = Cluster(tmp_path / "down", "down")
    make_cluster.clusters.append(c)
    c["n1"].start()
    c["n2"].start()
    c.wait_for_leader(["n1", "n2"])
    written = c.write("before-n3", "1")
    assert c["n2"].stop() == 0  # down for good: n1 alone has no quorum

    c["n3"].args = [*c["n3"].args, "--never-ran"]
    c["n3"].start()
    c.wait_for_leader(["n1", "n3"])
    c.wait_caught_up("n3", written["index"])
    assert "starting at term" in c["n3"].log_text()
    c.write("after-n3", "2")
