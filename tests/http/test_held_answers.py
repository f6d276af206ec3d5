"""What a client gets from a follower whose leader went quiet, through the
whole app: the lean routes, Quart's routes and the auth routes all answer
with a 307 to the leader elected meanwhile, not to the frozen one.

Real ``RaftNode`` runtimes on Trio's fake clock (``tests.node.harness``).
"""

from __future__ import annotations

import json

import trio
import trio.testing

from raft_trio.node import RaftNode
from tests.node.harness import ELECTION_MAX_S, Cluster

from .test_answers import both_paths, call


async def test_a_follower_sends_clients_to_the_next_leader_not_the_frozen_one(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    frozen, _ = await cluster.leader_gone_quiet()
    others = [h.node for h in cluster.hosts.values() if h.node is not frozen]
    put = json.dumps({"value": "v"}).encode()
    user = json.dumps({"name": "alice"}).encode()  # no password: nothing to hash on a thread
    answers: dict[str, list[tuple[int, str]]] = {}

    async def ask(node: RaftNode) -> None:
        """Three requests at once, each through its own path."""
        lean, quart, _ = both_paths(node)
        requests = [
            (lean, "PUT", f"/api/kv/k-{node.id}", put),
            (quart, "PUT", f"/api/kv/j-{node.id}", put),
            (quart, "POST", "/api/auth/users", user),
        ]
        sent: list[tuple[int, str]] = [(0, "")] * len(requests)

        async def one(i: int) -> None:
            status, headers, _ = await call(*requests[i])
            sent[i] = (status, headers.get("location", ""))

        async with trio.open_nursery() as nursery:
            for i in range(len(requests)):
                nursery.start_soon(one, i)
        answers[node.id] = sent

    with trio.fail_after(ELECTION_MAX_S + 1):
        async with trio.open_nursery() as nursery:
            for node in others:
                nursery.start_soon(ask, node)
    new_leader = await cluster.wait_for_leader(within=1)
    loser = next(node for node in others if node is not new_leader)
    # Each held until the election, then sent to its winner.
    assert answers[loser.id] == [
        (307, f"{new_leader.url}/api/kv/k-{loser.id}"),
        (307, f"{new_leader.url}/api/kv/j-{loser.id}"),
        (307, f"{new_leader.url}/api/auth/users"),
    ]
    # The winner served its own.
    assert [status for status, _ in answers[new_leader.id]] == [200, 200, 200]
