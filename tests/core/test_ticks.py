"""``ticks_until_due``: the ticks before the one it names change nothing
anyone could see (no message, no role, term or leader change, no pending
broadcast, no progress state), so that a runtime may sleep until then and
deliver them at once; and the due tick does what the timer says."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from raft_trio.core import RaftCore, Role

from .helpers import CONFIG, Network

IDS = ("a", "b", "c")


def observable(core: RaftCore) -> tuple[Any, ...]:
    status = core.status()
    return (
        status.role,
        status.term,
        status.vote,
        status.leader_id,
        len(core._messages) + len(core._messages_after_persist),
        core._broadcast_pending,
        status.lead_transferee,
        core.has_ready(),
        tuple((i, pr.state, pr.match, pr.next) for i, pr in sorted(status.progress.items())),
    )


@pytest.mark.parametrize("seed", range(25))
def test_the_ticks_before_the_due_one_change_nothing(seed: int) -> None:
    rng = random.Random(seed)
    # Half the seeds with the lazy commit broadcast (due at the next tick).
    net = Network(IDS, seed=seed, config=dataclasses.replace(CONFIG, lazy_commit_broadcast=seed % 2 == 1))
    cut = None
    fired = 0
    for step in range(400):
        roll = rng.random()
        leaders = [i for i, c in net.cores.items() if c.status().role is Role.LEADER]
        if roll < 0.25 and leaders and net.cores[leaders[0]].status().lead_transferee is None:
            net.cores[leaders[0]].propose(b"x")
        elif roll < 0.30:
            if cut is None:
                cut = net.isolate(rng.choice(IDS))
            else:
                net.heal(cut)
                cut = None
        elif roll < 0.32 and leaders:
            net.cores[leaders[0]].transfer_leadership(rng.choice([i for i in IDS if i != leaders[0]]))
        node = rng.choice(IDS)
        core = net.cores[node]
        due = core.ticks_until_due()
        assert due is not None and due >= 1
        before = observable(core)
        for tick in range(due - 1):
            core.tick()
            assert observable(core) == before, (
                f"seed {seed}, step {step}: {node} changed at tick {tick + 1} of {due}"
            )
        core.tick()
        fired += observable(core) != before
        net.deliver_all()
    assert fired > 50, f"seed {seed}: only {fired} due ticks did anything"


def test_a_follower_is_due_at_its_election_timeout() -> None:
    net = Network(IDS)
    core = net.cores["a"]
    due = core.ticks_until_due()
    assert due == core.status().election_timeout
    net.tick("a", due - 1)
    assert core.status().role is Role.FOLLOWER
    net.tick("a")
    assert core.status().role is Role.PRE_CANDIDATE


def test_a_leader_is_due_at_its_heartbeat_and_at_once_with_a_commit_to_tell() -> None:
    net = Network(IDS)
    leader = net.elect("a")
    assert leader.ticks_until_due() == CONFIG.heartbeat_ticks - leader.status().heartbeat_elapsed
    lazy = Network(IDS, config=dataclasses.replace(CONFIG, lazy_commit_broadcast=True))
    lazy_leader = lazy.elect("a")
    lazy_leader.propose(b"x")
    lazy.deliver_all()
    assert lazy_leader.status().commit > lazy_leader._commit_broadcast
    assert lazy_leader.ticks_until_due() == 1


def test_a_learner_has_no_timer() -> None:
    net = Network("abd", learners="d")
    assert net.cores["d"].ticks_until_due() is None
