"""``awaits_answers``: a leader at rest (every follower in step, nothing
waiting on a quorum) may read its followers' answers late, at its next
heartbeat round; anything that waits for an answer says so at once."""

from __future__ import annotations

from raft_trio.core import Heartbeat

from .helpers import Network, of_type


def at_rest() -> Network:
    net = Network()
    net.elect("a")
    net.deliver_all()
    assert not net.cores["a"].awaits_answers()
    return net


def test_only_a_leader_at_rest_awaits_no_answer() -> None:
    net = Network()
    assert all(core.awaits_answers() for core in net.cores.values())  # followers
    net.time_out("a")
    assert net.cores["a"].awaits_answers()  # a candidate waits for votes
    net.deliver_all()
    for node in ("b", "c"):
        assert net.cores[node].awaits_answers()  # followers
    assert not net.cores["a"].awaits_answers()  # its no-op acknowledged by both


def test_a_proposal_awaits_answers_until_every_follower_holds_it() -> None:
    net = at_rest()
    a = net.cores["a"]
    a.propose(b"x")
    assert a.awaits_answers()
    to_b = of_type(net.take("a").all_messages(), object, dst="b")
    net.step(*to_b)
    net.step(*net.take("b").all_messages())
    assert a.awaits_answers()  # committed, but c does not hold it yet
    net.deliver_all()
    assert not a.awaits_answers()


def test_a_read_index_round_awaits_its_answers() -> None:
    net = at_rest()
    a = net.cores["a"]
    a.read_index(1)
    assert a.awaits_answers()
    assert of_type(net.take("a").all_messages(), Heartbeat)  # the round, not yet answered
    assert a.awaits_answers()
    net.elapse(a.config.heartbeat_ticks)  # the next round is answered
    net.deliver_all()
    assert not a.awaits_answers()


def test_a_transfer_awaits_answers() -> None:
    net = at_rest()
    a = net.cores["a"]
    a.transfer_leadership("b")
    assert a.awaits_answers()


def test_a_follower_that_stopped_answering_keeps_the_leader_awaiting_answers() -> None:
    net = at_rest()
    a = net.cores["a"]
    net.isolate("c")
    a.propose(b"x")
    net.deliver_all()
    assert a.awaits_answers()  # c lags: its answers matter as they come
    net.heal()
    net.elapse(a.config.heartbeat_ticks)  # the heartbeat's answer reveals the gap
    net.deliver_all()
    assert not a.awaits_answers()


def test_a_follower_reported_unreachable_is_back_in_step_after_one_heartbeat() -> None:
    """A broken stream makes the runtime report the follower unreachable,
    which puts it in PROBE although it holds the whole log; the answer to
    the next heartbeat brings an empty append whose answer puts it back in
    REPLICATE, so the leader is at rest again without waiting for a
    write."""
    net = at_rest()
    a = net.cores["a"]
    a.report_unreachable("b")
    assert a.awaits_answers()
    net.elapse(a.config.heartbeat_ticks)
    net.deliver_all()
    assert a.status().progress["b"].state.value == "replicate"
    assert not a.awaits_answers()
