"""Once-a-second duties share a wake-up the node has anyway
(raft_trio.wakeups): a sleep ends in the first turn that calls ``awake``
once it is due, or by itself ``slack`` later; in a cluster at rest the
keep-alive checks wake no process of their own. Trio's fake clock."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from raft_trio.core import Membership, Snapshot, SnapshotMeta
from raft_trio.node import RaftNode, Timing
from raft_trio.wakeups import SharedWakeups
from tests.node.harness import Cluster, MemoryNodeStorage, log_steps


async def test_a_sleep_ends_in_the_first_turn_after_it_is_due_or_by_itself_slack_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wakeups = SharedWakeups(slack=0.15)
    ended: list[float] = []

    async def sleeper() -> None:
        await wakeups.sleep(1.0)
        ended.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        nursery.start_soon(sleeper)
        await trio.sleep(0.5)
        wakeups.awake()  # not due yet: nothing ends
        await trio.testing.wait_all_tasks_blocked()
        assert ended == []
        await trio.sleep(0.55)
        wakeups.awake()  # due 0.05 s ago: ends now
    assert ended == [pytest.approx(start + 1.05)]
    assert len(wakeups) == 0

    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        nursery.start_soon(sleeper)  # no turn comes: it ends by itself
    assert ended[1] == pytest.approx(start + 1.15)
    assert wakeups.ended_alone == 1
    assert len(wakeups) == 0

    with trio.move_on_after(0.2):
        await wakeups.sleep(1.0)  # cancelled: forgotten
    assert len(wakeups) == 0


async def test_no_sleep_is_shorter_than_asked(autojump_clock: trio.testing.MockClock) -> None:
    wakeups = SharedWakeups(slack=0.0)
    start = trio.current_time()
    await wakeups.sleep(1.0)
    assert trio.current_time() == start + 1.0


async def test_at_rest_the_keepalive_checks_ride_the_heartbeat_turns(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Each node's keep-alive checks end their sleeps in a turn that runs
    anyway (the leader's ticker, a follower reading a heartbeat): every
    step of a keep-alive task at rest falls at the same moment as one of
    those, none at a moment of its own."""
    await cluster.wait_for_leader(within=10.0)
    await trio.sleep(3.0)
    alone = {node_id: host.node.wakeups.ended_alone for node_id, host in cluster.hosts.items()}
    turns = await log_steps(5.0)
    keepalives = [at for name, at in turns.steps if name.startswith("keepalives-")]
    heartbeat_turns = {at for name, at in turns.steps if name == "ticker" or name.startswith("read-")}
    # Six streams, one check a second each, over 5 s.
    assert 5 * 6 - 6 <= len(keepalives) <= 5 * 6 + 6, turns.steps
    assert set(keepalives) <= heartbeat_turns
    for node_id, host in cluster.hosts.items():
        assert len(host.node.wakeups) == 2, "each node's two streams' checks sleep"
        assert host.node.wakeups.ended_alone == alone[node_id], "a check woke the node by itself"


@pytest.mark.parametrize(
    ("timing", "slack"),
    [(Timing(), 0.15), (Timing(heartbeat_ms=1000, election_min_ms=10_000, election_max_ms=20_000), 0.5)],
)
def test_a_nodes_duties_wait_at_most_half_a_second_for_a_shared_turn(timing: Timing, slack: float) -> None:
    """One and a half heartbeats, but never more than half a second: with
    sparse heartbeats a keep-alive due every second must still reach its
    peer well inside the peer's 5 s silence check."""
    membership = Membership.of({"n1": "mem://n1"})
    storage = MemoryNodeStorage(Snapshot(SnapshotMeta(0, 0, membership)))
    node = RaftNode("n1", "mem://n1", storage, timing)
    assert node.wakeups.slack == pytest.approx(slack)
