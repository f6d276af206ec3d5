"""The cluster's record of which members started follows the membership:
a removal takes a member's record away, an acknowledgement that arrives
after the removal was appended records nothing (it would outlive the
removal and refuse the member added again), and a member added again, in
the same term even, is recorded anew once it acknowledges entries (else,
wiped, it would start empty as a voter whose acknowledgements counted).
Findings of a review of this session's fixes."""

from __future__ import annotations

import trio
import trio.testing

from raft_trio.core import AddLearner, AppendEntriesResponse, Membership, RemoveMember, Snapshot, SnapshotMeta
from raft_trio.kv import Put
from raft_trio.node import RaftNode
from raft_trio.node.first_start import PeerAnswer, decide
from raft_trio.testing.waiting import wait_for

from .harness import ELECTION_MAX_S, TIMING, Cluster, Host, MemoryNodeStorage


def ack_from_n4(leader: RaftNode) -> None:
    """n4 acknowledges what the leader has committed."""
    leader.step(
        [AppendEntriesResponse(leader.term, "n4", leader.id, success=True, index=leader.commit_index)]
    )


async def settled(leader: RaftNode) -> None:
    """Whatever the leader proposed before now is applied: a write after
    it commits after it."""
    await leader.write(Put("settled", "x"))


async def ack_after_removal(cluster: Cluster) -> RaftNode:
    """n4 added and removed, then its first acknowledgement (of a snapshot
    that took a while, or of an entry sent while its removal was
    committing) arrives; the leader."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await leader.write(Put("k", "v"))
    await leader.change_membership(AddLearner("n4", "mem://n4"))
    await leader.change_membership(RemoveMember("n4"))
    assert "n4" not in leader.membership.ids
    ack_from_n4(leader)
    await settled(leader)
    return leader


async def test_an_ack_after_the_removal_records_nothing(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await ack_after_removal(cluster)
    follower = next(h.node for i, h in cluster.hosts.items() if i != leader.id)
    with trio.fail_after(5):
        await wait_for(lambda: follower.kv.applied_index >= leader.kv.applied_index)
    assert "n4" not in follower.kv.started, "a removed member is recorded as started"


async def test_so_the_member_added_again_joins(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await ack_after_removal(cluster)
    await leader.change_membership(AddLearner("n4", "mem://n4"))  # a new incarnation, new data directory
    answer = PeerAnswer.of("mem://" + leader.id, leader.status())
    decision = decide("n4", ["n1", "n2", "n3", "n4"], [answer])
    assert decision.action == "join", decision.reason


async def test_a_member_added_again_in_the_same_term_is_recorded_as_started(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The leader proposes a member's record once a term; a removal
    forgets that it did, so the new incarnation is recorded too."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    term = leader.term
    await leader.write(Put("k", "v"))
    await leader.change_membership(AddLearner("n4", "mem://n4"))
    ack_from_n4(leader)
    with trio.fail_after(5):
        await wait_for(lambda: "n4" in leader.kv.started)
    await leader.change_membership(RemoveMember("n4"))
    assert "n4" not in leader.kv.started
    await leader.change_membership(AddLearner("n4", "mem://n4"))  # the new incarnation
    ack_from_n4(leader)  # it acknowledges entries
    await settled(leader)
    assert leader.term == term
    assert "n4" in leader.kv.started, (
        "the new incarnation acknowledged entries but is not recorded as started"
    )


async def _start_empty_n4(cluster: Cluster, seed: int) -> RaftNode:
    """A new incarnation of n4: an empty data directory, joining."""
    storage = MemoryNodeStorage(Snapshot(SnapshotMeta(0, 0, Membership.of({}))))
    node = RaftNode(
        "n4", "mem://n4", storage, TIMING, seed=seed,
        run_disk=cluster._disk("n4", "thread"), run_short_write=cluster._disk("n4", "short"),
        request=cluster._request, open_stream=cluster._open_stream,
    )  # fmt: skip
    cluster.hosts["n4"] = Host(node)
    await cluster.nursery.start(node.run)
    node.add_known_peers({i: f"mem://{i}" for i in ("n1", "n2", "n3")})
    return node


async def test_with_real_nodes_the_second_incarnation_is_recorded_as_started(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    term = leader.term
    await leader.write(Put("k", "v"))
    first = await _start_empty_n4(cluster, seed=10)
    await leader.change_membership(AddLearner("n4", "mem://n4"))
    with trio.fail_after(10):
        await wait_for(lambda: "n4" in leader.kv.started)
    await leader.change_membership(RemoveMember("n4"))
    first.close()
    await trio.sleep(1)  # the first incarnation's streams end before the second takes its name
    second = await _start_empty_n4(cluster, seed=11)  # its disk was replaced
    await leader.change_membership(AddLearner("n4", "mem://n4"))
    with trio.fail_after(10):
        await wait_for(lambda: second.kv.applied_index >= leader.commit_index)
    with trio.fail_after(10):
        await wait_for(lambda: "n4" in leader.kv.started)
    assert leader.term == term
    voter = "n4" in leader.membership.voters
    # Wiped now, with --peers, every other voter answering: it starts
    # empty as a voter, although its acknowledgements counted for commits.
    answers = [PeerAnswer.of(f"mem://{i}", cluster.hosts[i].node.status()) for i in ("n1", "n2", "n3")]
    wiped = decide("n4", ["n1", "n2", "n3", "n4"], answers)
    assert wiped.action == "refuse", f"n4 (voter: {voter}) wiped would {wiped.action}"
    second.close()


async def test_a_plain_removal_leaves_no_started_record(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """No injected message: the removed member's own acknowledgement of
    its removal (the leader tells it the removal committed) comes after the
    leader applied the removal."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await leader.write(Put("k", "v"))
    gone = next(i for i in cluster.hosts if i != leader.id)
    await leader.change_membership(RemoveMember(gone))
    await trio.sleep(5)
    await leader.write(Put("k2", "v"))
    assert gone not in leader.membership.ids
    assert gone not in leader.kv.started, f"{gone} removed, yet recorded as started: {leader.kv.started}"


async def test_a_plain_learner_removal_leaves_no_started_record(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await leader.write(Put("k", "v"))
    n4 = await _start_empty_n4(cluster, seed=10)
    await leader.change_membership(AddLearner("n4", "mem://n4"))
    with trio.fail_after(10):
        await wait_for(lambda: "n4" in leader.kv.started)
    for n in range(20):
        await leader.write(Put(f"k{n}", "v"))
    await leader.change_membership(RemoveMember("n4"))
    await trio.sleep(5)
    await leader.write(Put("k2", "v"))
    n4.close()
    assert "n4" not in leader.kv.started, f"n4 removed, yet recorded as started: {leader.kv.started}"


async def test_a_learner_that_first_answers_after_its_removal_is_not_recorded(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Real nodes: n4 is added while it is slow (paused here: a long
    snapshot install, a stall), removed, and then answers."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await leader.write(Put("k", "v"))
    n4 = await _start_empty_n4(cluster, seed=10)
    cluster.hosts["n4"].paused = True
    await leader.change_membership(AddLearner("n4", "mem://n4"))
    await trio.sleep(1)
    await leader.change_membership(RemoveMember("n4"))
    cluster.hosts["n4"].paused = False
    await trio.sleep(5)
    await leader.write(Put("k2", "v"))
    n4.close()
    assert "n4" not in leader.kv.started, f"n4 removed, yet recorded as started: {leader.kv.started}"
