"""Log compaction and InstallSnapshot (dissertation §5), and crash recovery
from stable storage (Figure 3.1's persistent state, §3.8)."""

from __future__ import annotations

from raft_trio.core import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    InstallSnapshot,
    RequestVote,
    RequestVoteResponse,
    Role,
    Snapshot,
    SnapshotMeta,
)
from raft_trio.core._raft import COMMIT_RECORD_TICKS

from .helpers import Network, membership, of_type, only, storage_with_log


def test_lagging_follower_receives_install_snapshot_and_ends_with_leaders_log() -> None:
    """§5.3: "the leader must occasionally send snapshots to followers that
    lag behind ... when it has already discarded the next log entry that
    it needs to send to a follower"; the follower replaces its log with the
    snapshot and then receives the entries after it."""
    net = Network()
    a = net.elect("a")
    net.isolate("c")
    for i in range(5):
        a.propose(b"p%d" % i)
        net.deliver_all()
    assert a.status().applied == 6

    net.storages["a"].compact(Snapshot(a.snapshot_meta(6), b"state@6"))
    a.propose(b"after")
    net.deliver_all()
    assert net.storages["a"].first_index() == 7

    net.heal()
    net.elapse(2)

    (snapshot,) = net.sent(InstallSnapshot, "a", "c")
    assert (snapshot.meta.index, snapshot.meta.term, snapshot.data) == (6, 1, b"state@6")
    assert snapshot.meta.membership == membership("abc")
    c_disk = net.storages["c"]
    assert c_disk.snapshot().meta == snapshot.meta
    assert net.snapshots["c"].data == b"state@6"
    assert net.log("c") == net.log("a") == [(7, 1)]
    c = net.cores["c"]
    assert (c.status().commit, c.status().applied) == (7, 7)
    assert net.applied["c"][-1].data == b"after"


def test_follower_holding_snapshots_last_entry_keeps_the_entries_after_it() -> None:
    """§5.3, InstallSnapshot receiver rule 6: "If existing log entry has
    same index and term as snapshot's last included entry, retain log
    entries following it"."""
    net = Network(storages={"b": storage_with_log(membership("abc"), [1, 1, 1, 1, 1], term=1)})
    b = net.cores["b"]

    net.step(InstallSnapshot(1, "a", "b", SnapshotMeta(3, 1, membership("abc")), b"state@3"))

    ready = net.take("b")
    assert ready.snapshot is None
    assert b.status().commit == 3
    assert b.status().last_index == 5
    assert [(m.success, m.index) for m in only(ready.all_messages(), AppendEntriesResponse)] == [(True, 3)]


def test_follower_with_conflicting_log_discards_it_for_the_snapshot() -> None:
    """§5.3, InstallSnapshot receiver rule 7: "Discard the entire log" when
    it does not contain the snapshot's last entry, and take the snapshot's
    configuration (§5.1: the snapshot records the latest configuration)."""
    net = Network(storages={"b": storage_with_log(membership("abc"), [1, 1, 1, 1, 1], term=1)})
    b = net.cores["b"]
    new_config = membership("abc", learners="d")

    net.step(InstallSnapshot(3, "a", "b", SnapshotMeta(4, 2, new_config), b"state@4"))

    ready = net.take("b")
    assert ready.snapshot is not None and ready.snapshot.meta.index == 4
    assert net.log("b") == []
    assert net.storages["b"].first_index() == 5
    assert b.status().membership == new_config
    assert (b.status().commit, b.status().applied) == (4, 4)
    assert [(m.success, m.index) for m in only(ready.all_messages(), AppendEntriesResponse)] == [(True, 4)]


def test_stale_snapshot_is_ignored() -> None:
    """§5.3: a snapshot that covers no more than what the follower has
    already committed changes nothing (it may be a delayed duplicate)."""
    net = Network()
    net.elect("a")
    for _ in range(3):
        net.cores["a"].propose(b"x")
    net.deliver_all()
    net.elapse(1)
    before = net.log("b")

    net.step(InstallSnapshot(1, "a", "b", SnapshotMeta(2, 1, membership("abc")), b"old"))

    ready = net.take("b")
    assert ready.snapshot is None
    assert net.log("b") == before
    assert [(m.success, m.index) for m in only(ready.all_messages(), AppendEntriesResponse)] == [(True, 4)]


def test_restart_keeps_term_vote_and_log() -> None:
    """Figure 3.1: currentTerm, votedFor and log[] are "persistent state on
    all servers (updated on stable storage before responding to RPCs)"; a
    restarted server comes back with them. The commit index is volatile:
    it comes back as far as it was written with the entries (never beyond
    what was committed), and the leader brings it up to date."""
    net = Network()
    a = net.elect("a")
    a.propose(b"x")
    net.deliver_all()
    net.elapse(1)
    before = (net.cores["b"].status().term, net.cores["b"].status().vote, net.log("b"))
    assert net.cores["b"].status().commit == 2

    net.crash("b")
    b = net.restart("b")

    assert (b.status().term, b.status().vote, net.log("b")) == before == (1, "a", [(1, 1), (2, 1)])
    assert b.status().commit <= 2
    assert b.status().role is Role.FOLLOWER
    assert (b.status().first_index, b.status().last_index) == (1, 2)


def test_restarted_server_does_not_vote_twice_in_a_term() -> None:
    """§3.4 with §3.8: the vote is persisted before it is sent, so a server
    that crashes and restarts cannot vote for a second candidate in the
    same term."""
    net = Network()
    net.step(RequestVote(1, "a", "c", last_log_index=0, last_log_term=0))
    (granted,) = net.take("c").all_messages()
    assert isinstance(granted, RequestVoteResponse) and granted.granted

    net.crash("c")
    net.restart("c")
    net.step(RequestVote(1, "b", "c", last_log_index=0, last_log_term=0))

    (answer,) = net.take("c").all_messages()
    assert isinstance(answer, RequestVoteResponse) and not answer.granted


def test_restarted_server_reapplies_what_it_knew_committed() -> None:
    """Crash recovery: the state machine is volatile; a restarted server
    applies again every entry its persisted commit index covers, without
    waiting for a leader."""
    net = Network()
    a = net.elect("a")
    a.propose(b"x")
    net.deliver_all()
    # Entries written once COMMIT_RECORD_TICKS passed carry x's commit to
    # c's disk (a change of the commit index alone is not worth an fsync).
    net.elapse(COMMIT_RECORD_TICKS)
    a.propose(b"y")
    net.deliver_all()

    net.crash("c")
    net.restart("c")

    ready = net.take("c")
    assert [e.data for e in ready.committed_entries][:2] == [b"", b"x"]


def test_restarted_server_with_snapshot_starts_after_it() -> None:
    """§5.1: after compaction the snapshot replaces the log prefix; a
    restarted server starts from it (configuration included) and rejoins."""
    net = Network()
    a = net.elect("a")
    for _ in range(3):
        a.propose(b"x")
    net.deliver_all()
    net.elapse(1)
    c = net.cores["c"]
    net.storages["c"].compact(Snapshot(c.snapshot_meta(3), b"state@3"))

    net.crash("c")
    c = net.restart("c")

    assert c.status().first_index == 4
    assert c.status().applied == 3 and c.status().commit >= 3
    assert c.status().membership == membership("abc")
    net.elapse(1)  # a heartbeat brings the commit index up to date
    assert c.status().commit == 4

    a.propose(b"y")
    net.deliver_all()
    assert net.log("c") == [(4, 1), (5, 1)]


def test_follower_acknowledges_only_after_entries_are_in_the_same_ready() -> None:
    """DESIGN "durable before acknowledged": the acknowledgement of new
    entries leaves in the same Ready as the entries, which the runtime
    persists before it sends anything."""
    net = Network()
    net.step(AppendEntries(1, "a", "b", 0, 0, (Entry(1, 1),), commit=0))

    ready = net.take("b")

    assert [e.index for e in ready.entries] == [1]
    (ack,) = of_type(ready.all_messages(), AppendEntriesResponse)
    assert (ack.success, ack.index) == (True, 1)
