"""The first-start check of a node whose data directory is new: a member
that has started before is refused (its vote and log are lost), a brand-new
cluster still forms, and a member that starts seconds after the others
formed the cluster still starts. The decision is a pure function of the
answers; the loop around it runs on Trio's fake clock."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from raft_trio import schema
from raft_trio.core import HardState, MemoryStorage, Role, Snapshot, SnapshotMeta
from raft_trio.kv import KeyValueStore, Put, Started
from raft_trio.node.first_start import AlreadyMember, MemberEntry, PeerAnswer, check, decide, waiting_status

from ..core.helpers import Network, config

VOTERS = ["n1", "n2", "n3"]
URLS = {"n1": "http://n1", "n2": "http://n2", "n3": "http://n3"}


def status_of(
    node_id: str, members: list[schema.Member], term: int = 1, uptime_s: float | None = 1.0
) -> schema.Status:
    """The status of a running member that lists ``members``, started
    ``uptime_s`` ago."""
    return schema.Status(
        id=node_id,
        role="follower",
        term=term,
        leader_id=None,
        leader_url=None,
        commit_index=0,
        applied_index=0,
        last_log_index=0,
        members=members,
        uptime_s=uptime_s,
    )


def running(
    url: str, members: dict[str, tuple[bool, bool]], term: int = 1, uptime_s: float | None = 1.0
) -> PeerAnswer:
    """A running member's answer: id -> (voter, started)."""
    listed = [schema.Member(i, URLS.get(i, f"http://{i}"), v, s) for i, (v, s) in members.items()]
    answer = PeerAnswer.of(url, status_of(url.removeprefix("http://"), listed, term, uptime_s))
    assert not answer.waiting
    return answer


def waiting(url: str) -> PeerAnswer:
    answer = PeerAnswer.of(url, waiting_status(url.removeprefix("http://"), ["x"]))
    assert answer.waiting
    return answer


ALL_STARTED = {"n1": (True, True), "n2": (True, True), "n3": (True, True)}


def test_a_wiped_member_that_has_started_is_refused() -> None:
    decision = decide("n3", VOTERS, [running("http://n1", ALL_STARTED)])
    assert decision.action == "refuse"
    assert "already a member of the cluster at http://n1 and has started before" in decision.reason
    assert "raft-trio members remove n3" in decision.reason


def test_one_running_member_saying_started_outweighs_a_waiting_one() -> None:
    """Even if another member is new too (both wiped): the one that ran knows."""
    decision = decide("n3", VOTERS, [waiting("http://n2"), running("http://n1", ALL_STARTED)])
    assert decision.action == "refuse"


def test_a_member_starting_after_the_others_formed_the_cluster_starts() -> None:
    """`raft-trio up`: n1 and n2 elected and committed before n3's first
    start; n3 has acknowledged nothing, so it is not recorded as started.
    It starts at the highest term they hold, counted as voted."""
    members = {"n1": (True, True), "n2": (True, True), "n3": (True, False)}
    decision = decide("n3", VOTERS, [running("http://n1", members, term=4), running("http://n2", members)])
    assert decision.action == "bootstrap"
    assert decision.term_floor == 4
    assert "starting at term 4" in decision.reason


def test_a_voter_that_has_not_started_waits_for_every_voter_to_answer() -> None:
    """The one that is silent may be the candidate it voted for before its
    directory was lost: only that candidate is sure to hold the term."""
    members = {"n1": (True, True), "n2": (True, True), "n3": (True, False)}
    decision = decide("n3", VOTERS, [running("http://n1", members)])
    assert decision.action == "wait"
    assert "waiting for n2 to answer" in decision.reason
    five = {**members, "n4": (True, False), "n5": (False, False)}
    answers = [running("http://n1", five), running("http://n2", five)]
    assert "waiting for n4 to answer" in decide("n3", VOTERS, answers).reason
    assert decide("n3", VOTERS, [*answers, waiting("http://n4")]).term_floor == 1


def test_an_operator_who_knows_the_member_never_ran_need_not_wait_for_a_voter_that_is_down() -> None:
    """n2 is down at n3's late first start: n1 and n3 make a quorum again
    only if n3 starts, and nothing but the operator can say it never ran."""
    members = {"n1": (True, True), "n2": (True, True), "n3": (True, False)}
    answers = [running("http://n1", members, term=3)]
    assert "start it with --never-ran" in decide("n3", VOTERS, answers).reason
    decision = decide("n3", VOTERS, answers, never_ran=True)
    assert (decision.action, decision.term_floor) == ("bootstrap", 3)
    # It says nothing about the other rows.
    assert decide("n3", VOTERS, [running("http://n1", ALL_STARTED)], never_ran=True).action == "refuse"


def test_members_of_a_restored_cluster_at_its_first_term_count_as_new() -> None:
    """A restored cluster's members start at term 1, where nobody votes."""
    fresh = {"n1": (True, False), "n2": (True, False), "n3": (True, False)}
    answers = [running("http://n2", fresh, term=1)]
    assert decide("n1", VOTERS, answers, fresh_term=1).action == "bootstrap"
    assert decide("n1", VOTERS, answers).action == "wait"
    assert decide("n1", VOTERS, [running("http://n2", fresh, term=2)], fresh_term=1).action == "wait"


def test_a_member_cut_off_since_long_ago_is_no_new_member() -> None:
    """With pre-vote, a member cut off from the others since its start
    stays at the first term for days: the one restored again (or wiped)
    could have voted for a silent candidate in a later term meanwhile (a
    review's finding). Only one that started moments ago counts as new."""
    fresh = {"n1": (True, False), "n2": (True, False), "n3": (True, False)}
    for term, fresh_term in [(0, 0), (1, 1)]:
        long_ago = [running("http://n1", fresh, term=term, uptime_s=3600.0)]
        decision = decide("n3", VOTERS, long_ago, fresh_term=fresh_term)
        assert decision.action == "wait" and "waiting for n2 to answer" in decision.reason
        assert (
            decide(
                "n3", VOTERS, [running("http://n1", fresh, term=term, uptime_s=None)], fresh_term=fresh_term
            ).action
            == "wait"
        )


def test_members_that_hold_no_term_yet_count_as_new() -> None:
    """n2 formed a new cluster with n1 (both new) a moment before n1 asked
    again, and n3 has not started: n1 must not wait for n3 forever."""
    fresh = {"n1": (True, False), "n2": (True, False), "n3": (True, False)}
    decision = decide("n1", VOTERS, [running("http://n2", fresh, term=0)])
    assert (decision.action, decision.term_floor) == ("bootstrap", 0)
    assert "2 of the 3 members of --peers are new" in decision.reason
    five = ["n1", "n2", "n3", "n4", "n5"]
    assert decide("n1", five, [running("http://n2", fresh, term=0)]).action == "wait"
    assert decide("n1", VOTERS, [running("http://n2", fresh, term=1)]).action == "wait"


def test_a_brand_new_cluster_forms_once_a_majority_is_known_to_be_new() -> None:
    assert decide("n1", VOTERS, []).action == "wait"
    assert decide("n1", VOTERS, [waiting("http://n2")]).action == "bootstrap"
    assert decide("n1", ["n1"], []).action == "bootstrap"
    five = ["n1", "n2", "n3", "n4", "n5"]
    assert decide("n1", five, [waiting("http://n2")]).action == "wait"
    assert decide("n1", five, [waiting("http://n2"), waiting("http://n3")]).action == "bootstrap"


def test_a_member_added_again_as_a_learner_starts_empty_and_catches_up() -> None:
    """Its removal took its "started" record away (KeyValueStore.skip)."""
    members = {"n1": (True, True), "n2": (True, True), "n3": (False, False)}
    decision = decide("n3", VOTERS, [running("http://n1", members)])
    assert decision.action == "join"
    assert decision.peers == {"n1": "http://n1", "n2": "http://n2"}


def test_a_wiped_learner_that_has_started_is_refused() -> None:
    """The leader keeps how far its lost log had acknowledged, and would
    never catch an empty one up (a review's finding)."""
    members = {"n1": (True, True), "n2": (True, True), "n3": (False, True)}
    decision = decide("n3", VOTERS, [running("http://n1", members)])
    assert decision.action == "refuse"
    assert "its log is lost" in decision.reason and "raft-trio members remove n3" in decision.reason
    assert decide("n3", [], [running("http://n1", members)]).action == "refuse"


def test_a_removed_member_is_refused_until_it_is_added_again() -> None:
    members = {"n1": (True, True), "n2": (True, True)}
    decision = decide("n3", VOTERS, [running("http://n1", members)])
    assert decision.action == "refuse"
    assert "does not list n3 as a member" in decision.reason
    assert "raft-trio members add n3" in decision.reason


def test_a_running_node_that_is_in_no_configuration_says_nothing() -> None:
    """A node that is itself joining has an empty membership."""
    assert decide("n3", VOTERS, [running("http://n1", {})]).action == "wait"


def test_with_join_a_started_member_or_a_listed_voter_is_refused() -> None:
    assert decide("n4", [], [running("http://n1", {"n4": (True, True)})]).action == "refuse"
    assert decide("n4", [], [running("http://n1", {"n1": (True, True)})]).action == "join"
    assert (
        decide("n4", [], [running("http://n1", {"n1": (True, True), "n4": (False, False)})]).action == "join"
    )
    voter = decide("n4", [], [running("http://n1", {"n1": (True, True), "n4": (True, False)})])
    assert voter.action == "refuse" and "not --join" in voter.reason
    assert decide("n4", [], []).action == "wait"


def test_with_join_a_node_that_is_itself_joining_is_no_answer() -> None:
    """It lists no members, so it cannot say whether this member started
    (a review's finding: a wiped voter joined through one as itself)."""
    joining = PeerAnswer.of("http://n5", status_of("n5", []))
    decision = decide("n4", [], [joining])
    assert decision.action == "wait" and "not formed yet" in decision.reason


async def test_the_check_asks_again_until_a_member_answers(autojump_clock: trio.testing.MockClock) -> None:
    answers: dict[str, schema.Status] = {}
    asked: list[float] = []

    async def fetch(url: str) -> schema.Status | None:
        asked.append(trio.current_time())
        return answers.get(url)

    async def later() -> None:
        await trio.sleep(3.2)
        answers["http://n1"] = status_of("n1", [schema.Member("n3", "http://n3", True, True)])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(later)
        with pytest.raises(AlreadyMember, match="already a member") as refused:
            await check("n3", {"n1": "http://n1", "n2": "http://n2"}, VOTERS, fetch)
    assert refused.value.exit_code == 78
    assert trio.current_time() == pytest.approx(3.5)
    assert len(asked) == 2 * 8


async def test_the_check_also_asks_the_voters_the_cluster_lists(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """n4 was added after n3's --peers were written: n3 learns its address
    from n1's answer and waits for it too."""
    members = [
        schema.Member("n1", "http://n1", True, True),
        schema.Member("n3", "http://n3", True, False),
        schema.Member("n4", "http://n4", True, True),
    ]
    answers = {"http://n1": status_of("n1", members, term=2), "http://n4": status_of("n4", members, term=5)}
    asked: list[str] = []

    async def fetch(url: str) -> schema.Status | None:
        asked.append(url)
        return answers.get(url)

    decision = await check("n3", {"n1": "http://n1"}, ["n1", "n3"], fetch)
    assert (decision.action, decision.term_floor) == ("bootstrap", 5)
    assert sorted(asked) == ["http://n1", "http://n1", "http://n4"]


def _wiped_voter_votes_again(floor_from_answers: bool) -> Network:
    """c votes for a in term 1 and is wiped before any entry names it
    started; b's request for term 1 reaches c as it comes back."""
    net = Network(config=config(pre_vote=False, check_quorum=False))
    net.time_out("a")
    a_asks = net.take("a").all_messages()
    net.time_out("b")
    b_asks = net.take("b").all_messages()
    net.step(*[m for m in a_asks if m.dst == "c"])
    net.step(*net.take("c").all_messages())
    net.take("a")
    assert net.leaders_by_term == {1: "a"}
    wiped = MemoryStorage(Snapshot(SnapshotMeta(0, 0, net.initial_membership)))
    if floor_from_answers:
        listed = {i: MemberEntry(True, i != "c", f"http://{i}") for i in ("a", "b", "c")}
        answers = [PeerAnswer(f"http://{i}", False, listed, i, net.cores[i].status().term) for i in "ab"]
        decision = decide("c", ["a", "b", "c"], answers)
        assert decision.action == "bootstrap"
        wiped.set_hard_state(HardState(decision.term_floor, "c"))
    net.start("c", wiped)
    net.step(*[m for m in b_asks if m.dst == "c"])
    net.step(*net.take("c").all_messages())
    net.take("b")
    return net


def test_a_voter_wiped_after_voting_does_not_vote_again_in_that_term() -> None:
    with pytest.raises(AssertionError, match="two leaders in term 1"):
        _wiped_voter_votes_again(floor_from_answers=False)
    net = _wiped_voter_votes_again(floor_from_answers=True)
    assert net.leaders_by_term == {1: "a"}
    assert net.storages["c"].hard_state() == HardState(1, "c")
    assert net.cores["b"].status().role is not Role.LEADER


def test_a_started_record_is_replicated_state_and_survives_a_snapshot() -> None:
    kv = KeyValueStore()
    kv.apply(1, Put("k", "v"))
    assert kv.apply(2, Started("n2")) is None
    assert kv.started == {"n2"}
    again = KeyValueStore()
    again.restore(kv.snapshot())
    assert again.started == {"n2"} and again.applied_index == 2
