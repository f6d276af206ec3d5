"""A node's own credential (made from the cluster secret): it proves "a
node of this cluster" for a minute, and with auth on it reads the status
and the member list of another node, nothing else."""

from __future__ import annotations

import httpx
import pytest

from raft_trio.security import NODE_CREDENTIAL_MAX_SKEW_S, Security

from .auth_support import served_node, set_up_users

SECRET = b"a-cluster-secret-for-tests"
NOW = 1_800_000_000.0


def test_a_credential_names_its_node_while_fresh() -> None:
    security = Security(cluster_secret=SECRET)
    credential = security.node_credential("n2", NOW)
    assert credential is not None
    assert security.credential_node(credential, NOW) == "n2"
    assert security.credential_node(credential, NOW + NODE_CREDENTIAL_MAX_SKEW_S) == "n2"
    assert security.credential_node(credential, NOW + NODE_CREDENTIAL_MAX_SKEW_S + 1) is None
    assert security.credential_node(credential, NOW - NODE_CREDENTIAL_MAX_SKEW_S - 1) is None


@pytest.mark.parametrize("tamper", ["secret", "name", "time", "garbage", "superscript"])
def test_another_secret_or_a_changed_credential_proves_nothing(tamper: str) -> None:
    ours = Security(cluster_secret=SECRET)
    credential = ours.node_credential("n2", NOW)
    assert credential is not None
    if tamper == "secret":
        credential = Security(cluster_secret=b"another-secret-of-16+b").node_credential("n2", NOW)
    elif tamper == "name":
        credential = credential.replace(credential.split(".")[1], "bjM")  # "n3"
    elif tamper == "time":
        parts = credential.split(".")
        parts[2] = str(int(parts[2]) + 1)
        credential = ".".join(parts)
    elif tamper == "superscript":  # "²".isdigit() is true, int("²") raises
        parts = credential.split(".")
        parts[2] = "²"
        credential = ".".join(parts)
    else:
        credential = "rtn1.x.y.z"
    assert credential is not None and ours.credential_node(credential, NOW) is None


def test_without_a_cluster_secret_there_is_no_credential() -> None:
    assert Security().node_credential("n1") is None
    assert Security().credential_node("rtn1.bjE.1.x") is None


async def test_with_auth_on_a_node_credential_reads_status_only() -> None:
    security = Security(cluster_secret=SECRET)
    async with served_node(security) as (_, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        header = security.node_authorization("n2")()
        assert header is not None
        headers = {"Authorization": header}
        assert (await client.get("/api/status", headers=headers)).status_code == 200
        assert (await client.get("/api/members", headers=headers)).status_code == 200
        for method, path in (("GET", "/api/kv/app/x"), ("PUT", "/api/kv/app/x"), ("GET", "/api/auth/users")):
            response = await client.request(method, path, headers=headers, json={"value": "v"})
            assert response.status_code == 403, (method, path, response.text)
        stranger = Security(cluster_secret=b"not-this-clusters-secret").node_authorization("n2")()
        assert stranger is not None
        assert (await client.get("/api/status", headers={"Authorization": stranger})).status_code == 401
