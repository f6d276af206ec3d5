"""The launcher (raft_trio.testing.processes) itself, on real node
processes: the leader is found through the client, blocking and in Trio;
a node killed with -9 restarts on its own data directory with what it
had; a paused node is out of the live set until resumed; a clean stop
exits 0; the logs record what was done to each node."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest
import trio

from raft_trio.client import ClientError, TrioClient
from raft_trio.testing import ports
from raft_trio.testing.processes import (
    FAST_TIMING,
    NodeCluster,
    consecutive_free_ports,
    free_ports,
    inherited_env,
)
from raft_trio.testing.waiting import wait_until

pytestmark = pytest.mark.integration

START_S = 20.0


def test_free_ports_differ_and_a_run_of_them_binds() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    base = consecutive_free_ports(3)
    sockets = [socket.socket() for _ in range(3)]
    try:
        for offset, sock in enumerate(sockets):
            sock.bind(("127.0.0.1", base + offset))
    finally:
        for sock in sockets:
            sock.close()


def test_planned_ports_lie_below_the_kernels_own_choices() -> None:
    """What the kernel picks for outgoing connections never lands on a
    planned port (a node's port taken by some client's connection before
    its bind: the likeliest cause of a CI failure of ``raft-trio up``)."""
    floor = ports.ephemeral_floor()
    planned = [*free_ports(20), consecutive_free_ports(4)]
    assert all(ports.PLAN_FLOOR <= port < floor for port in planned), (planned, floor)
    with socket.socket() as client:
        client.bind(("127.0.0.1", 0))  # how a connection's local end is chosen
        assert client.getsockname()[1] >= floor


def test_each_worker_walks_its_own_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "4")
    planned = ports.plan_range(32768)
    assert planned == range(ports.PLAN_FLOOR, 32768)
    slices = []
    for worker in range(4):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{worker}")
        slices.append(set(ports.worker_slice(planned)))
    assert all(len(share) == len(planned) // 4 for share in slices)
    assert all(not (a & b) for i, a in enumerate(slices) for b in slices[i + 1 :])
    assert set().union(*slices) <= set(planned)
    # A machine that gave the kernel nearly every port: planned up to the top.
    assert ports.plan_range(1024) == range(ports.PLAN_FLOOR, 65536)


def test_a_plan_hands_a_port_out_again_only_after_its_whole_slice() -> None:
    walked = range(ports.PLAN_FLOOR, ports.PLAN_FLOOR + 200)
    plan = ports.PortPlan(walked)
    handed = [plan.take(1, "127.0.0.1", consecutive=False)[0] for _ in range(100)]
    assert len(set(handed)) == len(handed)
    with socket.socket() as busy:
        # SO_REUSEADDR: bound despite connections of an earlier test
        # lingering on that port in TIME_WAIT, which the plan's own bind
        # (without it) would count as taken anyway.
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", walked[plan.cursor]))  # the next one is taken: skipped
        taken = busy.getsockname()[1]
        run = plan.take(3, "127.0.0.1", consecutive=True)
    assert taken not in run and run == list(range(run[0], run[0] + 3))


async def test_a_killed_node_restarts_on_its_data_dir_with_what_it_had(tmp_path: Path) -> None:
    cluster = NodeCluster(tmp_path, 3, inherited_env(extra={**FAST_TIMING, "LOGGING": "INFO"}))
    try:
        cluster.start_processes()
        with trio.fail_after(START_S):
            leader, term = await cluster.leader_elected()
        assert cluster.wait_for_leader() == (leader, term)  # the blocking wait agrees

        async with TrioClient(list(cluster.urls.values())) as client:
            await client.put("kept", "across a kill")
        victim = cluster[leader]
        victim.kill()
        with trio.fail_after(5):
            assert await victim.exited() == -signal.SIGKILL
        assert leader not in cluster.live_ids()
        with trio.fail_after(START_S):
            new_leader, new_term = await cluster.leader_elected()
        assert new_leader != leader and new_term > term

        victim.start()  # on the same data directory
        async with TrioClient(victim.url, timeout=2.0, retry=False) as alone:
            with trio.fail_after(START_S):
                while True:
                    try:
                        found = await alone.get("kept", stale=True)
                        break
                    except ClientError:  # not serving yet
                        await trio.sleep(0.05)
        assert found.value == "across a kill"
        assert "=== test: sending SIGKILL to the process group" in victim.log_text()
        assert victim.log_text().count("=== test: starting") == 2
    finally:
        cluster.close()


def test_a_paused_node_is_out_until_resumed_and_a_stop_is_clean(tmp_path: Path) -> None:
    cluster = NodeCluster(tmp_path, 3, inherited_env(extra={**FAST_TIMING, "LOGGING": "INFO"}))
    try:
        leader, _ = cluster.start()
        follower = next(node for node in cluster.nodes.values() if node.id != leader)
        follower.pause()
        assert follower.id not in cluster.live_ids()
        assert cluster.node_status(follower.id) is None  # stopped: it answers nothing
        follower.resume()
        wait_until(
            lambda: (cluster.node_status(follower.id) is not None, None), 10.0, f"{follower.id} to answer"
        )
        assert cluster.stop() == {"n1": 0, "n2": 0, "n3": 0}
        assert "=== test: sending SIGSTOP" in follower.log_text()
        assert "=== test: sending SIGTERM" in follower.log_text()
    finally:
        cluster.close()
