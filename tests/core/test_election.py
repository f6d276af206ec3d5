"""Leader election (dissertation §3.4), pre-vote (§9.6), leader leases
against disruptive servers (§4.2.3) and check-quorum (§6.2).

One behaviour per test, named after the rule it checks, as etcd's
``raft_paper_test.go``.
"""

from __future__ import annotations

import pytest

from raft_trio.core import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    RemoveMember,
    RequestVote,
    RequestVoteResponse,
    Role,
)

from .helpers import CONFIG, Network, config, membership, of_type, storage_with_log

NO_PRE_VOTE = config(pre_vote=False, check_quorum=False)


def test_follower_starts_pre_vote_after_election_timeout() -> None:
    """§3.4: "If a follower receives no communication over a period of time
    called the election timeout, then it ... begins an election"; with
    pre-vote (§9.6) it first asks whether it could win, at term + 1,
    without changing its own term."""
    net = Network()
    a = net.cores["a"]
    timeout = a.status().election_timeout
    assert CONFIG.election_ticks_min <= timeout <= CONFIG.election_ticks_max

    net.tick("a", timeout - 1)
    assert a.status().role is Role.FOLLOWER
    net.tick("a")
    assert a.status().role is Role.PRE_CANDIDATE
    assert a.status().term == 0 and a.status().vote is None

    votes = of_type(net.take("a").all_messages(), RequestVote)
    assert sorted(m.dst for m in votes) == ["b", "c"]
    assert all(m.pre_vote and m.term == 1 and not m.transfer for m in votes)


def test_follower_becomes_candidate_after_election_timeout_without_pre_vote() -> None:
    """§3.4: "To begin an election, a follower increments its current term
    and transitions to candidate state. It then votes for itself and issues
    RequestVote RPCs in parallel to each of the other servers"; the term
    and vote are persisted before the requests go out (Figure 3.1)."""
    net = Network(config=NO_PRE_VOTE)
    net.time_out("a")
    a = net.cores["a"]
    assert a.status().role is Role.CANDIDATE
    assert (a.status().term, a.status().vote) == (1, "a")

    ready = net.take("a")
    assert ready.hard_state is not None
    assert (ready.hard_state.term, ready.hard_state.vote) == (1, "a")
    votes = of_type(ready.all_messages(), RequestVote)
    assert sorted(m.dst for m in votes) == ["b", "c"]
    assert all(
        m.term == 1 and not m.pre_vote and (m.last_log_index, m.last_log_term) == (0, 0) for m in votes
    )


def test_election_timeouts_are_randomized_within_configured_range() -> None:
    """§3.4: "Raft uses randomized election timeouts to ensure that split
    votes are rare", chosen from a fixed interval."""
    timeouts = {Network(seed=seed).cores["a"].status().election_timeout for seed in range(40)}
    assert min(timeouts) >= CONFIG.election_ticks_min
    assert max(timeouts) <= CONFIG.election_ticks_max
    assert len(timeouts) > 3


def test_heartbeats_keep_followers_from_campaigning() -> None:
    """§3.4: "A server remains in follower state as long as it receives
    valid RPCs from a leader"."""
    net = Network()
    net.elect("a")
    net.elapse(10 * CONFIG.election_ticks_max)
    assert net.leader() == "a"
    assert {core.status().term for core in net.cores.values()} == {1}


@pytest.mark.parametrize("pre_vote", [False, True])
@pytest.mark.parametrize(
    ("size", "down", "wins"),
    [(1, 0, True), (3, 0, True), (3, 1, True), (3, 2, False), (5, 2, True), (5, 3, False)],
)
def test_candidate_wins_election_with_votes_from_majority(
    size: int, down: int, wins: bool, pre_vote: bool
) -> None:
    """§3.4: "A candidate wins an election if it receives votes from a
    majority of the servers in the full cluster for the same term"; without
    a majority it keeps waiting (and, with pre-vote, never even raises its
    term, §9.6)."""
    ids = [f"n{i}" for i in range(size)]
    net = Network(ids, config=config(pre_vote=pre_vote, check_quorum=False))
    for node_id in ids[size - down :]:
        net.crash(node_id)

    net.campaign("n0")

    n0 = net.cores["n0"]
    if wins:
        assert (n0.status().role, n0.status().term) == (Role.LEADER, 1)
        assert all(net.cores[i].status().leader_id == "n0" for i in net.cores)
    elif pre_vote:
        assert (n0.status().role, n0.status().term) == (Role.PRE_CANDIDATE, 0)
    else:
        assert (n0.status().role, n0.status().term) == (Role.CANDIDATE, 1)


@pytest.mark.parametrize(("pre_vote", "term_after"), [(False, 2), (True, 1)])
def test_candidate_returns_to_follower_when_majority_rejects(pre_vote: bool, term_after: int) -> None:
    """§3.4/§3.6.1: a candidate whose log is behind a majority's cannot win;
    once a majority has refused it stops campaigning and returns to
    follower (with pre-vote it never left its term, §9.6)."""
    members = membership("abc")
    storages = {
        "a": storage_with_log(members, [], term=1),
        "b": storage_with_log(members, [1], term=1),
        "c": storage_with_log(members, [1], term=1),
    }
    net = Network(config=config(pre_vote=pre_vote, check_quorum=False), storages=storages)

    net.campaign("a")

    a = net.cores["a"]
    assert (a.status().role, a.status().term) == (Role.FOLLOWER, term_after)
    assert [net.cores[i].status().vote for i in "bc"] == [None, None]
    assert [net.cores[i].status().term for i in "bc"] == [term_after, term_after]


def test_candidate_becomes_follower_on_append_from_leader_of_its_term() -> None:
    """§3.4: "If the leader's term ... is at least as large as the
    candidate's current term, then the candidate recognizes the leader as
    legitimate and returns to follower state"."""
    net = Network(config=NO_PRE_VOTE)
    net.time_out("b")
    b = net.cores["b"]
    assert (b.status().role, b.status().term) == (Role.CANDIDATE, 1)

    net.step(AppendEntries(1, "a", "b", prev_index=0, prev_term=0, entries=(), commit=0))

    assert (b.status().role, b.status().term, b.status().leader_id) == (Role.FOLLOWER, 1, "a")
    (response,) = of_type(net.take("b").all_messages(), AppendEntriesResponse)
    assert response.success


def test_split_vote_is_resolved_by_a_later_election() -> None:
    """§3.4: "each candidate will time out and start a new election by
    incrementing its term"; randomized timeouts make the next one decisive."""
    net = Network("abcd", config=NO_PRE_VOTE)
    net.cut("a", "d")
    net.cut("b", "c")
    net.time_out("a")
    net.time_out("b")
    net.deliver_all()
    # c voted for a, d for b: two votes each, three needed.
    assert [(net.cores[i].status().role, net.cores[i].status().term) for i in "ab"] == [
        (Role.CANDIDATE, 1)
    ] * 2
    assert (net.cores["c"].status().vote, net.cores["d"].status().vote) == ("a", "b")

    net.heal()
    for _ in range(10 * CONFIG.election_ticks_max):
        net.elapse(1)
        if any(c.status().role is Role.LEADER for c in net.cores.values()):
            break
    leader = net.cores[net.leader()]
    assert leader.status().term >= 2


def test_votes_are_counted_once_per_server() -> None:
    """§3.4: a majority "of the servers": a vote delivered twice is still
    one vote."""
    net = Network("abcde", config=NO_PRE_VOTE)
    net.time_out("a")
    net.take("a")
    a = net.cores["a"]
    for _ in range(3):
        net.step(RequestVoteResponse(1, "b", "a", granted=True))
    assert a.status().role is Role.CANDIDATE
    net.step(RequestVoteResponse(1, "c", "a", granted=True))
    assert a.status().role is Role.LEADER


def test_vote_granted_at_most_once_per_term() -> None:
    """§3.4: "Each server will vote for at most one candidate in a given
    term, on a first-come-first-served basis" (a repeated request from the
    same candidate gets the same answer)."""
    net = Network()
    c = net.cores["c"]

    answers = []
    for candidate in ["a", "b", "a"]:
        net.step(RequestVote(1, candidate, "c", last_log_index=0, last_log_term=0))
        (answer,) = net.take("c").all_messages()
        assert isinstance(answer, RequestVoteResponse)
        answers.append((candidate, answer.granted))

    assert answers == [("a", True), ("b", False), ("a", True)]
    assert (c.status().term, c.status().vote) == (1, "a")
    assert (net.storages["c"].hard_state().term, net.storages["c"].hard_state().vote) == (1, "a")


@pytest.mark.parametrize("pre_vote", [False, True])
@pytest.mark.parametrize(
    ("last_index", "last_term", "granted"),
    [
        (2, 2, True),  # same last term and index
        (3, 2, True),  # same last term, longer
        (1, 2, False),  # same last term, shorter
        (5, 1, False),  # longer, but lower last term
        (1, 3, True),  # shorter, but higher last term
    ],
)
def test_vote_rejected_for_less_up_to_date_log(
    last_index: int, last_term: int, granted: bool, pre_vote: bool
) -> None:
    """§3.6.1: "The RequestVote RPC implements this restriction: ... the
    voter denies its vote if its own log is more up-to-date than that of the
    candidate. ... If the logs have last entries with different terms, then
    the log with the later term is more up-to-date. If the logs end with the
    same term, then whichever log is longer is more up-to-date." Pre-votes
    apply the same test (§9.6)."""
    voter_storage = storage_with_log(membership("abc"), [1, 2], term=2)
    net = Network(storages={"b": voter_storage})

    net.step(RequestVote(3, "a", "b", last_log_index=last_index, last_log_term=last_term, pre_vote=pre_vote))

    (answer,) = net.take("b").all_messages()
    assert isinstance(answer, RequestVoteResponse)
    assert answer.granted is granted
    assert answer.pre_vote is pre_vote


def test_pre_vote_does_not_change_any_term() -> None:
    """§9.6: "the Pre-Vote algorithm ... a candidate would first ask other
    servers whether its log was up-to-date enough to get their vote"; a
    partitioned server that keeps timing out never raises its term."""
    net = Network()
    net.isolate("c")
    net.elapse(10 * CONFIG.election_ticks_max, nodes=["c"])

    c = net.cores["c"]
    assert c.status().role is Role.PRE_CANDIDATE
    assert [core.status().term for core in net.cores.values()] == [0, 0, 0]
    assert net.storages["c"].hard_state().term == 0


def test_granting_a_pre_vote_changes_nothing_on_the_voter() -> None:
    """§9.6: a pre-vote is only a question: the voter keeps its term and
    vote and grants it at the term the candidate asked about."""
    net = Network()
    net.step(RequestVote(1, "a", "b", last_log_index=0, last_log_term=0, pre_vote=True))

    b = net.cores["b"]
    (answer,) = net.take("b").all_messages()
    assert isinstance(answer, RequestVoteResponse)
    assert (answer.granted, answer.pre_vote, answer.term) == (True, True, 1)
    assert (b.status().term, b.status().vote) == (0, None)


def test_partitioned_node_rejoining_with_pre_vote_does_not_disrupt_leader() -> None:
    """§9.6: "a server that has been partitioned ... will not be able to
    increment its term, since it cannot receive permission from a majority
    of the cluster"; when it rejoins, the leader keeps its term."""
    net = Network()
    net.elect("a")
    net.isolate("c")
    net.elapse(10 * CONFIG.election_ticks_max)
    assert net.cores["c"].status().term == 1

    net.heal()
    net.elapse(CONFIG.election_ticks_max)

    assert net.leader() == "a"
    assert [(core.status().term, core.status().leader_id) for core in net.cores.values()] == [(1, "a")] * 3


def test_partitioned_node_rejoining_without_pre_vote_disrupts_leader() -> None:
    """§9.6, the problem pre-vote solves: without it the partitioned server
    keeps incrementing its term, and its higher term deposes the leader
    when it rejoins."""
    net = Network(config=NO_PRE_VOTE)
    net.elect("a")
    net.isolate("c")
    net.elapse(10 * CONFIG.election_ticks_max)
    assert net.cores["c"].status().term > 1

    net.heal()
    net.elapse(CONFIG.election_ticks_max)

    assert net.cores["a"].status().term > 1


@pytest.mark.parametrize("pre_vote", [False, True])
def test_follower_within_leader_lease_ignores_request_vote(pre_vote: bool) -> None:
    """§4.2.3: "if a server receives a RequestVote request within the
    minimum election timeout of hearing from a current leader, it does not
    update its term or grant its vote" (it does not answer at all)."""
    net = Network()
    net.elect("a")
    b = net.cores["b"]

    net.tick("b", CONFIG.election_ticks_min - 1)
    net.step(RequestVote(2, "c", "b", last_log_index=1, last_log_term=1, pre_vote=pre_vote))
    assert net.take("b").all_messages() == []
    assert (b.status().term, b.status().vote, b.status().leader_id) == (1, "a", "a")

    net.tick("b")  # the lease has run out
    net.step(RequestVote(2, "c", "b", last_log_index=1, last_log_term=1, pre_vote=pre_vote))
    answers = of_type(net.take("b").all_messages(), RequestVoteResponse, dst="c")
    assert [m.granted for m in answers] == [True]


def test_transfer_flagged_vote_overrides_leader_lease() -> None:
    """§3.10 with §4.2.3: "a RequestVote ... sent as part of a leadership
    transfer ... should be processed even within the minimum election
    timeout", since the leader itself asked for it."""
    net = Network()
    net.elect("a")

    net.step(RequestVote(2, "c", "b", last_log_index=1, last_log_term=1, transfer=True))

    b = net.cores["b"]
    (answer,) = net.take("b").all_messages()
    assert isinstance(answer, RequestVoteResponse) and answer.granted
    assert (b.status().term, b.status().vote) == (2, "c")


@pytest.mark.parametrize(
    "message",
    [
        AppendEntriesResponse(2, "b", "a", success=False, index=0),
        HeartbeatResponse(2, "b", "a", seq=0),
        RequestVoteResponse(2, "b", "a", granted=False),
    ],
    ids=["append_resp", "hb_resp", "vote_resp"],
)
def test_leader_steps_down_on_higher_term(message: object) -> None:
    """§3.3: "If a candidate or leader discovers that its term is out of
    date, it immediately reverts to follower state"."""
    net = Network()
    a = net.elect("a")

    net.step(message)  # type: ignore[arg-type]

    assert (a.status().role, a.status().term, a.status().leader_id) == (Role.FOLLOWER, 2, None)
    ready = net.take("a")
    assert ready.soft_state is not None and ready.soft_state.role is Role.FOLLOWER
    assert ready.hard_state is not None and (ready.hard_state.term, ready.hard_state.vote) == (2, None)


def test_deposed_leader_learns_new_term_from_stale_heartbeat_answer() -> None:
    """§3.3: "If a server receives a request with a stale term number, it
    rejects the request"; the answer carries the current term, and the
    stale leader steps down on seeing it."""
    net = Network()
    net.elect("a")
    net.isolate("a")
    net.elapse(5 * CONFIG.election_ticks_max, nodes=["b", "c"])
    (new_leader,) = [i for i in "bc" if net.cores[i].status().role is Role.LEADER]
    assert net.cores["a"].status().role is Role.LEADER  # a does not know yet

    net.heal()
    net.tick("a")  # a's heartbeat reaches a server of the new term
    net.deliver_all()
    net.elapse(1)

    a = net.cores["a"]
    assert (a.status().role, a.status().term, a.status().leader_id) == (
        Role.FOLLOWER,
        net.cores[new_leader].status().term,
        new_leader,
    )


def test_check_quorum_isolated_leader_steps_down() -> None:
    """§6.2: "a leader that cannot communicate with a majority of the
    cluster ... steps down if an election timeout elapses without a
    successful round of heartbeats to a majority of its cluster"."""
    net = Network()
    a = net.elect("a")
    net.isolate("a")

    for _ in range(CONFIG.election_ticks_min):
        net.tick("a")
        net.deliver_all()
    assert a.status().role is Role.LEADER  # it heard from everyone in the first window
    for _ in range(CONFIG.election_ticks_min):
        net.tick("a")
        net.deliver_all()

    assert (a.status().role, a.status().term, a.status().leader_id) == (Role.FOLLOWER, 1, None)


def test_leader_without_check_quorum_stays_leader_when_isolated() -> None:
    """§6.2's counterpart: without check-quorum nothing makes an isolated
    leader step down (the reason check-quorum exists)."""
    net = Network(config=config(check_quorum=False))
    a = net.elect("a")
    net.isolate("a")
    net.elapse(10 * CONFIG.election_ticks_max, nodes=["a"])
    assert a.status().role is Role.LEADER


def test_learner_does_not_campaign_and_is_not_asked_to_vote() -> None:
    """§4.2.1: learners ("non-voting members") receive the log but are not
    considered for majorities: they never start elections and candidates do
    not ask them for votes."""
    net = Network("abd", learners="d")
    net.tick("d", 10 * CONFIG.election_ticks_max)
    assert net.cores["d"].status().role is Role.FOLLOWER
    assert net.take("d").all_messages() == []

    net.time_out("a")
    votes = of_type(net.take("a").all_messages(), RequestVote)
    assert [m.dst for m in votes] == ["b"]


STAGGER = CONFIG.refused_stagger_ticks
#: Ticks between two consecutive turns' windows: a window and a heartbeat.
SPACING = CONFIG.turn_spacing_ticks


def _ticks_until_campaign(net: Network, node_id: str) -> int:
    """Tick ``node_id`` alone until it campaigns; how many ticks that took."""
    core = net.cores[node_id]
    for ticks in range(1, CONFIG.election_ticks_max + 2):
        core.tick()
        if core.status().role is not Role.FOLLOWER:
            return ticks
    raise AssertionError(f"{node_id} did not campaign")


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("follower", "turn"), [("b", 0), ("c", 1), ("d", 2)])
def test_follower_told_its_leader_refuses_campaigns_once_its_lease_ends(
    follower: str, turn: int, seed: int
) -> None:
    """A crashed leader's port refuses connections: a follower told so
    campaigns in its turn's window, which opens one tick after the
    minimum election timeout since it last heard from the leader (that
    minimum is the lease it promised the leader, §4.2.3), a window and a
    heartbeat later for each voter ranked before it; not at a random point of the whole
    range (sooner or later: turns, not chance, keep followers apart)."""
    net = Network("abcd", seed=seed)
    net.elect("a")
    heard = 3
    net.tick(follower, heard)
    assert net.cores[follower].report_refused("a")
    opens = CONFIG.election_ticks_min + 1 + turn * SPACING
    timeout = net.cores[follower].status().election_timeout
    assert opens <= timeout < opens + STAGGER

    assert not net.cores[follower].report_refused("a")  # the stream's next attempt
    assert net.cores[follower].status().election_timeout == timeout, "a retry moved the turn"
    assert heard + _ticks_until_campaign(net, follower) == timeout
    assert net.cores[follower].status().role is Role.PRE_CANDIDATE


def test_hearing_from_the_leader_after_a_refused_report_puts_the_random_timeout_back() -> None:
    """The report was wrong (the leader's port refused this follower only):
    its next message puts back a timeout drawn from the whole range."""
    drawn = set()
    for seed in range(20):
        net = Network(seed=seed)
        net.elect("a")
        b = net.cores["b"]
        b.report_refused("a")
        net.elapse(1)
        assert b.status().leader_id == "a"
        drawn.add(b.status().election_timeout)
    assert min(drawn) >= CONFIG.election_ticks_min and max(drawn) <= CONFIG.election_ticks_max
    assert len(drawn) > STAGGER, f"still turns: {sorted(drawn)}"


def test_refused_report_keeps_the_leader_lease() -> None:
    """Within the minimum election timeout of hearing from its leader, a
    follower told that the leader refuses still ignores vote requests:
    the report shortens its own wait, never the promise it made."""
    net = Network()
    net.elect("a")
    b = net.cores["b"]
    b.report_refused("a")
    net.tick("b", CONFIG.election_ticks_min - 1)
    net.step(RequestVote(2, "c", "b", last_log_index=1, last_log_term=1, pre_vote=True))
    assert net.take("b").all_messages() == []
    assert (b.status().term, b.status().leader_id) == (1, "a")


@pytest.mark.parametrize("who", ["another peer", "the leader itself", "a candidate"])
def test_refused_report_changes_nothing_but_a_followers_leader(who: str) -> None:
    """Only a follower told about its own leader moves its timer: a
    refusing follower is no news about the leader, and a leader or a
    candidate has no leader to lose."""
    net = Network()
    net.elect("a")
    node, about = {"another peer": ("b", "c"), "the leader itself": ("a", "b"), "a candidate": ("b", "a")}[
        who
    ]
    core = net.cores[node]
    if who == "a candidate":
        net.time_out("b")
    before = core.status()
    core.report_refused(about)
    after = core.status()
    assert (after.role, after.election_timeout, after.leader_id) == (
        before.role,
        before.election_timeout,
        before.leader_id,
    )


def test_refused_report_changes_nothing_on_a_learner() -> None:
    """A learner never campaigns, so it has no timer to move."""
    net = Network("abd", learners="d")
    net.step(Heartbeat(1, "a", "d", commit=0, seq=1))
    d = net.cores["d"]
    assert (d.status().leader_id, d.status().membership.voters) == ("a", {"a", "b"})
    before = d.status().election_timeout
    d.report_refused("a")
    assert d.status().election_timeout == before
    net.tick("d", 10 * CONFIG.election_ticks_max)
    assert d.status().role is Role.FOLLOWER


def test_false_refused_report_does_not_unseat_a_healthy_leader() -> None:
    """A leader whose port refuses one follower only (and whose messages
    no longer reach it): that follower pre-votes early, the other follower,
    still hearing the leader, refuses, and nobody's term moves."""
    net = Network()
    net.elect("a")
    net.cores["b"].report_refused("a")
    net.cut("a", "b")
    net.elapse(5 * CONFIG.election_ticks_max)

    assert net.leader() == "a"
    assert {core.status().term for core in net.cores.values()} == {1}
    assert net.sent(RequestVote, src="b", dst="c"), "b never asked: the test proves nothing"


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("size", [3, 5])
def test_followers_told_the_leader_crashed_elect_the_first_in_turn(seed: int, size: int) -> None:
    """Every follower told at once that the crashed leader refuses: the
    first in turn is elected within its window, whatever the seed (no
    split vote: a split would cost a whole random timeout more)."""
    net = Network("abcde"[:size], seed=seed)
    net.elect("a")
    net.crash("a")
    for follower in "bcde"[: size - 1]:
        net.cores[follower].report_refused("a")
    net.elapse(CONFIG.election_ticks_min + STAGGER)
    assert net.leader() == "b"
    assert net.cores["b"].status().term == 2


def test_followers_told_long_after_the_lease_ended_still_take_turns() -> None:
    """A leader silent for longer than the lease before it died (paused,
    say): the followers' windows open at the report, not at the lease's
    end, which has passed, so they still take turns instead of both
    campaigning at the next tick and splitting the vote. (Timeouts drawn
    from 10-1,000 ticks and no turn at the lease's end, so that they are
    still running when told.)"""
    wide = config(election_ticks_max=1000, quiet_leader_turns=False)
    silent = CONFIG.election_ticks_min + 10
    runs = 0
    for seed in range(30):
        net = Network(config=wide, seed=seed)
        net.elect("a")
        net.crash("a")
        net.elapse(silent)
        if any(net.cores[f].status().role is not Role.FOLLOWER for f in "bc"):
            continue  # a drawn timeout ran out first: not this case
        runs += 1
        for follower in "bc":
            assert net.cores[follower].report_refused("a")
        net.elapse(2 * STAGGER)
        assert net.leader() == "b", f"seed {seed}"
        assert net.cores["b"].status().term == 2, f"seed {seed}: a split vote"
    assert runs >= 20


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("follower", "turn"), [("b", 0), ("c", 1), ("d", 2)])
def test_follower_of_a_quiet_leader_takes_its_turn_once_its_lease_ends(
    follower: str, turn: int, seed: int
) -> None:
    """No word from the leader for the whole lease (a paused leader, a
    dead machine, a partition) is news enough: the follower takes the
    turn it would take if told the leader refuses, not the rest of its
    random draw."""
    net = Network("abcd", seed=seed)
    net.elect("a")
    opens = CONFIG.election_ticks_min + 1 + turn * SPACING
    assert opens <= _ticks_until_campaign(net, follower) < opens + STAGGER
    assert net.cores[follower].status().role is Role.PRE_CANDIDATE


def test_a_follower_of_a_leader_wakes_its_ticker_when_its_lease_ends() -> None:
    """A lazy ticker sleeps until ``ticks_until_due``: for a follower of a
    leader that is the lease's end, where it takes its turn, whatever
    later point its random draw names."""
    for seed in range(20):
        net = Network(seed=seed)
        net.elect("a")
        b = net.cores["b"]
        net.tick("b", 3)
        assert b.ticks_until_due() == CONFIG.election_ticks_min - 3, f"seed {seed}"


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("size", [3, 5])
def test_followers_of_a_silent_leader_elect_the_first_in_turn(seed: int, size: int) -> None:
    """A leader that stops without a refused port (nobody is told): the
    first in turn is elected within its window once the leases end,
    whatever the seed, with no split vote."""
    net = Network("abcde"[:size], seed=seed)
    net.elect("a")
    net.crash("a")
    net.elapse(CONFIG.election_ticks_min + STAGGER)
    assert net.leader() == "b"
    assert net.cores["b"].status().term == 2


@pytest.mark.parametrize("seed", range(10))
def test_a_voter_being_removed_takes_its_turn_after_the_voters_that_stay(seed: int) -> None:
    """The leader appended b's removal and died before it committed: b
    holds it uncommitted, so it may still campaign (§4.2.2), but the
    others count their turns among the voters that stay, where b is not.
    Counted among them, b took c's turn (both first, in one window): b
    was elected to lead a configuration without it, to commit its own
    removal and hand over (two elections for one), or the two split the
    vote. b goes after them all, and c is elected in the first window."""
    net = Network("abcd", seed=seed)
    net.elect("a")
    net.cores["a"].change_membership(RemoveMember("b"))
    net.step(*of_type(net.take("a").all_messages(), AppendEntries))
    for follower in "bcd":
        net.take(follower)  # the removal persisted, the answers lost with a
    net.crash("a")
    assert all(net.cores[f].status().membership.voters == {"a", "c", "d"} for f in "bcd")
    net.elapse(CONFIG.election_ticks_min + STAGGER)
    assert net.leader() == "c"
    assert net.cores["c"].status().term == 2


@pytest.mark.parametrize(
    "setting", ["no leader known", "quiet_leader_turns=False"], ids=["no leader", "turns off"]
)
def test_a_follower_without_a_turn_campaigns_at_its_random_draw(setting: str) -> None:
    """The random draw stays where no leader is known (a fresh cluster, a
    vote given) and for every follower when turns are off (etcd's
    behaviour): its campaigns fall over the whole range."""
    drawn = set()
    for seed in range(20):
        if setting == "no leader known":
            net = Network(seed=seed)
        else:
            net = Network(config=config(quiet_leader_turns=False), seed=seed)
            net.elect("a")
        drawn.add(_ticks_until_campaign(net, "b"))
    assert min(drawn) >= CONFIG.election_ticks_min and max(drawn) <= CONFIG.election_ticks_max
    assert len(drawn) > 2 * STAGGER, f"turns: {sorted(drawn)}"


@pytest.mark.parametrize("skew", range(11))
def test_followers_that_last_heard_the_leader_apart_rarely_split_the_vote(skew: int) -> None:
    """One follower missed the leader's last few heartbeats, so the turns
    of the two, counted from when each last heard it, may meet: they then
    campaign on the same tick only by chance (a random tick of each
    window), so that no skew splits the vote every time. Over 20 seeds
    a leader comes within two windows of the lease's end in half the runs at least,
    and within the upper election timeout more in all of them."""
    quick = 0
    for seed in range(20):
        net = Network(seed=seed)
        net.elect("a")
        net.elapse(2)
        lose = net.cut("a", "c")
        net.elapse(skew)
        net.heal(lose)
        net.crash("a")
        for follower in "bc":
            net.cores[follower].report_refused("a")
        ticks = 0
        while not any(core.status().role is Role.LEADER for core in net.cores.values()):
            net.elapse(1)
            ticks += 1
            assert ticks < CONFIG.election_ticks_min + 2 * CONFIG.election_ticks_max, (
                f"seed {seed}, skew {skew}: no leader"
            )
        quick += ticks <= CONFIG.election_ticks_min + 2 * STAGGER
    assert quick >= 10, f"skew {skew}: only {quick} of 20 runs elected a leader within two windows"
