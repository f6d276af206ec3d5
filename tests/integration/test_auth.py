"""Clients that prove who they are, end to end: three real node processes,
the CLI as users run it. Users and roles made with ``raft-trio user`` and
``role``, ``auth enable``; then every client command needs ``--user`` (or
``RAFT_TRIO_USER``), refusals are one line naming 401 or 403 and exit 1,
and a revocation on the leader holds on every node at once. With mutual
TLS, a client certificate's CN is its user and peers must present theirs."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trustme

from raft_trio.peer.wire import STREAM_PROTOCOL
from raft_trio.testing.peer_stream import PeerStreamClient

from .cluster import Cluster, cli_command, wait_until

pytestmark = pytest.mark.integration

SECRET = "the-cluster-secret-of-the-auth-test"


def cli(
    cluster: Cluster, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli_command(), *args, "--endpoints", ",".join(n.url for n in cluster.nodes.values())],
        env={**cluster.env, **(env or {})},
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], code: str) -> None:
    """Exit 1 with the cluster's refusal: its JSON on stdout (``kv``
    prints JSON), or one line on stderr (the table commands)."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    if result.stdout:
        answer = json.loads(result.stdout)
        assert answer["code"] == code and answer["error"], answer
    else:
        assert result.stderr.startswith("raft-trio: ") and f"({code})" in result.stderr, result.stderr


def set_up(cluster: Cluster) -> None:
    ok(cli(cluster, "user", "add", "root", "--password", "root-pw"))
    ok(cli(cluster, "user", "add", "alice", stdin="alice-pw\n"))
    ok(cli(cluster, "user", "add", "bob", "--password", "bob-pw"))
    ok(cli(cluster, "role", "add", "app"))
    ok(cli(cluster, "role", "grant", "app", "readwrite", "app/", "--prefix"))
    ok(cli(cluster, "role", "add", "reader"))
    ok(cli(cluster, "role", "grant", "reader", "read", "app/", "--prefix"))
    ok(cli(cluster, "user", "grant-role", "alice", "app"))
    ok(cli(cluster, "user", "grant-role", "bob", "reader"))
    assert "auth enabled" in ok(cli(cluster, "auth", "enable"))


def test_users_roles_and_auth_through_the_cli(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster("auth", env={"RAFT_CLUSTER_SECRET": SECRET})
    set_up(cluster)
    refused(cli(cluster, "kv", "put", "app/x", "1"), "unauthorized")
    ok(cli(cluster, "kv", "put", "app/x", "1", "--user", "alice:alice-pw"))
    refused(cli(cluster, "kv", "put", "app/x", "2", "--user", "bob:bob-pw"), "permission_denied")
    got = json.loads(ok(cli(cluster, "kv", "get", "app/x", env={"RAFT_TRIO_USER": "bob:bob-pw"})))
    assert got["value"] == "1"
    refused(cli(cluster, "kv", "get", "app/x", "--user", "bob:wrong"), "unauthorized")
    refused(cli(cluster, "user", "list", "--user", "alice:alice-pw"), "permission_denied")
    users = json.loads(ok(cli(cluster, "user", "list", "-o", "json", "--user", "root:root-pw")))["users"]
    assert {u["name"]: u["roles"] for u in users} == {"alice": ["app"], "bob": ["reader"], "root": ["root"]}
    roles = ok(cli(cluster, "role", "list", "--user", "root:root-pw"))
    assert "app" in roles and "readwrite" in roles and "prefix" in roles
    status = json.loads(ok(cli(cluster, "auth", "status", "-o", "json", "--user", "alice:alice-pw")))
    assert status["enabled"] and status["user"] == "alice" and not status["root"]
    # The member table: every node answers the user's token.
    table = ok(cli(cluster, "status", "--user", "alice:alice-pw"))
    assert table.count("leader") >= 1 and "unreachable" not in table and "http 401" not in table

    # A user without a password and no terminal: a usage error, not a prompt.
    result = cli(cluster, "kv", "get", "app/x", "--user", "alice")
    assert result.returncode == 2 and "no password" in result.stderr

    # A revocation on the leader holds on every node at once.
    ok(cli(cluster, "user", "revoke-role", "bob", "reader", "--user", "root:root-pw"))
    for node in cluster.nodes.values():
        result = subprocess.run(
            [
                *cli_command(),
                "kv",
                "get",
                "app/x",
                "--stale",
                "--endpoints",
                node.url,
                "--user",
                "bob:bob-pw",
            ],
            env=cluster.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        refused(result, "permission_denied")

    # auth disable (root): anyone may again.
    ok(cli(cluster, "auth", "disable", "--user", "root:root-pw"))
    ok(cli(cluster, "kv", "put", "app/y", "2"))


def write_cert(ca: trustme.CA, directory: Path, name: str, *identities: str) -> tuple[str, str]:
    cert = ca.issue_cert(*identities, common_name=name)
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return str(cert_path), str(key_path)


def test_mutual_tls_client_certificates_name_users_and_peers_must_present_theirs(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    env = {
        "RAFT_TLS_CA": str(ca_path),
        "RAFT_TLS_CLIENT_CERT_AUTH": "1",
        "RAFT_TLS_PEER_CERT_AUTH": "1",
        "RAFT_CLUSTER_SECRET": SECRET,
    }
    verify = ssl.create_default_context(cafile=str(ca_path))
    cluster = Cluster(tmp_path / "mtls", "mtls", env=env, scheme="https", verify=verify)
    try:
        for node in cluster.nodes.values():
            # Each node's own certificate: CN = its id (what its peers check),
            # the address in its URL as a SAN (what clients check).
            cert, key = write_cert(ca, tmp_path, node.id, "127.0.0.1")
            node.env = {**cluster.env, "RAFT_TLS_CERT": cert, "RAFT_TLS_KEY": key}
        # The peers elect a leader: their mutual TLS works.
        leader_id, _ = cluster.start()
        leader = cluster.nodes[leader_id]
        alice_cert, alice_key = write_cert(ca, tmp_path, "alice", "alice@example.org")
        as_alice = ["--cert", alice_cert, "--key", alice_key, "--cacert", str(ca_path)]
        root = ["--user", "root:root-pw", "--cacert", str(ca_path)]
        tls = ["--cacert", str(ca_path)]
        ok(cli(cluster, "user", "add", "root", "--password", "root-pw", *tls))
        ok(cli(cluster, "user", "add", "alice", "--no-password", *tls))
        ok(cli(cluster, "role", "add", "app", *tls))
        ok(cli(cluster, "role", "grant", "app", "readwrite", "app/", "--prefix", *tls))
        ok(cli(cluster, "user", "grant-role", "alice", "app", *tls))
        ok(cli(cluster, "auth", "enable", *tls))
        ok(cli(cluster, "kv", "put", "app/cert", "yes", *as_alice))
        refused(cli(cluster, "kv", "put", "other", "no", *as_alice), "permission_denied")
        refused(cli(cluster, "kv", "get", "app/cert", *tls), "unauthorized")
        # A certificate from another CA is refused in the handshake.
        stranger_cert, stranger_key = write_cert(trustme.CA(), tmp_path, "stranger", "x@example.org")
        result = cli(cluster, "kv", "get", "app/cert", "--cert", stranger_cert, "--key", stranger_key, *tls)
        assert result.returncode == 2, (result.stdout, result.stderr)
        # A peer request without a certificate is refused; with a user's
        # certificate (CN alice, not a member) too.
        with httpx.Client(verify=verify, trust_env=False) as bare:
            answer = bare.post(leader.url + "/raft/messages", headers={"X-Raft-From": "n2"}, content=b"")
        assert answer.status_code == 401
        alice_context = ssl.create_default_context(cafile=str(ca_path))
        alice_context.load_cert_chain(alice_cert, alice_key)
        with httpx.Client(verify=alice_context, trust_env=False) as posing:
            answer = posing.post(leader.url + "/raft/messages", headers={"X-Raft-From": "n2"}, content=b"")
        assert answer.status_code == 401 and "CN 'alice'" in answer.json()["error"]
        # The same for a stream's opening (its connection never reaches ASGI).
        opening = {"X-Raft-From": "n2", "Connection": "Upgrade", "Upgrade": STREAM_PROTOCOL}
        bare_stream = PeerStreamClient.open(leader.url, opening, verify=verify)
        assert bare_stream.status == 401 and "client certificate" in bare_stream.body["error"]
        posing_stream = PeerStreamClient.open(leader.url, opening, verify=alice_context)
        assert posing_stream.status == 401 and "CN 'alice'" in posing_stream.body["error"]
        # Users and members share the CN namespace: no user may be named
        # like a node, and a node's own certificate is no user's.
        refused(cli(cluster, "user", "add", "n2", "--no-password", *root), "name_taken")
        n2_cert, n2_key = write_cert(ca, tmp_path, "n2", "127.0.0.1")
        n2_context = ssl.create_default_context(cafile=str(ca_path))
        n2_context.load_cert_chain(n2_cert, n2_key)
        with httpx.Client(verify=n2_context, trust_env=False) as as_node:
            answer = as_node.get(leader.url + "/api/kv/app/cert")
        assert answer.status_code == 401 and "member of the cluster" in answer.json()["error"], answer.text
        # Root by password, over the same TLS; the cluster keeps its leader.
        assert "alice" in ok(cli(cluster, "user", "list", *root))
        wait_until(lambda: (cluster.status(leader.id) is None, None), 5, "status needs a credential now")
        assert not cluster.crashed(), cluster.tails()
    finally:
        cluster.close()
        for node in cluster.nodes.values():
            if os.path.exists(node.log_path) and "Traceback" in node.log_text():
                pytest.fail(f"{node.id} logged a traceback:\n{node.log_text()[-3000:]}")
