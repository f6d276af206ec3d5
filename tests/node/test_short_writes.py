"""Which runner persists a Ready: a short write (one entry or none, no
snapshot) goes to the node's ``run_short_write``, which may run it on the
loop's own thread; a batch of several entries goes to ``run_disk``, the
writer thread, so that a busy leader serves requests while its disk works.
Three runtimes on Trio's fake clock (tests/node/harness.py)."""

from __future__ import annotations

import trio
import trio.testing

from raft_trio.kv import Put, Written
from raft_trio.node import RaftNode
from raft_trio.node.runtime import SHORT_WRITE_ENTRIES
from tests.node.harness import Cluster


async def settled_leader(cluster: Cluster, fsync_seconds: float = 0.0) -> RaftNode:
    """The leader once the first commits are done, every disk taking
    ``fsync_seconds`` a write and no write recorded yet."""
    leader = await cluster.wait_for_leader(within=10.0)
    await trio.sleep(1.0)
    for host in cluster.hosts.values():
        host.fsync_seconds = fsync_seconds
        host.ready_writes.clear()
    return leader


async def test_one_write_at_a_time_is_a_short_write_on_every_node(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await settled_leader(cluster)
    for n in range(5):
        assert isinstance(await leader.write(Put(f"k{n}", "v")), Written)
        await trio.sleep(0.05)
    for node_id, host in cluster.hosts.items():
        appended = [runner for runner, entries in host.ready_writes if entries]
        assert appended == ["short"] * 5, (node_id, host.ready_writes)


async def test_a_batch_of_entries_goes_to_the_writer_thread(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await settled_leader(cluster, fsync_seconds=0.005)  # writes that arrive meanwhile form a batch
    async with trio.open_nursery() as nursery:
        for n in range(40):
            nursery.start_soon(leader.write, Put(f"k{n}", "v"))
    for node_id, host in cluster.hosts.items():
        assert all(
            entries <= SHORT_WRITE_ENTRIES for runner, entries in host.ready_writes if runner == "short"
        )
        assert all(
            entries > SHORT_WRITE_ENTRIES for runner, entries in host.ready_writes if runner == "thread"
        )
        assert sum(entries for _, entries in host.ready_writes) >= 40, (node_id, host.ready_writes)
    assert any(runner == "thread" for runner, _ in cluster.hosts[leader.id].ready_writes)
