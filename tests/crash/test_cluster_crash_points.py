"""A node of a running 3-node cluster dies at a named crash point while a
writer loads the cluster, is restarted without it, and then: every write
acknowledged before (and after) the crash is readable on every node, no
node's term went back and no node changed its vote within a term.

The fsync points are armed on the leader (leadership is handed to the
armed node before the load starts); the snapshot points on n1 whatever its
role. Timings are short (elections in 300-600 ms) and a snapshot is taken
every 30 entries, so renames and compactions happen within a second of
load. The hit counts are chosen so that the node dies some way into the
load: a node writes about one ``Ready`` per acknowledged write, a handful
before the load starts, and its bootstrap snapshot is rename hit 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import (
    TermRecorder,
    Writer,
    assert_died_at,
    check_acknowledged,
    disarm,
    make_cluster,
    make_leader,
)

ARMED = "n1"
#: point -> (hit, whether the armed node should lead)
POINTS = {
    "before_fsync": (40, True),
    "after_fsync": (40, True),
    "before_rename": (3, False),
    "after_rename": (3, False),
    "before_compact_commit": (2, False),
    "after_compact_commit": (2, False),
}


@pytest.mark.integration
@pytest.mark.parametrize("point", list(POINTS))
def test_node_killed_at_crash_point_under_load(tmp_path: Path, point: str) -> None:
    hit, lead = POINTS[point]
    c = make_cluster(tmp_path, point, crash={ARMED: f"{point}:{hit}"})
    recorder = TermRecorder(c).start()
    writer: Writer | None = None
    try:
        if lead:
            assert make_leader(c, ARMED), f"could not hand leadership to {ARMED}"
        lid, _ = c.wait_for_leader()
        urls = [c[lid].url] + [n.url for nid, n in c.nodes.items() if nid != lid]
        writer = Writer(urls).start()
        assert_died_at(c, ARMED, point)
        before = writer.count()
        assert before >= 10, f"{ARMED} died after only {before} acknowledged writes: not under load"
        recorder.record_disk(ARMED)
        # The two others go on without it (a new leader if it led) ...
        writer.wait_for(10, what=f"from the two nodes left after {ARMED} died")
        # ... and it comes back from what the crash left on its disk.
        disarm(c, ARMED)
        c[ARMED].start()
        c.wait_for_leader(list(c.nodes), timeout=20.0)
        writer.wait_for(10, what=f"after {ARMED} restarted")
        writer.stop()
        summary = check_acknowledged(c, writer)
        print(
            f"{point}:{hit} on {ARMED} ({'leader' if lead else 'any role'}): {before} acked before the crash"
        )
        print(summary)
        recorder.kill_all_and_record()
        print(recorder.check())
    finally:
        recorder.stop()
        if writer is not None:
            writer.stop()
        c.close()
