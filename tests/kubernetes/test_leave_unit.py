"""``raft-trio leave``'s question to the Kubernetes API, against a fake API
server: the pod's ordinal against the StatefulSet's ``spec.replicas``, with
the service-account token; every doubt is an error the hook treats as a
restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from raft_trio import schema
from raft_trio.cli.leave import LeaveError, Pod, desired_replicas, parse_pod

from .fake_api import FakeKubernetesApi

TOKEN = "service-account-token-of-the-test"


@pytest.fixture
def api() -> Iterator[FakeKubernetesApi]:
    with FakeKubernetesApi("raft", "node", replicas=3, token=TOKEN) as fake:
        yield fake


@pytest.mark.parametrize(
    ("name", "statefulset", "ordinal"),
    [("node-0", "node", 0), ("node-12", "node", 12), ("raft-node-3", "raft-node", 3)],
)
def test_a_pod_name_gives_its_statefulset_and_ordinal(name: str, statefulset: str, ordinal: int) -> None:
    assert parse_pod(name) == Pod(name, statefulset, ordinal)


@pytest.mark.parametrize("name", ["node", "node-", "node-01", "node-x", "7"])
def test_a_name_that_is_not_a_statefulset_pods_is_refused(name: str) -> None:
    with pytest.raises(LeaveError):
        parse_pod(name)


def test_a_pod_of_another_statefulset_is_refused() -> None:
    with pytest.raises(LeaveError, match="not a pod of the StatefulSet"):
        parse_pod("other-1", "node")


def test_replicas_come_from_the_statefulset_asked_with_the_service_account_token(
    api: FakeKubernetesApi, tmp_path: Path
) -> None:
    account = api.service_account(tmp_path / "sa")
    assert desired_replicas(api.url, account, None, parse_pod("node-4")) == 3
    api.replicas = 5
    assert desired_replicas(api.url, account, "raft", parse_pod("node-4")) == 5
    assert [(s.method, s.path, s.authorization) for s in api.seen] == [
        ("GET", "/apis/apps/v1/namespaces/raft/statefulsets/node", f"Bearer {TOKEN}")
    ] * 2


@pytest.mark.parametrize("status", [401, 403, 404, 500])
def test_an_api_that_does_not_answer_200_is_an_error(
    api: FakeKubernetesApi, tmp_path: Path, status: int
) -> None:
    api.force_status = status
    with pytest.raises(LeaveError, match=f"answered {status}"):
        desired_replicas(api.url, api.service_account(tmp_path / "sa"), None, parse_pod("node-2"))


def test_a_wrong_namespace_or_token_is_an_error(api: FakeKubernetesApi, tmp_path: Path) -> None:
    account = api.service_account(tmp_path / "sa")
    with pytest.raises(LeaveError, match="answered 404"):
        desired_replicas(api.url, account, "elsewhere", parse_pod("node-2"))
    (account / "token").write_text("stolen")
    with pytest.raises(LeaveError, match="answered 401"):
        desired_replicas(api.url, account, None, parse_pod("node-2"))
    (account / "token").unlink()
    with pytest.raises(LeaveError, match="no service-account token"):
        desired_replicas(api.url, account, None, parse_pod("node-2"))


def test_an_unreachable_api_is_an_error(tmp_path: Path) -> None:
    with FakeKubernetesApi("raft", "node", 3, TOKEN) as gone:
        url, account = gone.url, gone.service_account(tmp_path / "sa")
    with pytest.raises(LeaveError, match="did not answer"):
        desired_replicas(url, account, None, parse_pod("node-2"), timeout=1.0)


class StubNode:
    """A node's status as the hook reads it, without a node."""

    def __init__(self, members: list[str]) -> None:
        self.members = members

    def status(self, base: str | None = None) -> schema.Status:
        members = [schema.Member(m, f"http://{m}:9001", True) for m in self.members]
        return schema.Status("node-0", "leader", 1, "node-0", "http://node-0:9001", 5, 5, 5, members)


def test_on_a_scale_down_leadership_goes_only_to_pods_that_stay() -> None:
    """Scaling 5 -> 3 stops node-3 and node-4 together: the hook of either
    hands leadership only to node-0..node-2, never to the other leaver."""
    from raft_trio.cli.leave import _staying_members

    node = StubNode(["node-0", "node-1", "node-2", "node-3", "node-4", "other-0"])
    assert _staying_members(node, parse_pod("node-4"), replicas=3) == {"node-0", "node-1", "node-2"}  # type: ignore[arg-type]
    # Members that are not pods of this StatefulSet: let the leader choose.
    assert _staying_members(StubNode(["n1", "n2"]), parse_pod("node-4"), replicas=3) is None  # type: ignore[arg-type]
