"""Quiet-leader turns (``RaftConfig.quiet_leader_turns``) against random
draws, in whole simulated clusters: how often a silent leader's
followers need more than one election to replace it."""

from __future__ import annotations

from raft_trio.core import RaftConfig

from .cluster import Cluster, FaultProfile


def elections_after_a_crash(seed: int, turns: bool, max_delay: int, fsync_done: float) -> int:
    """Terms it takes three nodes to elect a new leader once theirs
    crashes at rest, with the runtime's timing (elections of 100-200
    ticks, heartbeats every 10), messages up to ``max_delay`` ticks late,
    and a disk whose fsync is done in a tick with chance ``fsync_done``."""
    config = RaftConfig(
        election_ticks_min=100, election_ticks_max=200, heartbeat_ticks=10, quiet_leader_turns=turns
    )
    faults = FaultProfile(
        drop_rate=0.0,
        duplicate_rate=0.0,
        max_delay=max_delay,
        fault_rate=0.0,
        refusals=False,
        fsync_done=fsync_done,
    )
    cluster = Cluster(seed, size=3, config=config, faults=faults)
    cluster.stabilize(max_ticks=5000)
    for _ in range(30):
        cluster.tick(faults=False, clients=False)
    (leader,) = cluster.leaders()
    term = leader.core.basic_status().term
    cluster.crash(leader)
    for _ in range(5000):
        cluster.tick(faults=False, clients=False)
        new = [n for n in cluster.leaders() if n.core.basic_status().term > term]
        if new:
            return new[0].core.basic_status().term - term
    raise AssertionError(f"seed {seed}: no leader")


def test_turns_split_no_vote_when_an_election_round_is_quick() -> None:
    """Instant disks and messages: the first in turn is elected before the
    next one's turn comes, every time."""
    assert [elections_after_a_crash(seed, True, 0, 1.0) for seed in range(30)] == [1] * 30


def test_turns_split_the_vote_no_more_often_than_random_draws_on_a_slow_disk() -> None:
    """A slow disk (an fsync takes about two ticks, 20 ms) and messages up
    to a tick late. With turns a tick apart, the next in turn asked while
    the first still asked, the two granted each other's pre-votes and split
    the vote: 21 of 100 failovers needed a second election (seeds 0-99),
    4 of 100 with random draws. Turns a heartbeat interval apart
    (RaftConfig.turn_spacing_ticks) leave the first one's election time
    to end."""
    seeds = range(60)
    turns = sum(elections_after_a_crash(seed, True, 1, 0.5) > 1 for seed in seeds)
    draws = sum(elections_after_a_crash(seed, False, 1, 0.5) > 1 for seed in seeds)
    print(f"split votes: {turns} with turns, {draws} with random draws")
    assert turns <= draws + 2, f"split votes: {turns} with turns, {draws} with random draws"
