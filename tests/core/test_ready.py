"""The Ready is the core's only output, and a leader's messages travel in
it ahead of its persist (§10.2.1: "the leader can write to its disk in
parallel with replicating to its followers"); the core's state is read
only through ``status()``; its inputs are the methods listed in INPUTS."""

from __future__ import annotations

import inspect

import pytest

from raft_trio.core import (
    INPUTS,
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    Message,
    RaftCore,
    RaftError,
    Ready,
    RequestVote,
    Role,
)
from raft_trio.core._raft import COMMIT_RECORD_TICKS, OUTPUT, QUERIES
from raft_trio.testing.memory import finish_ready, persist, take_ready

from .helpers import CONFIG, Network, config, of_type, term_at


def test_the_core_offers_its_inputs_its_output_and_its_queries_and_nothing_else() -> None:
    public = {name for name, _ in inspect.getmembers(RaftCore) if not name.startswith("_")}
    assert public == {*INPUTS, OUTPUT, *QUERIES}


def test_a_leaders_appends_go_at_once_and_a_followers_answers_after_the_persist() -> None:
    net = Network()
    a = net.elect("a")
    a.propose(b"x")
    ready = net.take("a")
    assert ready.entries and of_type(ready.messages, AppendEntries)
    assert ready.messages_after_persist == []
    net.step(*of_type(ready.messages, AppendEntries, dst="b"))
    answer = net.take("b")
    assert answer.entries and answer.messages == []
    assert [(m.success, m.index) for m in of_type(answer.messages_after_persist, AppendEntriesResponse)] == [
        (True, 2)
    ]


def test_a_followers_answer_to_a_heartbeat_goes_at_once_even_in_a_term_not_yet_durable() -> None:
    """It acknowledges no entry and no vote (see raft_trio.core._ready):
    the runtime sends it without a turn of its ready loop."""
    net = Network()
    net.elect("a")  # term 1
    net.step(Heartbeat(term=2, src="c", dst="b", commit=0, seq=7))  # a newer leader's
    ready = net.take("b")
    assert ready.hard_state is not None and ready.hard_state.term == 2, "the term is still to persist"
    assert [(m.term, m.seq) for m in of_type(ready.messages, HeartbeatResponse)] == [(2, 7)]
    assert of_type(ready.messages_after_persist, HeartbeatResponse) == []


def test_a_candidates_vote_requests_wait_for_its_term_and_vote_to_be_durable() -> None:
    """Figure 3.1: term and vote are persisted before any RPC that depends
    on them; this is also what lets the leader's messages go early."""
    net = Network(config=config(pre_vote=False))
    net.time_out("a")
    ready = net.take("a")
    assert ready.hard_state is not None and (ready.hard_state.term, ready.hard_state.vote) == (1, "a")
    assert ready.messages == []
    assert len(of_type(ready.messages_after_persist, RequestVote)) == 2


def test_a_lone_voter_holds_its_messages_of_a_new_term_until_that_term_is_durable() -> None:
    """A lone voter elects itself with no vote asked and nothing written:
    its first Ready carries the new term, and its AppendEntries of that
    term (to a learner here) leave only after that Ready's fsync. Once the
    term is durable its appends go at once again."""
    net = Network("al", learners="l")
    cut = net.isolate("l")  # the learner lags, so it is not promoted
    a = net.elect("a")
    old_term = a.term
    net.crash("a")
    a = net.restart("a")
    net.time_out("a")  # elects itself at once: the only voter
    assert a.basic_status().role is Role.LEADER and a.term == old_term + 1
    assert net.storages["a"].hard_state().term == old_term, "the new term is not durable yet"
    sent: list[Message] = []
    first = take_ready(a, sent.append)
    assert first.hard_state is not None and first.hard_state.term == a.term
    assert of_type(first.messages, AppendEntries) == [], "an append of a term not yet durable left at once"
    assert [m.term for m in of_type(first.messages_after_persist, AppendEntries, dst="l")] == [a.term]
    a.tick()  # heartbeat_ticks=1: a heartbeat round is due while the fsync runs
    meanwhile = take_ready(a, sent.append)
    assert meanwhile.only_messages() and meanwhile.messages == []
    assert sent == [], "nothing of the new term left before its fsync"
    persist(net.storages["a"], first)
    finish_ready(a, first, send=sent.append, apply=lambda ready: None)
    assert [m.term for m in of_type(sent, AppendEntries, dst="l")] == [a.term]
    net.heal(cut)
    net.deliver_all()  # the rest, then the learner's answers: it catches up
    a.propose(b"y")
    appends = of_type(take_ready(a, send=net.send).messages, AppendEntries, dst="l")
    assert [[e.data for e in m.entries] for m in appends] == [[b"y"]], "durable now: appends go at once"


def test_a_lone_voter_that_dies_before_its_new_term_is_durable_leaves_no_learner_diverged() -> None:
    """What the rule above prevents (found by review): the lone voter's
    first Ready of term T+1 is in flight, a client's write X replicates to
    the learner, the voter dies before the fsync, restarts in term T, leads
    T+1 again and writes Y at X's index. Had X left early, the learner
    would keep X at (index, T+1), where the voter applies Y; the memory
    cluster's apply checks that no two nodes apply different entries at
    one index."""
    net = Network("al", learners="l")
    cut = net.isolate("l")  # the learner lags, so it is not promoted
    a = net.elect("a")
    a.propose(b"before")
    net.deliver_all()
    net.crash("a")
    a = net.restart("a")
    net.time_out("a")
    term = a.term
    net.heal(cut)
    take_ready(a, send=net.send)  # the new term's first Ready: its fsync never ends
    index_x = a.propose(b"X")
    net.deliver_all()
    assert term_at(net.storages["l"], index_x) != term, "the learner took an entry of a term not durable"
    net.crash("a")  # kill -9 before the fsync: term T+1 is lost
    a = net.restart("a")
    assert a.term == term - 1
    net.time_out("a")
    assert a.basic_status().role is Role.LEADER and a.term == term
    index_y = a.propose(b"Y")
    assert index_y == index_x
    net.deliver_all()
    net.elapse(5)
    assert [e.data for e in net.applied["l"] if e.index == index_x] == [b"Y"]


def test_the_commit_index_rides_along_with_entries_at_most_every_commit_record_ticks() -> None:
    """The commit index is volatile state: a one-entry Ready does not
    rewrite the hard state for it (a second page in every transaction at
    one client's pace), only entries written COMMIT_RECORD_TICKS after the
    last record carry it; a new term or vote goes at once."""
    net = Network()
    a = net.elect("a")

    def write(data: bytes) -> Ready:
        a.propose(data)
        ready = net.take("a")
        net.send(*ready.all_messages())
        net.deliver_all()
        return ready

    net.elapse(COMMIT_RECORD_TICKS)
    assert write(b"x").hard_state is not None  # the first entries after a while record the commit
    recorded = net.storages["a"].hard_state().commit
    ready = write(b"y")
    assert ready.entries and ready.hard_state is None
    assert a.basic_status().commit > recorded, "x committed meanwhile, and is not recorded with y"
    net.elapse(COMMIT_RECORD_TICKS)
    ready = write(b"z")
    assert ready.hard_state is not None and ready.hard_state.commit > recorded
    net.step(Heartbeat(term=a.term + 1, src="c", dst="b", commit=0, seq=1))  # a newer term reaches b
    assert net.take("b").hard_state is not None, "a term goes to disk at once"


def test_while_a_ready_is_in_flight_the_leader_still_replicates_and_heartbeats() -> None:
    """The runtime's fsync of one Ready runs while new proposals arrive:
    their AppendEntries, and heartbeats, come out at once in Readys of
    messages only; everything else waits for ``advance``, and the next
    Ready persists all that arrived meanwhile in one write."""
    net = Network()
    a = net.elect("a")
    a.propose(b"x")
    sent: list[object] = []
    in_flight = take_ready(a, sent.append)
    assert in_flight.entries and not in_flight.only_messages()

    a.propose(b"y")
    a.propose(b"z")
    assert a.has_ready()
    meanwhile = take_ready(a, sent.append)
    assert meanwhile.only_messages()
    appended = of_type(meanwhile.messages, AppendEntries, dst="b")
    assert [[e.data for e in m.entries] for m in appended] == [[b"y", b"z"]]
    a.tick()  # heartbeat_ticks=1: a heartbeat round is due
    heartbeats = of_type(take_ready(a, sent.append).messages, Heartbeat)
    assert sorted(m.dst for m in heartbeats) == ["b", "c"]
    assert not a.has_ready(), "nothing but messages comes out while a Ready is in flight"

    persist(net.storages["a"], in_flight)
    finish_ready(a, in_flight, send=sent.append, apply=lambda ready: None)
    following = take_ready(a, sent.append)
    assert [e.data for e in following.entries] == [b"y", b"z"]


def test_advance_takes_only_the_ready_in_flight() -> None:
    net = Network()
    a = net.elect("a")
    a.propose(b"x")
    in_flight = a.ready()
    with pytest.raises(RaftError):
        a.advance(Ready(entries=in_flight.entries))  # an equal copy is not the one in flight
    a.advance(in_flight)
    with pytest.raises(RaftError):
        a.advance(in_flight)  # once


def test_status_is_a_frozen_copy() -> None:
    net = Network(config=CONFIG)
    a = net.elect("a")
    before = a.status()
    assert before.role is Role.LEADER and before.is_leader and before.progress["b"].match == 1
    with pytest.raises(AttributeError):
        before.term = 9  # type: ignore[misc]
    a.propose(b"x")
    net.deliver_all()
    assert before.progress["b"].match == 1 and before.last_index == 1
    after = a.status()
    assert after.progress["b"].match == 2 and after.last_index == 2 and after.commit == 2
    assert a.basic_status().commit == after.commit
    assert net.cores["b"].status().progress == {}
