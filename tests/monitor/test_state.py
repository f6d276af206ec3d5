"""The merge logic, pure: what each report from a node does to the view,
with explicit times (no clock, no I/O)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest

from raft_monitor import ClusterView, MalformedEvent, Report, parse_event
from raft_monitor._state import TimelineEntry, normalize_url

from .helpers import URLS, doc, report


def seeded(*ids: str) -> ClusterView:
    view = ClusterView()
    for node_id in ids:
        view.add_source(URLS[node_id], 0.0, seed=True)
    return view


def kinds(entries: Iterable[TimelineEntry]) -> list[tuple[str, str, str | None, str | None]]:
    return [(e.kind, e.node, e.old, e.new) for e in entries]


def test_a_source_is_known_by_its_url_until_the_node_says_its_id() -> None:
    view = ClusterView()
    changes = view.add_source(URLS["n1"] + "/", 0.0, seed=True)
    assert changes.watch == [URLS["n1"]]
    assert list(view.nodes) == [URLS["n1"]]
    assert view.nodes[URLS["n1"]].role == "unreachable"
    assert view.nodes[URLS["n1"]].reason == "connecting"

    changes = view.apply(URLS["n1"], report("status", node_id="n1", term=3), 1.0)
    assert changes.removed == [URLS["n1"]]
    assert changes.nodes == ["n1"]
    node = view.nodes["n1"]
    assert (node.id, node.role, node.term, node.leader_id, node.last_contact) == (
        "n1",
        "follower",
        3,
        "n1",
        1.0,
    )
    assert kinds(changes.timeline) == [
        ("role", "n1", None, "follower"),
        ("term", "n1", None, None),
        ("leader", "n1", None, "n1"),
    ]


def test_one_election_seen_by_three_nodes_is_one_term_and_one_leader_entry() -> None:
    view = seeded("n1", "n2", "n3")
    for node_id in ("n1", "n2", "n3"):
        view.apply(URLS[node_id], report("status", node_id=node_id, term=1, leader_id="n1"), 0.0)
    view.timeline.clear()
    # n1 dies; n2 campaigns in term 2 and wins; every node tells its side.
    view.mark_unreachable(URLS["n1"], 1.0, "connection refused")
    view.apply(URLS["n2"], report("role", node_id="n2", role="candidate", term=1, leader_id=None), 2.0)
    view.apply(URLS["n2"], report("term", node_id="n2", role="candidate", term=2, leader_id=None), 2.1)
    view.apply(URLS["n3"], report("term", node_id="n3", role="follower", term=2, leader_id=None), 2.2)
    view.apply(URLS["n2"], report("role", node_id="n2", role="leader", term=2, leader_id="n2"), 2.3)
    view.apply(URLS["n2"], report("leader", node_id="n2", role="leader", term=2, leader_id="n2"), 2.3)
    view.apply(URLS["n3"], report("leader", node_id="n3", role="follower", term=2, leader_id="n2"), 2.4)
    assert kinds(view.timeline) == [
        ("role", "n1", "follower", "unreachable"),
        ("role", "n2", "follower", "candidate"),
        ("term", "n2", None, None),
        ("role", "n2", "candidate", "leader"),
        ("leader", "n2", None, "n2"),
    ]
    leader = view.leader()
    assert leader is not None and leader.key == "n2"
    assert [e.seq for e in view.timeline] == sorted(e.seq for e in view.timeline)


def test_an_unreachable_node_keeps_what_it_last_said_and_comes_back() -> None:
    view = seeded("n1")
    view.apply(
        URLS["n1"], report("status", node_id="n1", role="leader", term=4, leader_id="n1", commit=9), 0.0
    )
    changes = view.mark_unreachable(URLS["n1"], 5.0, "silent for 1.25 s")
    node = view.nodes["n1"]
    assert (node.role, node.term, node.commit_index, node.reason) == (
        "unreachable",
        4,
        9,
        "silent for 1.25 s",
    )
    assert kinds(changes.timeline) == [("role", "n1", "leader", "unreachable")]
    assert view.leader() is None
    # Marking it again changes nothing but the reason.
    assert not view.mark_unreachable(URLS["n1"], 6.0, "silent for 1.25 s")
    assert view.mark_unreachable(URLS["n1"], 6.0, "connection refused").timeline == []

    changes = view.apply(URLS["n1"], report("status", node_id="n1", term=5, leader_id="n2", commit=12), 9.0)
    assert kinds(changes.timeline)[0] == ("role", "n1", "unreachable", "follower")
    assert view.nodes["n1"].reason is None
    assert view.node_json(view.nodes["n1"], 9.5)["last_contact_ms_ago"] == 500


def test_commit_events_move_the_indexes() -> None:
    """Indexes come with the nodes' commit events; nothing polls them."""
    view = seeded("n1")
    view.apply(
        URLS["n1"], report("status", node_id="n1", role="leader", term=2, leader_id="n1", commit=5), 0.0
    )
    changes = view.apply(
        URLS["n1"],
        report("commit", node_id="n1", role="leader", term=2, leader_id="n1", commit=9, applied=8),
        0.1,
    )
    node = view.nodes["n1"]
    assert (node.role, node.term, node.commit_index, node.applied_index) == ("leader", 2, 9, 8)
    assert changes.nodes == ["n1"] and not changes.timeline  # no role change: no timeline entry


def pre_voting(node_id: str, term: int, **kwargs: Any) -> Report:
    data = {**doc(node_id, role="candidate", term=term, leader_id=None, **kwargs), "pre_vote": True}
    return parse_event("role", json.dumps(data))


def test_a_pre_vote_is_shown_as_a_pre_vote_not_as_a_candidate_of_the_old_term() -> None:
    view = seeded("n2")
    view.apply(URLS["n2"], report("status", node_id="n2", term=0, leader_id=None), 0.0)
    changes = view.apply(URLS["n2"], pre_voting("n2", term=0), 1.0)
    assert kinds(changes.timeline) == [("role", "n2", "follower", "pre-vote")]
    node = view.node_json(view.nodes["n2"], 1.0)
    assert (node["role"], node["pre_vote"], node["term"]) == (
        "candidate",
        True,
        0,
    )  # data-role stays a contract role
    # Pre-vote won: a real candidate of the next term, then the leader.
    changes = view.apply(
        URLS["n2"], report("role", node_id="n2", role="candidate", term=1, leader_id=None), 1.1
    )
    assert kinds(changes.timeline) == [("role", "n2", "pre-vote", "candidate"), ("term", "n2", None, None)]
    assert view.node_json(view.nodes["n2"], 1.1)["pre_vote"] is False
    # Unreachable while pre-voting: the pre-vote ends with it.
    view.apply(URLS["n2"], pre_voting("n2", term=1), 2.0)
    changes = view.mark_unreachable(URLS["n2"], 3.0, "stream ended")
    assert kinds(changes.timeline) == [("role", "n2", "pre-vote", "unreachable")]
    assert view.nodes["n2"].pre_vote is False


def test_keep_alives_refresh_last_contact_of_live_nodes_only() -> None:
    view = seeded("n1")
    assert not view.contact(URLS["n1"], 1.0)  # not yet heard from: still connecting
    view.apply(URLS["n1"], report("status", node_id="n1"), 1.0)
    assert view.contact(URLS["n1"], 2.0).nodes == ["n1"]
    assert view.nodes["n1"].last_contact == 2.0


def test_membership_adds_nodes_to_watch_under_their_ids() -> None:
    view = seeded("n1")
    changes = view.apply(URLS["n1"], report("membership", node_id="n1", with_members=("n1", "n2", "n3")), 0.0)
    assert changes.watch == [URLS["n2"], URLS["n3"]]
    assert {"n2", "n3"} <= set(changes.nodes)
    assert (view.nodes["n2"].url, view.nodes["n2"].id, view.nodes["n2"].confirmed) == (
        URLS["n2"],
        "n2",
        False,
    )
    # Listed again: nothing new to watch.
    again = view.apply(URLS["n1"], report("membership", node_id="n1", with_members=("n1", "n2", "n3")), 1.0)
    assert again.watch == []
    # n4 joins later: it appears without a restart.
    later = view.apply(
        URLS["n1"], report("membership", node_id="n1", with_members=("n1", "n2", "n3", "n4")), 2.0
    )
    assert later.watch == [URLS["n4"]]


def test_membership_names_a_seed_not_reached_yet() -> None:
    view = seeded("n1", "n2")
    changes = view.apply(URLS["n1"], report("status", node_id="n1", with_members=("n1", "n2")), 0.0)
    assert URLS["n2"] in changes.removed and "n2" in changes.nodes
    assert view.nodes["n2"].seed and view.nodes["n2"].role == "unreachable"
    assert changes.watch == []


def test_a_second_source_for_a_node_already_reached_is_dropped_and_ignored() -> None:
    view = seeded("n1")
    view.apply(URLS["n1"], report("status", node_id="n1"), 0.0)
    alias = "http://node-one:9001"
    view.add_source(alias, 1.0, seed=True)
    changes = view.apply(alias, report("status", node_id="n1"), 1.5)
    assert changes.unwatch == [alias] and changes.removed == [alias]
    assert list(view.nodes) == ["n1"] and view.nodes["n1"].url == URLS["n1"]
    assert not view.add_source(alias, 2.0, seed=True)  # DNS finds it again: still ignored


def test_a_source_that_reaches_the_node_wins_over_a_membership_hint() -> None:
    view = seeded("n1")
    view.apply(URLS["n1"], report("status", node_id="n1", with_members=("n1", "n2")), 0.0)
    assert view.nodes["n2"].url == URLS["n2"]
    address = "http://192.168.7.2:9001"  # n2 as DNS gives it
    view.add_source(address, 1.0, seed=True)
    changes = view.apply(address, report("status", node_id="n2"), 1.2)
    assert changes.unwatch == [URLS["n2"]]
    assert view.nodes["n2"].url == address and view.nodes["n2"].confirmed
    assert URLS["n2"] not in view.sources
    # The membership keeps listing n2 at its own URL: no second watcher.
    again = view.apply(URLS["n1"], report("membership", node_id="n1", with_members=("n1", "n2")), 2.0)
    assert again.watch == []


def test_the_leaders_membership_marks_removed_nodes_and_drops_dead_ones() -> None:
    view = seeded("n1")
    view.apply(
        URLS["n1"], report("status", node_id="n1", role="leader", with_members=("n1", "n2", "n3")), 0.0
    )
    view.apply(URLS["n2"], report("status", node_id="n2"), 0.1)
    view.apply(URLS["n3"], report("status", node_id="n3"), 0.1)
    view.mark_unreachable(URLS["n3"], 1.0, "connection refused")
    changes = view.apply(
        URLS["n1"], report("membership", node_id="n1", role="leader", with_members=("n1",)), 2.0
    )
    assert "n3" in changes.removed and URLS["n3"] in changes.unwatch  # removed and dead: gone
    assert view.nodes["n2"].member is False  # removed but still running: shown as such
    changes = view.mark_unreachable(URLS["n2"], 3.0, "stream ended")
    assert changes.removed == ["n2"]
    # A follower's membership never removes anyone (it may lag the leader's).
    view = seeded("n1", "n2")
    view.apply(URLS["n2"], report("status", node_id="n2", with_members=("n2",)), 0.0)
    assert view.nodes[URLS["n1"]].member


def test_a_seed_removed_from_the_cluster_stays_on_the_page() -> None:
    view = seeded("n1", "n2")
    view.apply(URLS["n2"], report("status", node_id="n2"), 0.0)
    view.apply(URLS["n1"], report("status", node_id="n1", role="leader", with_members=("n1",)), 0.0)
    view.mark_unreachable(URLS["n2"], 1.0, "connection refused")
    assert view.nodes["n2"].member is False and "n2" in view.nodes


def test_voter_flags_follow_membership() -> None:
    view = seeded("n1")
    listed = doc("n1", role="leader", with_members=("n1", "n2"))
    listed["members"][1]["voter"] = False
    view.apply(URLS["n1"], parse_event("status", json.dumps(listed)), 0.0)
    assert view.nodes["n2"].voter is False and view.nodes["n1"].voter is True


def test_the_timeline_is_bounded() -> None:
    view = ClusterView(timeline_limit=10)
    view.add_source(URLS["n1"], 0.0, seed=True)
    for term in range(1, 40):
        role = "candidate" if term % 2 else "follower"
        view.apply(
            URLS["n1"], report("role", node_id="n1", role=role, term=term, leader_id=None), float(term)
        )
    assert len(view.timeline) == 10
    assert view.timeline[-1].term == 39


def test_snapshot_for_the_page() -> None:
    view = ClusterView(wall_offset=1000.0)
    view.add_source(URLS["n2"], 0.0, seed=True)
    view.add_source(URLS["n1"], 0.0, seed=True)
    view.apply(
        URLS["n1"], report("status", node_id="n1", role="leader", term=2, leader_id="n1", commit=4), 1.0
    )
    snap = view.snapshot_json(1.25)
    assert [n["id"] for n in snap["nodes"]] == [URLS["n2"], "n1"]
    assert snap["leader"] == {"id": "n1", "term": 2}
    n1 = snap["nodes"][1]
    assert (n1["role"], n1["commit_index"], n1["last_contact_ms_ago"], n1["reason"]) == (
        "leader",
        4,
        250,
        None,
    )
    assert snap["nodes"][0]["reason"] == "connecting"
    assert snap["timeline"][0]["at_ms"] == 1_001_000


def event(**fields: Any) -> str:
    """An event's data: a valid one with ``fields`` changed (None: left out)."""
    data = {"id": "n1", "role": "leader", "term": 1, "leader_id": "n1", "commit_index": 3, "applied_index": 3}
    data.update(fields)
    return json.dumps({k: v for k, v in data.items() if v is not None})


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("role", "{not json", "not JSON"),
        ("role", "[1, 2]", "Expected `object`"),
        ("role", event(id=None), "`id`"),
        ("role", event(id=""), r"`\$.id`"),
        ("role", event(role="king"), r"`\$.role`"),
        ("role", event(term=True), r"`\$.term`"),
        ("role", event(term=-1), r"`\$.term`"),
        ("role", event(leader_id=7), r"`\$.leader_id`"),
        ("role", event(commit_index="3"), r"`\$.commit_index`"),
        ("membership", event(), "`members` is missing"),
        ("status", event(members={}), r"`\$.members`"),
        ("status", event(members=[{"id": "n2", "url": "ftp://x"}]), r"`\$.members\[0\].url`"),
        ("gossip", event(), "unknown event"),
    ],
)
def test_malformed_events_are_refused_with_a_reason(name: str, data: str, problem: str) -> None:
    with pytest.raises(MalformedEvent, match=problem):
        parse_event(name, data)


def test_normalize_url() -> None:
    assert normalize_url(" HTTP://Node-1:9001/ ") == "http://node-1:9001"
    assert normalize_url("10.0.0.1:9001") == "http://10.0.0.1:9001"
    assert normalize_url("https://h/root/") == "https://h/root"


def test_a_replica_that_left_dns_and_the_membership_is_dropped() -> None:
    """Scale-down: a replica found by DNS stops and leaves DNS, and the
    leader removes it: the page drops it (a DNS address is no seed for
    ever)."""
    view = ClusterView()
    address = "http://172.18.0.9:9001"  # as DNS gives it
    view.add_source(URLS["n1"], 0.0, seed=True)
    view.add_source(address, 0.0, seed=True)
    view.apply(URLS["n1"], report("status", node_id="n1", role="leader", with_members=("n1", "n5")), 0.1)
    view.apply(address, report("status", node_id="n5"), 0.1)
    view.mark_unreachable(address, 1.0, "connection refused")
    assert view.forget_source(address, 1.5).removed == []  # still a member: shown unreachable
    changes = view.apply(
        URLS["n1"], report("membership", node_id="n1", role="leader", with_members=("n1",)), 2.0
    )
    assert "n5" in changes.removed and address in changes.unwatch
    assert sorted(view.nodes) == ["n1"]


def test_a_node_back_at_another_address_is_followed_there() -> None:
    """A replica restarted at a new address: the source at the new address
    takes over from the one that no longer reaches it, instead of being
    ignored as a duplicate; an ignored address is tried again once the node
    it duplicated is unreachable."""
    view = seeded("n1")
    view.apply(URLS["n1"], report("status", node_id="n1"), 0.0)
    view.mark_unreachable(URLS["n1"], 1.0, "connection refused")
    moved = "http://10.0.0.9:9001"
    view.add_source(moved, 2.0, seed=True)
    changes = view.apply(moved, report("status", node_id="n1"), 2.1)
    assert URLS["n1"] in changes.unwatch
    assert view.nodes["n1"].url == moved and view.nodes["n1"].role == "follower"
    # The old address is ignored while the node is reached at the new one...
    assert not view.add_source(URLS["n1"], 3.0, seed=True)
    # ...and tried again once it is not.
    view.mark_unreachable(moved, 4.0, "connection refused")
    assert view.add_source(URLS["n1"], 5.0, seed=True).watch == [URLS["n1"]]


def test_a_replica_reached_by_its_name_and_by_dns_is_dropped_once_gone_from_both() -> None:
    """Members are listed by name, DNS gives their addresses: the address
    is a duplicate of the name's source, and its seed goes with it when it
    leaves DNS."""
    view = ClusterView()
    address = "http://172.18.0.9:9001"  # as DNS gives it
    view.add_source(URLS["n1"], 0.0, seed=True)
    view.apply(URLS["n1"], report("status", node_id="n1", role="leader", with_members=("n1", "n5")), 0.1)
    view.apply(URLS["n5"], report("status", node_id="n5"), 0.2)  # reached by its name first
    view.add_source(address, 0.3, seed=True)
    assert view.apply(address, report("status", node_id="n5"), 0.4).unwatch == [address]  # a duplicate
    assert view.nodes["n5"].seed
    view.mark_unreachable(URLS["n5"], 1.0, "cannot connect")
    view.forget_source(address, 1.5)
    changes = view.apply(
        URLS["n1"], report("membership", node_id="n1", role="leader", with_members=("n1",)), 2.0
    )
    assert "n5" in changes.removed
    assert sorted(view.nodes) == ["n1"]


def test_an_address_that_left_dns_before_it_ever_answered_is_dropped() -> None:
    """A replica scaled away so soon that the page never learnt its id."""
    view = seeded("n1")
    address = "http://172.18.0.9:9001"  # as DNS gives it
    view.add_source(address, 0.0, seed=True)
    view.mark_unreachable(address, 1.0, "timed out")
    assert view.forget_source(address, 2.0).removed == [address]
    assert sorted(view.nodes) == [URLS["n1"]]
