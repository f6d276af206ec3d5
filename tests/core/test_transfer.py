"""Leadership transfer (dissertation §3.10)."""

from __future__ import annotations

import pytest

from raft_trio.core import (
    AddLearner,
    AppendEntries,
    AppendEntriesResponse,
    ProposalDropped,
    RaftError,
    RequestVote,
    Role,
    TimeoutNow,
)

from .helpers import CONFIG, Network, of_type


def test_transfer_sends_timeout_now_to_caught_up_target() -> None:
    """§3.10 step 2: once the target's log is current, "the prior leader
    sends a TimeoutNow request to the target server", which then starts an
    election and wins it."""
    net = Network()
    a = net.elect("a")

    assert a.transfer_leadership("b") == "b"
    (timeout_now,) = of_type(net.take("a").all_messages(), TimeoutNow)
    assert timeout_now.dst == "b"

    net.step(timeout_now)
    net.deliver_all()
    assert net.leader() == "b"
    assert (net.cores["b"].status().term, a.status().role, a.status().leader_id) == (2, Role.FOLLOWER, "b")


def test_transfer_first_catches_the_target_up() -> None:
    """§3.10 step 1: "The prior leader ... the target server's log is
    brought up to date" before TimeoutNow is sent; entries the target
    missed are in its log before it campaigns."""
    net = Network()
    a = net.elect("a")
    cut_b = net.isolate("b")
    a.propose(b"x")
    net.deliver_all()
    net.heal(cut_b)

    a.transfer_leadership("b")
    ready = net.take("a")
    assert of_type(ready.all_messages(), TimeoutNow) == []
    net.send(*ready.all_messages())
    net.deliver_all()

    assert net.leader() == "b"
    (timeout_now,) = net.sent(TimeoutNow)
    acks = [m for m in net.sent(AppendEntriesResponse, "b", "a") if m.success and m.index == 2]
    assert acks and net.delivered.index(acks[0]) < net.delivered.index(timeout_now)
    assert net.log("b")[:2] == [(1, 1), (2, 1)]


def test_proposals_are_refused_while_transfer_is_under_way() -> None:
    """§3.10: "the prior leader stops accepting new client requests" during
    the transfer (they would only have to be replicated to the target
    too); configuration changes are refused likewise."""
    net = Network()
    a = net.elect("a")
    net.isolate("b")
    a.transfer_leadership("b")

    with pytest.raises(ProposalDropped):
        a.propose(b"x")
    with pytest.raises(ProposalDropped):
        a.change_membership(AddLearner("d", "http://d"))
    assert a.status().role is Role.LEADER


def test_transfer_is_aborted_after_transfer_ticks() -> None:
    """§3.10: "If the transfer does not complete within about an election
    timeout, the prior leader aborts the transfer and resumes accepting
    client requests"."""
    net = Network()
    a = net.elect("a")
    net.isolate("b")
    a.transfer_leadership("b")

    for _ in range(CONFIG.transfer_ticks - 1):
        net.tick("a")
        net.deliver_all()
    with pytest.raises(ProposalDropped):
        a.propose(b"x")

    net.tick("a")
    net.deliver_all()
    assert a.status().role is Role.LEADER
    assert a.propose(b"x") == 2


def test_transfer_target_campaigns_without_pre_vote_and_overrides_leases() -> None:
    """§3.10 with §9.6 and §4.2.3: the target starts a real election at
    once (no pre-vote: the leader asked for it), flagged as a transfer so
    that followers within their leader lease still vote."""
    net = Network()
    a = net.elect("a")
    a.transfer_leadership("c")
    net.step(*of_type(net.take("a").all_messages(), TimeoutNow))

    c = net.cores["c"]
    assert (c.status().role, c.status().term) == (Role.CANDIDATE, 2)
    votes = of_type(net.take("c").all_messages(), RequestVote)
    assert sorted(m.dst for m in votes) == ["a", "b"]
    assert all(m.transfer and not m.pre_vote and m.term == 2 for m in votes)

    net.send(*votes)
    net.deliver_all()
    assert net.leader() == "c"
    assert net.cores["b"].status().vote == "c"


def test_transfer_target_gets_appends_not_timeout_now_while_lagging() -> None:
    """§3.10: TimeoutNow goes out only when the target's match index
    reaches the leader's last index; until then it receives entries."""
    net = Network()
    a = net.elect("a")
    lose_to_c = net.drop(lambda m: m.dst == "c" and isinstance(m, AppendEntries))
    a.propose(b"x")
    net.deliver_all()
    assert a.status().progress["c"].match == 1

    a.transfer_leadership("c")
    net.deliver_all()
    assert net.sent(TimeoutNow) == []

    net.heal(lose_to_c)
    net.elapse(1)
    assert net.leader() == "c"


def test_transfer_without_target_picks_most_caught_up_voter() -> None:
    """§3.10: without a named target the leader picks the voter whose log
    is most caught up, so the transfer completes soonest."""
    net = Network()
    a = net.elect("a")
    net.isolate("b")
    a.propose(b"x")
    net.deliver_all()

    assert a.transfer_leadership() == "c"


def test_transfer_without_target_passes_over_a_silent_voter() -> None:
    """Without a named target, a voter that did not answer during the last
    check-quorum round (stopped, partitioned) is not picked while one that
    did is, however caught up its log looked when it went silent: a node
    that stops hands leadership to a live follower, not to one that
    stopped just before it (as etcd picks the longest-connected member)."""
    net = Network()
    a = net.elect("a")
    net.deliver_all()
    assert a.status().progress["b"].match == a.status().progress["c"].match
    net.crash("b")
    net.elapse(CONFIG.election_ticks_min + 1, nodes="ac")

    assert a.transfer_leadership() == "c"


def test_transfer_to_a_learner_is_refused() -> None:
    """§3.10: the target has to win an election, so it must be a voter;
    the leader keeps taking proposals."""
    net = Network("abd", learners="d")
    net.drop(lambda m: isinstance(m, AppendEntries))  # nothing commits: d stays a learner
    a = net.elect("a")

    with pytest.raises(RaftError):
        a.transfer_leadership("d")
    assert a.status().lead_transferee is None
    assert a.propose(b"x") == 2
