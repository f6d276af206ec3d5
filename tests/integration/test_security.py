"""A cluster that trusts no stranger: three real node processes serving
HTTPS with certificates made here (trustme), signing every peer request with
a cluster secret, and guarding membership and leadership with an admin
token. Clients that bring the CA and the token work as before; a stranger's
peer message (a huge-term heartbeat, which would unseat an unauthenticated
leader) is refused with 401 and logged, and the leader keeps its term."""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from raft_trio.core._messages import AppendEntries, HeartbeatResponse
from raft_trio.peer.auth import PeerAuthenticator
from raft_trio.peer.framing import FrameWriter
from raft_trio.peer.wire import FROM_HEADER, MESSAGES_PATH, encode_batch, stream_request
from raft_trio.testing.peer_stream import PeerStreamClient
from raft_trio.testing.processes import Process, free_port, python_module

from .cluster import Cluster, cli_command, wait_until

pytestmark = pytest.mark.integration

SECRET = "the-cluster-secret-of-this-test"
TOKEN = "the-admin-token-of-this-test"


@pytest.fixture
def secure_cluster(tmp_path: Path, make_cluster: Callable[..., Cluster]) -> tuple[Cluster, dict[str, str]]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    files = {
        "RAFT_TLS_CERT": tmp_path / "node.pem",
        "RAFT_TLS_KEY": tmp_path / "node.key",
        "RAFT_TLS_CA": tmp_path / "ca.pem",
        "RAFT_CLUSTER_SECRET_FILE": tmp_path / "cluster-secret",
    }
    server.cert_chain_pems[0].write_to_path(str(files["RAFT_TLS_CERT"]))
    server.private_key_pem.write_to_path(str(files["RAFT_TLS_KEY"]))
    ca.cert_pem.write_to_path(str(files["RAFT_TLS_CA"]))
    files["RAFT_CLUSTER_SECRET_FILE"].write_text(SECRET + "\n")
    env = {name: str(path) for name, path in files.items()} | {"RAFT_ADMIN_TOKEN": TOKEN}
    verify = ssl.create_default_context(cafile=str(files["RAFT_TLS_CA"]))
    return make_cluster("secure", env=env, scheme="https", verify=verify), env


def run_cli(
    cluster: Cluster, node_id: str, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli_command(), *args, "--cluster", cluster[node_id].url],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def members(cluster: Cluster, node_id: str) -> list[str]:
    answer: dict[str, Any] = cluster.http.get(cluster[node_id].url + "/api/members").json()
    return sorted(m["id"] for m in answer["members"])


def test_a_secure_cluster_serves_its_clients_and_refuses_strangers(
    secure_cluster: tuple[Cluster, dict[str, str]],
) -> None:
    cluster, env = secure_cluster
    leader_id, term = cluster.wait_for_leader()
    leader = cluster[leader_id]
    follower_id = next(nid for nid in cluster.nodes if nid != leader_id)
    assert leader.url.startswith("https://")

    # Clients with the CA read and write as before, also through the CLI.
    cluster.write("k", "v1")
    client_env = {**cluster.env, "RAFT_TLS_CA": env["RAFT_TLS_CA"]}
    client_env.pop("RAFT_ADMIN_TOKEN")
    put = run_cli(cluster, follower_id, client_env, "kv", "put", "k", "v2")
    assert put.returncode == 0, put.stderr
    assert json.loads(put.stdout)["key"] == "k"  # kv put does not echo the value
    got = run_cli(cluster, follower_id, client_env, "kv", "get", "k")
    assert got.returncode == 0 and json.loads(got.stdout)["value"] == "v2", got.stderr

    # Without the CA the certificate is not trusted; plain HTTP gets no answer.
    untrusting = {k: v for k, v in client_env.items() if k != "RAFT_TLS_CA"}
    refused = run_cli(cluster, leader_id, untrusting, "kv", "get", "k")
    assert refused.returncode == 2
    assert "no cluster node answered" in refused.stderr
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{leader.port}/api/status", timeout=2, trust_env=False)

    # Membership changes need the admin token, also through a follower's redirect.
    no_token = run_cli(cluster, follower_id, client_env, "members", "remove", "n3", "-o", "json")
    assert no_token.returncode == 1
    refusal = json.loads(no_token.stdout)
    assert refusal["error"].startswith("missing or wrong admin token") and refusal["code"] == "unauthorized"
    in_words = run_cli(cluster, follower_id, client_env, "members", "remove", "n3")
    assert (in_words.returncode, in_words.stdout) == (1, "")
    assert (
        in_words.stderr.startswith("raft-trio: missing or wrong admin token")
        and "(unauthorized)" in in_words.stderr
    )
    assert members(cluster, leader_id) == ["n1", "n2", "n3"]
    removed_id = next(nid for nid in cluster.nodes if nid not in (leader_id, follower_id))
    with_token = run_cli(
        cluster, follower_id, {**client_env, "RAFT_ADMIN_TOKEN": TOKEN}, "members", "remove", removed_id
    )
    assert with_token.returncode == 0, with_token.stdout + with_token.stderr
    assert members(cluster, leader_id) == sorted([leader_id, follower_id])

    # A stranger without the secret cannot step a message into the leader:
    # a heartbeat claiming a huge term would otherwise unseat it.
    body = encode_batch([AppendEntries(10**9, follower_id, leader_id, 0, 0, (), 0)])
    headers = {FROM_HEADER: follower_id, "Content-Type": "application/msgpack"}
    forged = PeerAuthenticator(b"guessed-wrong-secret-value", follower_id).sign(leader_id, body)
    for extra in ({}, forged):
        answer = cluster.http.post(leader.url + MESSAGES_PATH, content=body, headers=headers | extra)
        assert answer.status_code == 401, answer.text
    status = cluster.status(leader_id)
    assert status is not None
    assert (status["role"], status["term"]) == ("leader", term)
    assert "refused a peer request" in leader.log_text()

    # The cluster still commits (with the secret, the peers' own requests pass).
    body_written = cluster.write("k", "v3")
    wait_until(
        lambda: (
            (cluster.status(follower_id) or {}).get("applied_index", 0) >= body_written["index"],
            cluster.status(follower_id),
        ),
        10,
        "the follower to apply the last write",
    )

    # Each node keeps, across restarts, the signed requests it accepted
    # within the window (replays after a restart): a peer's stream opening.
    kept = json.loads((leader.data_dir / "peer-nonces.json").read_text())
    assert follower_id in {sender for sender, _, _ in kept}


def refusals(cluster: Cluster, node_id: str) -> float:
    text = cluster.http.get(cluster[node_id].url + "/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("raft_peer_requests_refused_total "))
    return float(line.split()[1])


def test_a_forged_frame_on_a_signed_stream_closes_it_unparsed(
    secure_cluster: tuple[Cluster, dict[str, str]],
) -> None:
    """Over TLS, a stream opened with a valid signature: its authentic
    frames are taken; a frame under another key (here one that would
    unseat the leader if it were stepped) is refused: the stream is closed
    with a line saying why (401), the refusal is counted, and the leader
    keeps its term. The same opening sent again is refused as a replay
    (an HTTP 401)."""
    cluster, env = secure_cluster
    leader_id, term = cluster.wait_for_leader()
    leader = cluster[leader_id]
    follower_id = next(nid for nid in cluster.nodes if nid != leader_id)
    peer = PeerAuthenticator(SECRET.encode(), follower_id)
    headers, writer = stream_request(follower_id, leader_id, peer)
    stale = writer.frame(encode_batch([HeartbeatResponse(term=0, src=follower_id, dst=leader_id, seq=0)]))
    forged = FrameWriter(b"k" * 32).frame(
        encode_batch([AppendEntries(10**9, follower_id, leader_id, 0, 0, (), 0)])
    )
    before = refusals(cluster, leader_id)
    verify = ssl.create_default_context(cafile=env["RAFT_TLS_CA"])
    stream = PeerStreamClient.open(leader.url, headers, verify=verify)
    assert stream.status == 101, stream.body
    stream.send(stale + forged)
    status, end = stream.finish()
    assert status == 401 and "failed its MAC" in end["error"], end
    assert refusals(cluster, leader_id) == before + 1
    leader_status = cluster.status(leader_id)
    assert leader_status is not None and (leader_status["role"], leader_status["term"]) == ("leader", term)
    again = PeerStreamClient.open(leader.url, headers, verify=verify)
    assert again.status == 401 and "replayed" in again.body["error"], again.body
    assert cluster.write("after-the-forgery", "v")["key"] == "after-the-forgery"


def test_the_monitor_watches_nodes_that_serve_https(
    secure_cluster: tuple[Cluster, dict[str, str]], tmp_path: Path
) -> None:
    """``raft-monitor`` verifies the nodes against ``RAFT_TLS_CA`` and shows
    the cluster as it does over plain HTTP."""
    cluster, env = secure_cluster
    leader_id, _ = cluster.wait_for_leader()
    port = free_port()
    monitor_env = {**cluster.env, "RAFT_TLS_CA": env["RAFT_TLS_CA"]}
    argv = [
        *python_module("raft_monitor"),
        "--listen",
        f"127.0.0.1:{port}",
        "--nodes",
        cluster[leader_id].url,
    ]
    monitor = Process("monitor", argv, tmp_path / "monitor.log", monitor_env)
    monitor.start()
    try:

        def shows_the_cluster() -> tuple[bool, Any]:
            try:
                snapshot = httpx.get(f"http://127.0.0.1:{port}/api/nodes", timeout=1, trust_env=False).json()
            except (httpx.HTTPError, ValueError) as error:
                return False, repr(error)
            roles = sorted(node["role"] for node in snapshot.get("nodes", []))
            leader = (snapshot.get("leader") or {}).get("id")
            return leader == leader_id and roles == ["follower", "follower", "leader"], snapshot

        wait_until(shows_the_cluster, 20.0, "the monitor to show the 3 HTTPS nodes and their leader")
    finally:
        monitor.stop(grace=10)
