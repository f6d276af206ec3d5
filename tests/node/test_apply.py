"""What a node applies for whom: a transaction's reads are gathered where
a client waits for its answer (the leader that proposed it), not on the
replicas where nobody does."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from raft_trio.kv import OpPut, OpRange, Put, Ranged, Txn, TxnDone
from raft_trio.testing.waiting import wait_for

from .harness import ELECTION_MAX_S, Cluster


async def test_only_the_node_a_client_waits_on_gathers_a_transactions_reads(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await leader.write(Put("p/a", "1"))
    ranged: dict[str, int] = {}
    for node_id, host in cluster.hosts.items():
        ranging = host.node.kv.range

        def counting(*args: Any, node_id: str = node_id, ranging: Any = ranging, **kwargs: Any) -> Any:
            ranged[node_id] = ranged.get(node_id, 0) + 1
            return ranging(*args, **kwargs)

        host.node.kv.range = counting  # type: ignore[method-assign]
    result = await leader.write(Txn([], [OpPut("p/b", "2"), OpRange("p/")], []))
    assert isinstance(result, TxnDone) and isinstance(result.results[1], Ranged)
    assert [kv.key for kv in result.results[1].kvs] == ["p/a", "p/b"]
    with trio.fail_after(ELECTION_MAX_S):
        await wait_for(
            lambda: all(h.node.kv.applied_index == leader.kv.applied_index for h in cluster.hosts.values())
        )
    assert ranged == {leader.id: 1}
    assert all(h.node.kv.get("p/b") is not None for h in cluster.hosts.values())
