"""SIGKILL at random moments: under a steady load, a random node (the
leader or a follower) is killed at a random moment, its hard state read
from its data directory while it is dead, and restarted after a random
pause, several times over. Then every acknowledged write must be readable
on every node, no node's term may have gone back, and no node may have
changed its vote within a term.

Seeded: the seed is printed, and ``RAFT_CRASH_SEED=<seed>`` replays the
same choices (the moments still fall at different points of the nodes'
work: that is the point).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from .harness import TermRecorder, Writer, check_acknowledged, make_cluster

KILLS = 5


@pytest.mark.integration
def test_random_sigkills_under_load_lose_no_acknowledged_write(tmp_path: Path) -> None:
    seed = int(os.environ.get("RAFT_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"RAFT_CRASH_SEED={seed}")
    rng = random.Random(seed)
    c = make_cluster(tmp_path, "random")
    recorder = TermRecorder(c).start()
    writer: Writer | None = None
    kills: list[str] = []
    try:
        writer = Writer([n.url for n in c.nodes.values()], threads=2).start()
        writer.wait_for(5, what="before the first kill")
        for round_ in range(KILLS):
            time.sleep(rng.uniform(0.1, 1.0))
            lid, _ = c.wait_for_leader()
            # Half the time the leader, else a follower.
            victim = lid if rng.random() < 0.5 else rng.choice(sorted(n for n in c.nodes if n != lid))
            role = "leader" if victim == lid else "follower"
            c[victim].kill()
            disk = recorder.record_disk(victim)
            kills.append(f"{victim} ({role}, term {disk.term} vote {disk.vote})")
            time.sleep(rng.uniform(0.0, 0.5))
            c[victim].start()
            c.wait_for_leader(list(c.nodes), timeout=20.0)  # it runs and follows the leader again
            writer.wait_for(5, what=f"after restart {round_ + 1} of {victim}")
        c.wait_for_leader(list(c.nodes), timeout=20.0)
        writer.wait_for(10, what="after the last restart")
        writer.stop()
        summary = check_acknowledged(c, writer)
        recorder.kill_all_and_record()
        history = recorder.check()
        print("killed:", "; ".join(kills))
        print(summary)
        print(history)
    finally:
        recorder.stop()
        if writer is not None:
            writer.stop()
        c.close()
