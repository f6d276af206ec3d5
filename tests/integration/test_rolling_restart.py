"""Graceful shutdown with real processes: ``/readyz`` over HTTP, and a
rolling restart of a 3-node cluster under the load of 8 clients that fails
no write.

Each node in turn gets SIGTERM, is started again on the same data
directory, and the next one is stopped only once it answers ``/readyz``
with 200 (what Kubernetes' rolling update does with the readiness probe).
A stopping leader hands leadership over first, writes in flight at it
commit under the new leader and are answered before it exits, and a
stopping follower loses nothing either. The clients follow redirects and
retry what certainly had no effect (a 503 marked ``indeterminate: false``)
and connection errors, with idempotency keys (``raft_trio.testing.load``).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import pytest

from raft_trio.testing.load import WriteLoad

from .cluster import Cluster, as_written, describe, wait_until

CLIENTS = 8
RESTART_READY_S = 20.0


@pytest.mark.integration
def test_readyz_is_200_on_every_member_of_a_working_cluster_and_503_when_the_leader_goes_quiet(
    cluster: Cluster,
) -> None:
    cluster.wait_for_leader()

    def all_ready_with_one_leader() -> tuple[bool, dict[str, tuple[int, Any]]]:
        # Read again until one consistent view (a loaded machine may see an
        # election in between, with the tests' 300-600 ms timeouts).
        answers = {nid: cluster.readiness(nid) for nid in cluster.nodes}
        bodies = {nid: body for nid, (status, body) in answers.items() if status == 200}
        if len(bodies) != len(cluster.nodes):
            return False, answers
        leaders = {body["leader_id"] for body in bodies.values()}
        roles = sorted(body["role"] for body in bodies.values())
        return len(leaders) == 1 and roles == ["follower", "follower", "leader"], answers

    answers = wait_until(all_ready_with_one_leader, 15.0, "every node ready, agreeing on one leader")
    lid = next(nid for nid, (_, body) in answers.items() if body["role"] == "leader")
    assert all(body["ready"] is True and body["leader_id"] == lid for _, body in answers.values())
    # A follower whose leader has gone quiet is not ready: 503 with a reason.
    # The other follower is paused too, so that no new leader can be elected
    # (with it, the unready spell would last only until the next election,
    # a few milliseconds after the lease runs out).
    follower = next(nid for nid in cluster.nodes if nid != lid)
    others = [nid for nid in cluster.nodes if nid != follower]
    for nid in others:
        cluster[nid].pause()
    try:

        def unready() -> tuple[bool, tuple[int, Any]]:
            status, body = cluster.readiness(follower)
            return status == 503 and isinstance(body, dict) and body["ready"] is False, (status, body)

        status_body = wait_until(unready, 5.0, f"{follower} to report not ready")
        assert status_body[1]["reason"], status_body
    finally:
        for nid in others:
            cluster[nid].resume()


@pytest.mark.integration
def test_rolling_restart_under_load_fails_no_write(cluster: Cluster) -> None:
    c = cluster
    c.wait_for_leader()
    for nid in c.nodes:
        c.wait_ready(nid)
    load = WriteLoad([n.url for n in c.nodes.values()], clients=CLIENTS, prefix="roll")
    load.start()
    restarted: list[str] = []
    leaders_stopped = 0
    try:
        wait_until(lambda: (load.ok_count() >= 50, load.ok_count()), 15.0, "50 writes before the roll")
        # Highest first, as a StatefulSet rolls; the leader is among them.
        for nid in sorted(c.nodes, reverse=True):
            status = c.status(nid)
            leaders_stopped += status is not None and status["role"] == "leader"
            stopped_at = time.monotonic()
            code = c[nid].stop(grace=15.0)
            assert code == 0, f"{nid} exited with status {code}\n{c.tails()}"
            c[nid].start()
            c.wait_ready(nid, timeout=RESTART_READY_S)
            restarted.append(nid)
            # Writes go on between restarts, as in a rolling update.
            wait_until(
                partial(twenty_acked_since, load, stopped_at),
                10.0,
                f"writes acknowledged after {nid} came back",
            )
    finally:
        load.stop()
    summary = load.summary()
    print("\n".join(summary.lines()))
    assert not load.errors, load.errors
    assert restarted == sorted(c.nodes, reverse=True)
    assert leaders_stopped >= 1, "the roll never stopped a leader"
    problems = [f"{u.key}: {u.outcome}: {u.detail}" for u in load.unacked]
    assert summary.failed == 0 and summary.indeterminate == 0, problems[:10]
    assert summary.ok >= 100

    # Every acknowledged write is there, with its value and index (linearizable reads).
    lid, _ = c.wait_for_leader()
    wrong = []
    for ack in load.acks:
        r = c.follow.get(c.kv_url(lid, ack.key))
        if r.status_code != 200 or as_written(r.json()) != {
            "key": ack.key,
            "value": ack.value,
            "index": ack.index,
        }:
            wrong.append(describe(r))
    assert not wrong, f"{len(wrong)} of {len(load.acks)} acknowledged writes read back wrong: {wrong[:5]}"


def twenty_acked_since(load: WriteLoad, since: float) -> tuple[bool, int]:
    acked = load.acked_since(since)
    return acked >= 20, acked
