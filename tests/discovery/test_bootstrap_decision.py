"""The bootstrap decision and the leader's membership plan, as pure
functions: one cluster forms, whatever each node sees when."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest

from raft_trio.discovery import MemberView, PeerStatus, RemovalWatch, decide, plan_changes


def url(node_id: str) -> str:
    return f"http://{node_id}:9001"


def waiting(node_id: str, ack: str | None = None) -> PeerStatus:
    return PeerStatus(url(node_id), node_id, waiting=True, ack=ack)


def member(
    node_id: str, members: Iterable[str], learners: Iterable[str] = (), leader: bool = True
) -> PeerStatus:
    views = [MemberView(i, url(i)) for i in members] + [MemberView(i, url(i), voter=False) for i in learners]
    return PeerStatus(url(node_id), node_id, tuple(views), leader_url=url(node_id) if leader else None)


def test_no_new_cluster_forms_while_an_address_of_the_service_is_silent() -> None:
    """a, b and c, a cluster, are paused (in DNS, silent) and the service
    is scaled to six: d, e and f, new, must not form a second cluster
    (a review's finding), whatever rounds they see."""
    silent = {url(i) for i in "abc"}
    ack: dict[str, str | None] = dict.fromkeys("def")
    view: dict[str, frozenset[str] | None] = dict.fromkeys("def")
    for _ in range(4):
        for me in "def":
            heard = [waiting(other, ack[other]) for other in "def" if other != me]
            decision, view[me] = decide(me, url(me), 3, ack[me], heard, view[me], silent)
            assert decision.action == "wait", decision
            assert "3 address(es) of the service do not answer" in decision.reason
    # Once they answer, the cluster is found and joined.
    found = [member("a", "abc"), waiting("e"), waiting("f")]
    assert decide("d", url("d"), 3, None, found, view["d"])[0].action == "join"


def test_a_node_acks_the_lowest_id_once_it_has_seen_enough_replicas_twice() -> None:
    others = [waiting("b"), waiting("c")]
    first, view = decide("b", url("b"), 3, None, [*others[1:], waiting("a")], None)
    assert first.action == "wait"
    second, view = decide("b", url("b"), 3, None, [waiting("a"), waiting("c")], view)
    assert (second.action, second.seed) == ("ack", "a")
    too_few, _ = decide("b", url("b"), 3, None, [waiting("c")], frozenset({"b", "c"}))
    assert too_few.action == "wait"


def test_a_view_that_changed_is_not_acked_yet() -> None:
    decision, _ = decide("a", url("a"), 3, None, [waiting("b"), waiting("c")], frozenset({"a", "b", "d"}))
    assert decision.action == "wait"


def test_the_seed_forms_the_cluster_of_its_lowest_ackers() -> None:
    statuses = [waiting("b", ack="a"), waiting("c", ack="a"), waiting("d", ack="a"), waiting("e", ack="b")]
    decision, _ = decide("a", url("a"), 3, "a", statuses, None)
    assert decision.action == "bootstrap"
    assert decision.members == (
        MemberView("a", url("a")),
        MemberView("b", url("b")),
        MemberView("c", url("c")),
    )
    short, _ = decide("a", url("a"), 3, "a", [waiting("b", ack="a"), waiting("c")], None)
    assert short.action == "wait"


def test_a_node_that_acked_starts_with_the_seeds_configuration() -> None:
    decision, _ = decide("b", url("b"), 3, "a", [member("a", "abc"), waiting("c", ack="a")], None)
    assert decision.action == "adopt"
    assert [m.id for m in decision.members] == ["a", "b", "c"]


def test_a_voter_with_a_new_data_dir_that_never_acked_refuses() -> None:
    decision, _ = decide("b", url("b"), 3, None, [member("a", "abc")], None)
    assert decision.action == "refuse"
    assert "raft-trio members remove b" in decision.reason


def test_a_learner_with_a_new_data_dir_joins_unless_it_has_started() -> None:
    """Added by the leader, it joins; but one that had acknowledged entries
    lost them, and the leader, which keeps how far it had acknowledged,
    would never catch it up (a review's finding): refused until removed."""
    added = PeerStatus(url("a"), "a", (MemberView("a", url("a")), MemberView("d", url("d"), False)), url("a"))
    assert decide("d", url("d"), 3, None, [added], None)[0].action == "join"
    started = (MemberView("a", url("a")), MemberView("d", url("d"), voter=False, started=True))
    refused, _ = decide("d", url("d"), 3, None, [PeerStatus(url("a"), "a", started, url("a"))], None)
    assert refused.action == "refuse" and "raft-trio members remove d" in refused.reason


def test_a_node_finding_a_cluster_without_it_joins_through_the_leader() -> None:
    decision, _ = decide("d", url("d"), 3, None, [member("b", "abc", leader=False), member("a", "abc")], None)
    assert (decision.action, decision.join_url) == ("join", url("a"))
    learner, _ = decide("d", url("d"), 3, None, [member("a", "abc", learners="d")], None)
    assert learner.action == "join"
    # Also after acking a seed whose cluster did not take it (more ackers than needed).
    extra, _ = decide("d", url("d"), 3, "a", [member("a", "abc")], None)
    assert extra.action == "join"


class SimNode:
    def __init__(self, node_id: str) -> None:
        self.id = node_id
        self.ack: str | None = None
        self.view: frozenset[str] | None = None
        self.members: tuple[MemberView, ...] = ()
        self.joined = False

    def status(self) -> PeerStatus:
        if self.members:
            return PeerStatus(url(self.id), self.id, self.members, leader_url=None)
        if self.joined:
            return PeerStatus(url(self.id), self.id)
        return waiting(self.id, self.ack)


def simulate(seed: int, count: int, expect: int) -> list[SimNode]:
    """Replicas appear in DNS one by one at random rounds, and each round a
    node hears from a random part of what DNS lists (probes time out)."""
    rng = random.Random(seed)
    nodes = [SimNode(f"n{i:02d}") for i in range(count)]
    appears = {n.id: rng.randrange(0, 6) for n in nodes}
    for round_no in range(60):
        for node in rng.sample(nodes, len(nodes)):
            if node.members or node.joined or appears[node.id] > round_no:
                continue
            heard = [
                other.status()
                for other in nodes
                if other is not node and appears[other.id] <= round_no and rng.random() < 0.8
            ]
            decision, node.view = decide(node.id, url(node.id), expect, node.ack, heard, node.view)
            if decision.action == "ack":
                assert node.ack is None, "an ack is given once"
                node.ack = decision.seed
            elif decision.action in ("bootstrap", "adopt"):
                node.members = decision.members
            elif decision.action == "join":
                node.joined = True
            assert decision.action != "refuse"
    return nodes


@pytest.mark.parametrize("seed", range(300))
def test_one_cluster_forms_whatever_each_node_sees(seed: int) -> None:
    expect = 3
    count = random.Random(seed).choice([3, 3, 4, 5])  # fewer than 2 * expect
    nodes = simulate(seed, count, expect)
    configurations = {n.members for n in nodes if n.members}
    assert len(configurations) <= 1, f"two clusters formed: {configurations}"
    for configuration in configurations:
        assert len(configuration) == expect
        for m in configuration:  # each member started with this very configuration
            assert next(n for n in nodes if n.id == m.id).members == configuration
    if count == expect:
        assert configurations, "exactly BOOTSTRAP_EXPECT replicas always form their cluster"
    if configurations:
        assert all(n.members or n.joined for n in nodes), "every other replica joins the cluster"


def test_plan_adds_a_new_replica_at_the_url_it_advertises_and_leaves_a_foreign_node_alone() -> None:
    members = [MemberView("a", url("a")), MemberView("b", url("b"))]
    new = PeerStatus("http://10.0.0.3:9001", "c", advertised=url("c"))
    probes = {url("a"): member("a", "ab"), new.url: new, url("x"): member("x", "xy")}
    changes = plan_changes("a", url("a"), members, probes, {}, 0.0, None, 3)
    assert [(c.kind, c.id, c.url) for c in changes] == [("add", "c", url("c"))]


def test_plan_records_the_url_a_member_advertises_now() -> None:
    """etcd's member update, in place: the member keeps its seat."""
    members = [MemberView("a", url("a")), MemberView("b", "http://10.0.0.2:9001")]
    probes = {url("a"): member("a", "ab"), "http://10.0.0.7:9001": moved("b", url("b"), "ab")}
    changes = plan_changes("a", url("a"), members, probes, {}, 0.0, None, 3)
    assert [(c.kind, c.id, c.url) for c in changes] == [("update", "b", url("b"))]
    # The leader's own URL too.
    changes = plan_changes("a", "http://a-now:9001", members[:1], {}, {}, 0.0, None, 3)
    assert [(c.kind, c.id, c.url) for c in changes] == [("update", "a", "http://a-now:9001")]


def test_plan_moves_a_node_that_does_not_advertise_only_when_its_old_address_is_silent() -> None:
    members = [MemberView("a", url("a")), MemberView("b", "http://old:9001")]
    views = member("b", "ab").members
    probes = {url("a"): member("a", "ab"), "http://new:9001": PeerStatus("http://new:9001", "b", views)}
    changes = plan_changes("a", url("a"), members, probes, {}, 0.0, None, 3)
    assert [(c.kind, c.id, c.url) for c in changes] == [("update", "b", "http://new:9001")]
    probes["http://old:9001"] = PeerStatus("http://old:9001", "b", views)
    assert plan_changes("a", url("a"), members, probes, {}, 0.0, None, 3) == []


def test_plan_removes_only_after_the_grace_period_and_never_below_the_expected_voters() -> None:
    members = [MemberView(i, url(i)) for i in "abcde"]
    probes = {url(i): member(i, "abcde") for i in "abc"}
    seen = {"a": 100.0, "b": 100.0, "c": 100.0, "d": 40.0, "e": 50.0}
    assert plan_changes("a", url("a"), members, probes, seen, 100.0, None, 3) == []
    assert plan_changes("a", url("a"), members, probes, seen, 100.0, 90.0, 3) == []
    changes = plan_changes("a", url("a"), members, probes, seen, 100.0, 30.0, 3)
    assert [(c.kind, c.id) for c in changes] == [("remove", "d"), ("remove", "e")]
    # Four voters left, three expected: one more may go, not two.
    changes = plan_changes("a", url("a"), members[:4], probes, seen, 100.0, 30.0, 3)
    assert [(c.kind, c.id) for c in changes] == [("remove", "d")]
    assert plan_changes("a", url("a"), members[:3], probes, {"c": 0.0}, 100.0, 30.0, 3) == []
    # A learner that left is removed whatever the count of voters.
    learner = [*members[:3], MemberView("f", url("f"), voter=False)]
    changes = plan_changes("a", url("a"), learner, probes, {"f": 0.0}, 100.0, 30.0, 3)
    assert [(c.kind, c.id) for c in changes] == [("remove", "f")]


def moved(node_id: str, advertised: str, members: Iterable[str]) -> PeerStatus:
    status = member(node_id, members, leader=False)
    return PeerStatus("http://10.0.0.7:9001", node_id, status.members, advertised=advertised)


def leading(node_id: str, members: Iterable[str], term: int, commit: int, last: int) -> PeerStatus:
    views = tuple(MemberView(i, url(i)) for i in members)
    return PeerStatus(url(node_id), node_id, views, leader_url=url(node_id), leader_log=(term, commit, last))


def test_a_node_is_removed_once_a_leader_committed_past_the_configuration_without_it() -> None:
    """Appended is not enough (a new leader could undo it): the same leader,
    in the same term, must have committed past the end of the log it had
    when it first left this node out."""
    own = [MemberView(i, url(i)) for i in "abcd"]

    def removed(watch: RemovalWatch, leader: PeerStatus) -> str | None:
        return watch.removed(own, own, [leader])

    watch = RemovalWatch("d")
    assert removed(watch, leading("a", "abc", 4, 10, 12)) is None
    assert removed(watch, leading("a", "abc", 4, 11, 13)) is None  # not yet past 12
    assert removed(watch, leading("a", "abc", 4, 12, 13)) is not None
    # A new term starts over: its log may differ.
    watch = RemovalWatch("d")
    assert removed(watch, leading("a", "abc", 4, 10, 12)) is None
    assert removed(watch, leading("b", "abc", 5, 19, 20)) is None
    assert removed(watch, leading("b", "abc", 5, 20, 21)) is not None
    # A leader whose whole log is committed: one answer is enough.
    assert removed(RemovalWatch("d"), leading("b", "abc", 5, 20, 20)) is not None
    # A leader that lists it again, or a follower's view, counts for nothing.
    watch = RemovalWatch("d")
    assert removed(watch, leading("a", "abc", 4, 10, 12)) is None
    assert removed(watch, leading("a", "abcd", 4, 12, 12)) is None
    assert removed(watch, leading("a", "abc", 4, 12, 13)) is None
    assert removed(watch, member("b", "abc", leader=False)) is None
    # A node with no configuration yet is joining, not removed.
    assert RemovalWatch("d").removed([], [], [leading("a", "abc", 4, 12, 12)]) is None


def test_the_leader_of_another_cluster_is_no_word_on_this_one() -> None:
    """d, e and f formed a cluster of their own while a, b and c were
    silent (a review's finding): its leader's configuration leaves b out,
    but it shares no voter with b's; believing it made every member of
    a, b, c set its data aside. A leader of b's own cluster that removed
    it shares the voters it kept."""
    own = [MemberView(i, url(i)) for i in "abc"]
    watch = RemovalWatch("b")
    assert watch.removed(own, own, [leading("d", "def", 2, 5, 5)]) is None
    assert watch.removed(own, own, [leading("d", "def", 2, 9, 9)]) is None
    assert watch.removed(own, own, [leading("a", "ade", 3, 9, 9)]) is not None


def test_a_node_is_removed_when_its_own_committed_configuration_leaves_it_out_after_having_it() -> None:
    with_d = [MemberView(i, url(i)) for i in "abcd"]
    without_d = [MemberView(i, url(i)) for i in "abc"]
    watch = RemovalWatch("d")
    assert watch.removed(with_d, with_d, []) is None
    assert watch.removed(without_d, without_d, []) is not None
    # A node that joins replays configurations from before it was added: no removal.
    joining = RemovalWatch("d")
    assert joining.removed(without_d, without_d, []) is None
    assert joining.removed(with_d, without_d, []) is None
    assert joining.removed(with_d, with_d, []) is None


def test_a_member_added_again_is_not_removed_while_it_replays_its_earlier_removal() -> None:
    """Removed, then added again under the same id with an empty data
    directory: while it catches up it replays its earlier life, and its
    committed configuration leaves it out between the old removal and
    the new add. A newer configuration naming it (the one it appended, or
    a leader's) says it is a member again; without one, it was removed."""
    with_d = [MemberView(i, url(i)) for i in "abcd"]
    without_d = [MemberView(i, url(i)) for i in "abc"]
    watch = RemovalWatch("d")
    assert watch.removed(with_d, with_d, []) is None  # its earlier life
    assert watch.removed(with_d, without_d, []) is None  # the add appended already
    assert watch.removed(without_d, without_d, [leading("a", "abcd", 7, 20, 25)]) is None  # a leader's
    assert watch.removed(without_d, without_d, [member("b", "abcd", leader=False)]) is not None
    assert watch.removed(without_d, without_d, []) is not None
