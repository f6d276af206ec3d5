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
from raft_trio.kv import KeyValueStore, Put, Started
from raft_trio.node.first_start import AlreadyMember, PeerAnswer, check, decide, waiting_status

VOTERS = ["n1", "n2", "n3"]
URLS = {"n1": "http://n1", "n2": "http://n2", "n3": "http://n3"}


def status_of(node_id: str, members: list[schema.Member]) -> schema.Status:
    """The status of a running member that lists ``members``."""
    return schema.Status(
        id=node_id,
        role="follower",
        term=1,
        leader_id=None,
        leader_url=None,
        commit_index=0,
        applied_index=0,
        last_log_index=0,
        members=members,
    )


def running(url: str, members: dict[str, tuple[bool, bool]]) -> PeerAnswer:
    """A running member's answer: id -> (voter, started)."""
    listed = [schema.Member(i, URLS.get(i, f"http://{i}"), v, s) for i, (v, s) in members.items()]
    answer = PeerAnswer.of(url, status_of(url.removeprefix("http://"), listed))
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
    start; n3 has acknowledged nothing, so it is not recorded as started."""
    members = {"n1": (True, True), "n2": (True, True), "n3": (True, False)}
    decision = decide("n3", VOTERS, [running("http://n1", members), running("http://n2", members)])
    assert decision.action == "bootstrap"


def test_a_brand_new_cluster_forms_once_a_majority_is_known_to_be_new() -> None:
    assert decide("n1", VOTERS, []).action == "wait"
    assert decide("n1", VOTERS, [waiting("http://n2")]).action == "bootstrap"
    assert decide("n1", ["n1"], []).action == "bootstrap"
    five = ["n1", "n2", "n3", "n4", "n5"]
    assert decide("n1", five, [waiting("http://n2")]).action == "wait"
    assert decide("n1", five, [waiting("http://n2"), waiting("http://n3")]).action == "bootstrap"


def test_a_member_added_again_as_a_learner_starts_empty_and_catches_up() -> None:
    members = {"n1": (True, True), "n2": (True, True), "n3": (False, True)}
    decision = decide("n3", VOTERS, [running("http://n1", members)])
    assert decision.action == "join"
    assert decision.peers == {"n1": "http://n1", "n2": "http://n2"}


def test_a_removed_member_is_refused_until_it_is_added_again() -> None:
    members = {"n1": (True, True), "n2": (True, True)}
    decision = decide("n3", VOTERS, [running("http://n1", members)])
    assert decision.action == "refuse"
    assert "does not list n3 as a member" in decision.reason
    assert "raft-trio members add n3" in decision.reason


def test_a_running_node_that_is_in_no_configuration_says_nothing() -> None:
    """A node that is itself joining has an empty membership."""
    assert decide("n3", VOTERS, [running("http://n1", {})]).action == "wait"


def test_with_join_only_a_started_voter_is_refused() -> None:
    assert decide("n4", [], [running("http://n1", {"n4": (True, True)})]).action == "refuse"
    assert decide("n4", [], [running("http://n1", {"n1": (True, True)})]).action == "join"
    assert decide("n4", [], []).action == "wait"


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


def test_a_started_record_is_replicated_state_and_survives_a_snapshot() -> None:
    kv = KeyValueStore()
    kv.apply(1, Put("k", "v"))
    assert kv.apply(2, Started("n2")) is None
    assert kv.started == {"n2"}
    again = KeyValueStore()
    again.restore(kv.snapshot())
    assert again.started == {"n2"} and again.applied_index == 2
