"""``raft-trio leave``, the preStop hook, against a real 3-node cluster and
a fake Kubernetes API: on a restart (ordinal below ``spec.replicas``) the
leader only hands leadership over and every member stays; on a scale-down
the departing leader hands over, then removes itself, so the cluster goes
on with two voters once it stops. Membership changes and the transfer carry
the admin token from ``RAFT_ADMIN_TOKEN``; without it the nodes refuse them.

The nodes' ids are n1..n3; the hook is told the pod name (``node-2``, the
StatefulSet's highest ordinal of three) and the member id (``n3``) apart.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..kubernetes.fake_api import FakeKubernetesApi
from .cluster import Cluster, cli_command, describe

SA_TOKEN = "service-account-token-of-the-test"
ADMIN_TOKEN = "admin-token-for-the-leave-test"


@pytest.fixture
def api() -> Iterator[FakeKubernetesApi]:
    with FakeKubernetesApi("raft", "node", replicas=3, token=SA_TOKEN) as fake:
        yield fake


@pytest.fixture
def secured(make_cluster: Callable[..., Cluster]) -> Cluster:
    return make_cluster("leave", env={"RAFT_ADMIN_TOKEN": ADMIN_TOKEN})


def leave(
    c: Cluster, api: FakeKubernetesApi, tmp: Path, node_id: str, pod: str, token: str | None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "RAFT_ADMIN"))}
    if token is not None:
        env["RAFT_ADMIN_TOKEN"] = token
    argv = [
        *cli_command(), "leave", "--pod", pod, "--id", node_id,
        "--cluster", c[node_id].url, "--kube-api", api.url,
        "--serviceaccount", str(api.service_account(tmp / "serviceaccount")), "--timeout", "10",
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)


def make_leader(c: Cluster, node_id: str) -> int:
    lid, _ = c.wait_for_leader()
    if lid != node_id:
        r = c.follow.post(
            c[lid].url + "/api/leadership/transfer",
            json={"to": node_id},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert r.status_code == 200, describe(r)
    new, term = c.wait_for_leader()
    assert new == node_id
    return term


def voters(c: Cluster, node_id: str) -> list[str]:
    status = c.status(node_id)
    assert status is not None
    return sorted(m["id"] for m in status["members"] if m["voter"])


@pytest.mark.integration
def test_on_a_restart_the_hook_hands_leadership_over_and_the_member_stays(
    secured: Cluster, api: FakeKubernetesApi, tmp_path: Path
) -> None:
    c = secured
    term = make_leader(c, "n3")
    done = leave(c, api, tmp_path, "n3", "node-2", ADMIN_TOKEN)
    assert done.returncode == 0, done.stderr
    assert "a restart, staying a member" in done.stderr, done.stderr
    assert [(s.path, s.authorization) for s in api.seen] == [(api.path, f"Bearer {SA_TOKEN}")]
    new, new_term = c.wait_for_leader()
    assert new != "n3" and new_term == term + 1  # TimeoutNow: one term, no election timeout
    assert f"handed leadership to {new}" in done.stderr, done.stderr
    assert voters(c, new) == ["n1", "n2", "n3"]
    # A follower's hook changes nothing at all.
    again = leave(c, api, tmp_path, "n3", "node-2", ADMIN_TOKEN)
    assert again.returncode == 0 and "handed" not in again.stderr, again.stderr
    assert c.wait_for_leader() == (new, new_term)


@pytest.mark.integration
def test_on_a_scale_down_the_leader_hands_over_then_leaves_and_the_rest_go_on(
    secured: Cluster, api: FakeKubernetesApi, tmp_path: Path
) -> None:
    c = secured
    make_leader(c, "n3")
    c.write("before-scale-down", "x")
    api.replicas = 2  # kubectl scale statefulset node --replicas=2: node-2 departs

    refused = leave(c, api, tmp_path, "n3", "node-2", token=None)
    assert refused.returncode == 1, refused.stderr
    assert "refused: 401" in refused.stderr, refused.stderr
    lid, _ = c.wait_for_leader()
    assert voters(c, lid) == ["n1", "n2", "n3"]  # nothing removed without the admin token

    if lid != "n3":
        make_leader(c, "n3")
    done = leave(c, api, tmp_path, "n3", "node-2", ADMIN_TOKEN)
    assert done.returncode == 0, done.stderr
    assert "a scale-down, leaving the cluster" in done.stderr, done.stderr
    assert "removed n3 from the cluster at index" in done.stderr, done.stderr
    new, _ = c.wait_for_leader(["n1", "n2"])
    assert voters(c, new) == ["n1", "n2"]
    assert "n3" not in {m["id"] for m in (c.status(new) or {"members": []})["members"]}

    # The pod then gets SIGTERM: it stops cleanly, and the two that stay
    # are a whole cluster (a quorum of 2), not 2 of 3 with a dead voter.
    assert c["n3"].stop(grace=10.0) == 0
    body: dict[str, Any] = c.write("after-scale-down", "y")
    assert c.follow.get(c.kv_url(new, "before-scale-down")).json()["value"] == "x"
    assert body["value"] == "y"
    c["n1"].kill()
    # Without n3 as a voter, n2 alone is no majority: nothing commits (the
    # removal really happened; with n3 still counted, it would not either,
    # so check the membership on n2 itself).
    assert voters(c, "n2") == ["n1", "n2"]
