"""The core's configuration: one documented structure, in ticks.

The runtime turns milliseconds into ticks (it calls ``tick()`` every
``tick_ms``). Defaults follow etcd (heartbeat 100 ms, election 1000-2000 ms
at a 10 ms tick), which survive a loaded machine; the paper's 150-300 ms is a
faster profile that needs a quiet one (§3.4, §9.4).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RaftConfig:
    #: A follower's election timeout is drawn uniformly from
    #: [election_ticks_min, election_ticks_max] each time it is reset (§3.4)
    #: (a follower of a known leader trades it for a turn once its lease
    #: ends: quiet_leader_turns).
    #: election_ticks_min is also the leader lease a follower honours before
    #: it answers RequestVote (§4.2.3) and the window within which a leader
    #: must hear from a quorum (check-quorum, §6.2).
    election_ticks_min: int = 100
    election_ticks_max: int = 200
    #: How often a leader sends heartbeats; must be well below the election
    #: timeout so that a few lost heartbeats do not cause an election.
    heartbeat_ticks: int = 10
    #: Pre-vote (§9.6): a server campaigns only after a majority says it
    #: would vote for it, so a partitioned server rejoining does not disrupt.
    pre_vote: bool = True
    #: Check-quorum (§6.2): a leader that has not heard from a quorum within
    #: an election timeout steps down, and followers within a lease ignore
    #: vote requests.
    check_quorum: bool = True
    #: At most this many bytes of entries in one AppendEntries.
    max_append_bytes: int = 1 << 20
    #: At most this many entries in one AppendEntries.
    max_append_entries: int = 4096
    #: At most this many AppendEntries in flight to one follower
    #: (pipelining, §10.2.2); bounds the memory a slow follower can cost.
    max_inflight: int = 64
    #: At most this many bytes of committed entries in one Ready, so that a
    #: node applying a long backlog (a restart) keeps serving in between.
    max_apply_bytes: int = 1 << 20
    #: A leader refuses proposals (ProposalDropped) while this many of its
    #: entries are uncommitted: backpressure, so that a leader that cannot
    #: reach a quorum does not grow its log without bound (etcd's
    #: MaxUncommittedEntriesSize, counted in entries).
    max_uncommitted_entries: int = 10_000
    #: A learner is promoted to voter once its log is within this many
    #: entries of the leader's commit index (§4.2.1: caught up enough that
    #: counting it in quorums does not stall commitment). Under a steady
    #: write load "exactly caught up" may never be observed.
    learner_catch_up_entries: int = 100
    #: A leader that has advanced its commit index but has no new entries
    #: to send tells the followers at its next tick (or with the next
    #: AppendEntries that carries entries, whichever comes first) instead
    #: of at once with an AppendEntries of its own. Followers then learn of
    #: commits up to one tick later (their stale reads lag that much more;
    #: the leader answers its clients as before), and when writes come one
    #: at a time the next write's AppendEntries carries the news: half the
    #: peer requests per write. False: etcd's behaviour, told at once.
    lazy_commit_broadcast: bool = False
    #: A leadership transfer not done within this many ticks is abandoned
    #: and the leader takes proposals again (§3.10).
    transfer_timeout_ticks: int | None = None
    #: Once its leader's address refused a connection (``report_refused``),
    #: a follower campaigns at a random tick of a window this many ticks
    #: wide that opens one tick after the minimum election timeout (or
    #: after the report, if later), ``turn_spacing_ticks`` later for each
    #: voter whose id sorts before its own (the leader left out; a voter
    #: being removed goes after all that stay).
    refused_stagger_ticks: int = 3
    #: A follower that has heard nothing from the leader it follows for
    #: election_ticks_min (its lease has ended) takes the same turn as if
    #: told that the leader refuses, rather than wait out the rest of its
    #: random draw: silence for the whole lease is what a paused leader, a
    #: dead machine or a partition looks like, and turns keep followers
    #: that last heard the leader together apart better than chance does.
    #: The random draw stays for a follower with no leader known (at
    #: start, after a vote or a lost election). False: every timeout is
    #: drawn (etcd's behaviour); a leader then survives a stall a little
    #: longer than the lease with the chance that every draw outlasts it.
    quiet_leader_turns: bool = True

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first setting that cannot work."""
        if self.heartbeat_ticks < 1:
            raise ValueError("heartbeat_ticks must be at least 1")
        if self.election_ticks_min <= self.heartbeat_ticks:
            raise ValueError("election_ticks_min must exceed heartbeat_ticks")
        if self.election_ticks_max < self.election_ticks_min:
            raise ValueError("election_ticks_max must be >= election_ticks_min")
        if self.max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        if self.max_uncommitted_entries < 1:
            raise ValueError("max_uncommitted_entries must be at least 1")
        if self.max_apply_bytes < 1:
            raise ValueError("max_apply_bytes must be at least 1")
        if self.max_append_bytes < 1 or self.max_append_entries < 1:
            raise ValueError("append limits must be positive")
        if self.refused_stagger_ticks < 1:
            raise ValueError("refused_stagger_ticks must be at least 1")

    @property
    def turn_spacing_ticks(self) -> int:
        """How far apart consecutive turns open: a window and a heartbeat
        interval. Followers that last heard the leader together so campaign
        at least a heartbeat interval apart, time for the first one's
        pre-vote round to end (operators set the heartbeat near the
        network's round trip; a tick apart, a slow disk or network let the
        next one ask while the first still asked, and the two, granting
        each other's pre-votes, split the vote)."""
        return self.refused_stagger_ticks + self.heartbeat_ticks

    @property
    def transfer_ticks(self) -> int:
        return self.transfer_timeout_ticks or self.election_ticks_min
