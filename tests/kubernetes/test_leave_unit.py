"""``raft-trio leave``'s question to the Kubernetes API, against a fake API
server: the pod's ordinal against the StatefulSet's ``spec.replicas``, with
the service-account token; every doubt is an error the hook treats as a
restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from raft_trio.leave import LeaveError, Pod, desired_replicas, parse_pod

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
