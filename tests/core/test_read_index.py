"""Linearizable reads without writing to the log: ReadIndex (dissertation
§6.4)."""

from __future__ import annotations

import pytest

from raft_trio.core import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    NotLeader,
    ReadState,
    Role,
)

from .helpers import CONFIG, Network, of_type


def test_read_state_comes_out_only_after_quorum_of_heartbeat_acks() -> None:
    """§6.4 steps 1-3: the leader records its commit index as the read
    index, "sends a new round of heartbeats, and waits for their
    acknowledgments from a majority of the cluster"; only then may the
    read be served (once applied up to the read index)."""
    net = Network()
    a = net.elect("a")

    a.read_index(1)
    ready = net.take("a")
    assert ready.read_states == []
    heartbeats = of_type(ready.all_messages(), Heartbeat)
    assert sorted(m.dst for m in heartbeats) == ["b", "c"]

    net.step(*of_type(heartbeats, Heartbeat, dst="b"))
    net.step(*net.take("b").all_messages())  # b's acknowledgement: with a, a majority

    assert net.take("a").read_states == [ReadState(1, 1)]


def test_read_arriving_during_a_round_waits_for_the_next_round() -> None:
    """§6.4: a heartbeat round sent before a read arrived proves nothing
    about leadership at the time of that read, so the read waits for a
    round started after it. One round serves every read that was waiting
    for it (batching)."""
    net = Network()
    a = net.elect("a")

    a.read_index(1)
    first_round = of_type(net.take("a").all_messages(), Heartbeat, dst="b")
    a.read_index(2)
    a.read_index(3)
    assert net.take("a").all_messages() == []  # no new round while one is in flight

    net.step(*first_round)
    net.step(*net.take("b").all_messages())
    ready = net.take("a")
    assert ready.read_states == [ReadState(1, 1)]
    second_round = of_type(ready.all_messages(), Heartbeat, dst="b")
    assert [m.seq for m in second_round] == [first_round[0].seq + 1]

    net.step(*second_round)
    net.step(*net.take("b").all_messages())
    assert net.take("a").read_states == [ReadState(2, 1), ReadState(3, 1)]


def test_read_before_leaders_first_commit_in_its_term_waits_for_it() -> None:
    """§6.4 step 1: "If the leader has not yet marked an entry from its
    current term committed, it waits until it has done so": before its
    no-op commits, a new leader's commit index may be behind."""
    net = Network()
    lose_appends = net.drop(lambda m: isinstance(m, AppendEntries))
    a = net.elect("a")
    assert a.status().commit == 0

    a.read_index(7)
    ready = net.take("a")
    assert ready.read_states == []
    assert of_type(ready.all_messages(), Heartbeat) == []

    net.heal(lose_appends)
    net.elapse(1)  # a heartbeat lets the probe through; the no-op commits

    assert a.status().commit == 1
    assert net.read_states["a"] == [ReadState(7, 1)]


def test_reads_are_dropped_when_leadership_is_lost() -> None:
    """§6.4 with §6.2: a leader that steps down can no longer confirm its
    pending reads; it hands them back (``dropped_reads``) so that clients
    retry elsewhere instead of waiting forever."""
    net = Network()
    a = net.elect("a")
    a.read_index(1)
    net.take("a")  # the heartbeat round is lost
    net.isolate("a")

    for _ in range(2 * CONFIG.election_ticks_min):
        net.tick("a")
        net.deliver_all()

    assert a.status().role is Role.FOLLOWER
    assert net.dropped_reads["a"] == [1]
    assert net.read_states["a"] == []


def test_reads_waiting_for_first_commit_are_dropped_on_stepping_down() -> None:
    """§6.4: reads held back until the leader's first commit are given
    back too when it loses leadership before that commit."""
    net = Network()
    net.drop(lambda m: isinstance(m, AppendEntries))
    a = net.elect("a")
    a.read_index(5)

    net.step(AppendEntriesResponse(2, "b", "a", success=False, index=0))

    assert a.status().role is Role.FOLLOWER
    assert net.take("a").dropped_reads == [5]


def test_single_node_cluster_answers_read_at_once() -> None:
    """§6.4: with a cluster of one the leader is its own majority: no
    heartbeat round is needed."""
    net = Network("a")
    a = net.elect("a")
    assert a.status().commit == 1

    a.read_index(3)

    ready = net.take("a")
    assert ready.read_states == [ReadState(3, 1)]
    assert ready.all_messages() == []


def test_only_the_leader_serves_read_index() -> None:
    """§6.4: "the leader" runs the ReadIndex protocol; a follower says who
    leads so the client can be redirected (or forwards, §6.4.1)."""
    net = Network()
    net.elect("a")
    with pytest.raises(NotLeader) as raised:
        net.cores["b"].read_index(1)
    assert raised.value.leader_id == "a"
