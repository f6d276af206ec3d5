"""Log replication (dissertation §3.5), the commitment rule (§3.6.2), and
the performance machinery around them: probing, pipelining (§10.2.2),
batching, and counting the leader's own entries only once durable.
"""

from __future__ import annotations

import pytest

from raft_trio.core import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    InstallSnapshot,
    ProgressState,
    Role,
)

from .helpers import (
    CONFIG,
    Network,
    config,
    log_of,
    membership,
    of_type,
    only,
    storage_with_log,
    term_at,
    terms_of,
)

#: Scenario tests that kill a leader and tick one chosen server into an
#: election turn leases off: the survivors would otherwise ignore it until
#: their own timers ran (§4.2.3, tested in test_election.py).
NO_LEASE = config(check_quorum=False)


def test_new_leader_appends_a_no_op_entry_of_its_term() -> None:
    """§3.6.2 / §6.4: "each leader commit[s] a blank no-op entry into the
    log at the start of its term", which the followers then hold and
    commit too."""
    net = Network()
    a = net.elect("a")

    assert net.log("a") == [(1, 1)]
    (noop,) = net.storages["a"].entries(1, 2)
    assert noop.kind is EntryKind.NOOP
    for node_id in "abc":
        assert net.log(node_id) == [(1, 1)]
        assert [e.index for e in net.applied[node_id]] == [1]
    assert a.status().commit == 1


def test_leader_commits_entry_once_replicated_on_majority() -> None:
    """§3.5: "A log entry is committed once the leader that created the
    entry has replicated it on a majority of the servers"; the followers
    learn it from a later AppendEntries and apply it too."""
    net = Network()
    a = net.elect("a")
    net.isolate("c")

    index = a.propose(b"x")
    net.deliver_all()

    assert index == 2
    assert a.status().commit == 2
    assert [e.data for e in net.applied["a"]] == [b"", b"x"]
    assert [e.data for e in net.applied["b"]] == [b"", b"x"]
    assert [e.data for e in net.applied["c"]] == [b""]


def test_leader_does_not_commit_without_majority() -> None:
    """§3.5: without a majority holding the entry, it stays uncommitted
    (and unapplied) however long the leader waits."""
    net = Network("abcde")
    a = net.elect("a")
    for node_id in "cde":
        net.isolate(node_id)

    a.propose(b"x")
    net.deliver_all()
    net.elapse(CONFIG.election_ticks_min - 1, nodes=["a"])

    assert net.log("b") == [(1, 1), (2, 1)]
    assert a.status().commit == 1
    assert [e.data for e in net.applied["a"]] == [b""]


def test_follower_commit_index_follows_leader_commit_but_not_past_new_entries() -> None:
    """§3.5, Figure 3.1 AppendEntries receiver rule 5: "If leaderCommit >
    commitIndex, set commitIndex = min(leaderCommit, index of last new
    entry)"."""
    net = Network()
    b = net.cores["b"]
    entries = (Entry(1, 1), Entry(2, 1))

    net.step(AppendEntries(1, "a", "b", prev_index=0, prev_term=0, entries=entries, commit=5))

    assert b.status().commit == 2
    ready = net.take("b")
    assert [e.index for e in ready.committed_entries] == [1, 2]


@pytest.mark.parametrize(
    ("prev_index", "prev_term", "success"),
    [
        (2, 1, True),  # matches
        (2, 2, False),  # same index, different term
        (3, 1, False),  # beyond the follower's log
        (1, 1, True),  # earlier, still matching
    ],
)
def test_follower_rejects_append_entries_on_prev_mismatch(
    prev_index: int, prev_term: int, success: bool
) -> None:
    """§3.5: "When sending an AppendEntries RPC, the leader includes the
    index and term of the entry in its log that immediately precedes the
    new entries. If the follower does not find an entry in its log with the
    same index and term, then it refuses the new entries"."""
    net = Network(storages={"b": storage_with_log(membership("abc"), [1, 1], term=1)})
    new = (Entry(prev_index + 1, 2, data=b"new"),)

    net.step(AppendEntries(2, "a", "b", prev_index=prev_index, prev_term=prev_term, entries=new, commit=0))

    (answer,) = net.take("b").all_messages()
    assert isinstance(answer, AppendEntriesResponse)
    assert answer.success is success
    if success:
        assert answer.index == prev_index + 1
        assert net.log("b")[-1] == (prev_index + 1, 2)
    else:
        assert answer.index == prev_index
        assert net.log("b") == [(1, 1), (2, 1)]


def test_follower_deletes_conflicting_entry_and_all_that_follow() -> None:
    """§3.5, Figure 3.1 receiver rule 3: "If an existing entry conflicts
    with a new one (same index but different terms), delete the existing
    entry and all that follow it"."""
    net = Network(storages={"b": storage_with_log(membership("abc"), [1, 1, 1, 1], term=1)})

    net.step(AppendEntries(2, "a", "b", prev_index=1, prev_term=1, entries=(Entry(2, 2),), commit=0))
    net.take("b")

    assert net.log("b") == [(1, 1), (2, 2)]


def test_duplicate_append_entries_are_harmless() -> None:
    """§3.5: AppendEntries is idempotent: a retransmitted request changes
    nothing, and a late, shorter copy does not truncate entries that
    match ("if an existing entry conflicts ..." only conflicts truncate)."""
    net = Network()
    b = net.cores["b"]
    longer = AppendEntries(1, "a", "b", 0, 0, (Entry(1, 1), Entry(2, 1), Entry(3, 1)), commit=0)
    shorter = AppendEntries(1, "a", "b", 0, 0, (Entry(1, 1),), commit=0)

    readies = []
    for message in [longer, longer, shorter]:
        net.step(message)
        readies.append(net.take("b"))

    assert [
        [(m.success, m.index) for m in only(r.all_messages(), AppendEntriesResponse)] for r in readies
    ] == [
        [(True, 3)],
        [(True, 3)],
        [(True, 1)],
    ]
    assert [len(r.entries) for r in readies] == [3, 0, 0]  # the copies bring nothing to persist
    assert net.log("b") == [(1, 1), (2, 1), (3, 1)]
    assert b.status().last_index == 3


def test_reordered_append_entries_are_harmless() -> None:
    """§3.5 with pipelining (§10.2.2): AppendEntries that arrive out of
    order are refused where they do not fit, the leader backs up, and the
    follower still ends with exactly the leader's log."""
    net = Network()
    a = net.elect("a")
    to_b: list[AppendEntries] = []
    for data in [b"x", b"y", b"z"]:
        a.propose(data)
        ready = net.take("a")
        to_b += of_type(ready.all_messages(), AppendEntries, dst="b")
        net.send(*of_type(ready.all_messages(), AppendEntries, dst="c"))
    assert [m.prev_index for m in to_b] == [1, 2, 3]

    net.step(*reversed(to_b))
    net.deliver_all()

    assert len(net.rejections("b", "a")) == 2
    assert net.log("b") == net.log("a") == [(1, 1), (2, 1), (3, 1), (4, 1)]
    assert [e.data for e in net.applied["b"]] == [b"", b"x", b"y", b"z"]


def test_probing_leader_sends_one_append_entries_at_a_time() -> None:
    """§3.5: until the leader knows where a follower's log matches its own
    it sends one AppendEntries and waits for the answer (etcd's probe
    state), rather than piling up requests that may all be refused."""
    net = Network()
    net.drop(lambda m: isinstance(m, AppendEntries))
    a = net.elect("a")
    assert a.status().progress["b"].state is ProgressState.PROBE
    assert len(net.lost) == 2  # the no-op, to b and c

    for data in [b"x", b"y", b"z"]:
        a.propose(data)
        assert of_type(net.take("a").all_messages(), AppendEntries) == []


def test_pipelining_leader_sends_several_appends_before_any_ack_up_to_max_inflight() -> None:
    """§10.2.2: "the leader can ... pipeline AppendEntries requests: it can
    send the next request before the previous one is acknowledged"; the
    window is bounded by ``max_inflight`` so a slow follower costs bounded
    memory, and an acknowledgement reopens it."""
    net = Network(config=config(max_inflight=3))
    a = net.elect("a")
    assert a.status().progress["b"].state is ProgressState.REPLICATE

    to_b: list[AppendEntries] = []
    for i in range(5):
        a.propose(b"p%d" % i)
        to_b += of_type(net.take("a").all_messages(), AppendEntries, dst="b")

    assert [[e.index for e in m.entries] for m in to_b] == [[2], [3], [4]]
    assert a.status().progress["b"].match == 1  # none of them acknowledged yet
    assert a.status().progress["b"].inflight == 3

    net.step(to_b[0])
    net.step(*net.take("b").all_messages())
    (next_append,) = of_type(net.take("a").all_messages(), AppendEntries, dst="b")
    assert [e.index for e in next_append.entries] == [5, 6]


def test_lost_appends_in_a_full_window_are_recovered() -> None:
    """§3.5: "If followers crash or run slowly, or if network packets are
    lost, the leader retries AppendEntries RPCs indefinitely until all
    followers eventually store all log entries": a heartbeat answer frees a
    slot of a window full of lost messages, the follower's refusal shows the
    gap, and the leader probes back to it."""
    net = Network(config=config(max_inflight=2))
    a = net.elect("a")
    lose_to_b = net.drop(lambda m: isinstance(m, AppendEntries) and m.dst == "b")
    for i in range(5):
        a.propose(b"p%d" % i)
        net.deliver_all()
    b_progress = a.status().progress["b"]
    assert b_progress.state is ProgressState.REPLICATE and b_progress.inflight == 2  # full
    assert net.log("b") == [(1, 1)]

    net.heal(lose_to_b)
    net.elapse(2)

    assert net.log("b") == net.log("a") == [(i, 1) for i in range(1, 7)]
    assert a.status().progress["b"].match == 6


def test_batching_many_proposals_travel_in_one_append_entries() -> None:
    """Batching (DESIGN "Performance"): proposals made before one Ready go
    to disk together and to each follower in one AppendEntries."""
    net = Network()
    a = net.elect("a")
    for i in range(10):
        a.propose(b"p%d" % i)

    ready = net.take("a")

    assert [e.index for e in ready.entries] == list(range(2, 12))
    for follower in "bc":
        (append,) = of_type(ready.all_messages(), AppendEntries, dst=follower)
        assert [e.index for e in append.entries] == list(range(2, 12))
        assert append.prev_index == 1


def test_batching_is_limited_by_max_append_entries() -> None:
    """``max_append_entries`` caps how many entries one AppendEntries
    carries; the rest follow in later messages."""
    net = Network(config=config(max_append_entries=4))
    a = net.elect("a")
    for i in range(10):
        a.propose(b"p%d" % i)

    ready = net.take("a")
    (first,) = of_type(ready.all_messages(), AppendEntries, dst="b")
    assert [e.index for e in first.entries] == [2, 3, 4, 5]

    net.send(*ready.all_messages())
    net.deliver_all()
    assert all(len(m.entries) <= 4 for m in net.appends("a", "b"))
    assert net.log("b") == net.log("a") == [(i, 1) for i in range(1, 12)]


def test_batching_is_limited_by_max_append_bytes_but_one_entry_always_goes() -> None:
    """``max_append_bytes`` caps a message's size; an entry larger than the
    cap still goes, alone, so replication always makes progress."""
    net = Network(config=config(max_append_bytes=100))
    a = net.elect("a")
    for _ in range(5):
        a.propose(b"x" * 30)  # 46 bytes each by Entry.size()

    ready = net.take("a")
    (first,) = of_type(ready.all_messages(), AppendEntries, dst="b")
    assert [e.index for e in first.entries] == [2, 3]
    net.send(*ready.all_messages())
    net.deliver_all()
    assert all(sum(e.size() for e in m.entries) <= 100 for m in net.appends("a", "b"))
    assert net.log("b") == net.log("a")

    a.propose(b"y" * 500)
    (big,) = of_type(net.take("a").all_messages(), AppendEntries, dst="b")
    assert [e.data for e in big.entries] == [b"y" * 500]


def test_leader_does_not_count_its_own_entries_before_advance() -> None:
    """DESIGN "durable before counted" (etcd's contract): the leader's own
    copy counts towards the majority only once the runtime has made it
    durable and called ``advance``."""
    net = Network()
    a = net.elect("a")
    net.isolate("c")
    a.propose(b"x")
    ready = a.ready()  # the runtime starts writing ...
    net.storages["a"].append(ready.entries)

    # ... and meanwhile b acknowledges.
    net.step(*of_type(ready.all_messages(), AppendEntries, dst="b"))
    net.step(*net.take("b").all_messages())
    assert a.status().commit == 1  # a and b hold index 2, but a's copy is not durable yet

    a.advance(ready)  # the write finished
    assert a.status().commit == 2


# ---------------------------------------------------------------------------
# Figure 3.6 (the paper's Figure 7): followers whose logs differ from the
# leader's in every possible way.

LEADER_LOG = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
FIGURE_7 = {
    # follower log, AppendEntries refusals before it matches: with the
    # term hints each refusal skips at least one whole conflicting term
    # (entry by entry would take 1, 6, 0, 0, 5 and 7 refusals).
    "a": ([1, 1, 1, 4, 4, 5, 5, 6, 6], 1),  # missing entries
    "b": ([1, 1, 1, 4], 1),  # missing entries
    "c": ([1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], 0),  # extra uncommitted entry
    "d": ([1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], 0),  # extra entries of a term the leader never saw
    "e": ([1, 1, 1, 4, 4, 4, 4], 1),  # missing and extra
    "f": ([1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], 1),  # missing and extra, two conflicting terms
}


@pytest.mark.parametrize("case", sorted(FIGURE_7))
def test_figure_7_follower_logs_converge_to_leaders_with_fast_backoff(case: str) -> None:
    """§3.5, Figure 3.6: "the leader handles inconsistencies by forcing the
    followers' logs to duplicate its own": missing entries are filled in,
    extra and conflicting ones are overwritten. With the optimisation of
    §3.5 ("the follower can include the term of the conflicting entry and
    the first index it stores for that term") the leader needs at most one
    refused AppendEntries per conflicting term, not one per entry.

    "lead" leads term 8; "v" holds the leader's log and gives it the vote it
    needs."""
    follower_log, refusals = FIGURE_7[case]
    members = membership(["f", "lead", "v"])
    storages = {
        "lead": storage_with_log(members, LEADER_LOG, term=7),
        "v": storage_with_log(members, LEADER_LOG, term=7),
        "f": storage_with_log(members, follower_log, term=7),
    }
    net = Network(["f", "lead", "v"], storages=storages)

    lead = net.elect("lead")
    # A follower that was still being probed when the leader committed
    # learns the commit index from the next heartbeat.
    net.elapse(1)

    assert lead.status().term == 8
    expected = [*LEADER_LOG, 8]  # and the new leader's no-op
    assert terms_of(net.storages["f"]) == expected
    assert log_of(net.storages["f"]) == log_of(net.storages["lead"])
    assert net.cores["f"].status().commit == len(expected)
    assert len(net.rejections("f", "lead")) == refusals


# ---------------------------------------------------------------------------
# Figure 3.7 (the paper's Figure 8): why a leader commits only entries of its
# own term by counting replicas.


def figure_8_until_c() -> Network:
    """Figure 3.7 (a) to (c), scripted.

    (a) S1 led term 2 and replicated index 2 to S2 only; then crashed.
    (b) S5 is elected for term 3 by S3, S4 and itself and appends a
        different entry at index 2; it crashes before sending it.
    (c) S1 restarts and is elected for term 4 (after one failed attempt at
        term 3, whose votes went to S5). It replicates index 2 (term 2) to a
        majority; its own index 3 (term 4, its no-op) reaches nobody.
    """
    members = membership(["s1", "s2", "s3", "s4", "s5"])
    storages = {
        "s1": storage_with_log(members, [1, 2], term=2, vote="s1", commit=1),
        "s2": storage_with_log(members, [1, 2], term=2, vote="s1", commit=1),
        **{s: storage_with_log(members, [1], term=2, vote="s1", commit=1) for s in ["s3", "s4", "s5"]},
    }
    fig8 = config(pre_vote=False, check_quorum=False, max_append_entries=1)
    net = Network(["s1", "s2", "s3", "s4", "s5"], config=fig8, storages=storages)
    net.crash("s1")

    # (b)
    silence_s5 = net.drop(lambda m: m.src == "s5" and isinstance(m, AppendEntries))
    net.campaign("s5")
    assert (net.cores["s5"].status().role, net.cores["s5"].status().term) == (Role.LEADER, 3)
    assert net.log("s5") == [(1, 1), (2, 3)]
    net.crash("s5")
    net.heal(silence_s5)

    # (c)
    def delivers_index_3(m: object) -> bool:
        """Every AppendEntries that would give a follower S1's index 3 is
        lost (those that will be refused get through)."""
        return (
            isinstance(m, AppendEntries)
            and m.src == "s1"
            and any(e.index == 3 for e in m.entries)
            and m.dst in net.cores
            and term_at(net.storages[m.dst], m.prev_index) == m.prev_term
        )

    net.drop(delivers_index_3)
    net.restart("s1")
    net.campaign("s1")
    assert net.cores["s1"].status().role is Role.CANDIDATE  # s3 and s4 voted for s5 in term 3
    net.campaign("s1")
    assert (net.cores["s1"].status().role, net.cores["s1"].status().term) == (Role.LEADER, 4)
    net.heal()
    return net


def test_figure_8_leader_does_not_commit_older_term_entry_by_counting_replicas() -> None:
    """§3.6.2, Figure 3.7 (c)-(d): "a leader cannot immediately conclude
    that an entry from a previous term is committed once it is stored on a
    majority of servers": S5 can still be elected and overwrite it. "Raft
    never commits log entries from previous terms by counting replicas"."""
    net = figure_8_until_c()
    s1 = net.cores["s1"]

    # (c): index 2 of term 2 is on a majority, but S1 has not committed it.
    assert net.log("s1") == [(1, 1), (2, 2), (3, 4)]
    for server in ["s2", "s3", "s4"]:
        assert net.log(server) == [(1, 1), (2, 2)]
    assert s1.status().commit == 1
    assert all(e.index < 2 for entries in net.applied.values() for e in entries)

    # (d): S1 crashes; S5 restarts and wins term 5 (its last term, 3, beats
    # their 2), then overwrites index 2 everywhere.
    net.crash("s1")
    net.restart("s5")
    net.campaign("s5")  # term 4: everyone already voted for S1
    net.campaign("s5")
    assert (net.cores["s5"].status().role, net.cores["s5"].status().term) == (Role.LEADER, 5)
    for server in ["s2", "s3", "s4", "s5"]:
        assert net.log(server) == [(1, 1), (2, 3), (3, 5)]
    assert net.applied_at[2].term == 3  # the term-2 entry was never applied anywhere
    assert net.storages["s1"].hard_state().commit == 1


def test_figure_8_entry_of_current_term_commits_older_entries_indirectly() -> None:
    """§3.6.2, Figure 3.7 (e): "once an entry from the current term has
    been committed in this way, then all prior entries are committed
    indirectly because of the Log Matching Property"; S5 can then no
    longer be elected."""
    net = figure_8_until_c()
    s1 = net.cores["s1"]

    net.tick("s1")  # a heartbeat round lets S1 finish replicating index 3
    net.deliver_all()

    assert s1.status().commit == 3
    assert [(e.index, e.term) for e in net.applied["s1"]] == [(1, 1), (2, 2), (3, 4)]
    for server in ["s2", "s3", "s4"]:
        assert net.log(server) == [(1, 1), (2, 2), (3, 4)]

    net.crash("s1")
    net.restart("s5")
    for _ in range(3):
        net.campaign("s5")
        assert net.cores["s5"].status().role is not Role.LEADER
    assert all(net.log(s)[1] == (2, 2) for s in ["s2", "s3", "s4"])


def test_install_snapshot_is_not_sent_while_log_has_entries() -> None:
    """§5.1/§5.3: InstallSnapshot is only for followers that need entries
    the leader has compacted away; an ordinary lagging follower is caught
    up with AppendEntries."""
    net = Network()
    a = net.elect("a")
    net.isolate("c")
    for i in range(5):
        a.propose(b"p%d" % i)
        net.deliver_all()
    net.heal()
    net.elapse(2)
    assert net.sent(InstallSnapshot) == []
    assert net.log("c") == net.log("a")
