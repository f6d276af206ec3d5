"""Each named crash point, in a process that writes to one data directory
and kills itself there (``RAFT_CRASH_POINT``): what the dead process left is
read without changing it, then recovered, and must be exactly the writes
that had returned, plus the one in progress if it had committed. Quick and
deterministic; the cluster tests (``test_cluster_crash_points.py``) then
show the same points in a running node under load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from raft_trio.core import HardState
from raft_trio.storage import CRASH_POINTS, DurableStorage, inspect_data_dir
from raft_trio.storage._crashpoints import parse

from ..storage.helpers import INITIAL, assert_same
from .storage_ops import OPS, model

ROOT = Path(__file__).resolve().parents[2]

#: (point, hit) -> the operation (0 = open, 1.. = OPS) the hit lands in;
#: see storage_ops' docstring.
CASES = {
    ("before_fsync", 1): 1,
    ("before_fsync", 4): 5,
    ("after_fsync", 1): 1,
    ("after_fsync", 6): 8,
    ("before_fsync", 7): 9,
    ("after_fsync", 7): 9,
    ("before_rename", 1): 0,
    ("before_rename", 3): 6,
    ("after_rename", 1): 0,
    ("after_rename", 2): 3,
    ("before_compact_commit", 1): 3,
    ("before_compact_commit", 2): 6,
    ("after_compact_commit", 1): 3,
    ("after_compact_commit", 2): 6,
}
#: Points at which the operation in progress is already durable.
COMMITTED = {"after_fsync", "after_compact_commit"}


def run_child(path: Path, crash_point: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RAFT_CRASH_POINT"}
    if crash_point is not None:
        env["RAFT_CRASH_POINT"] = crash_point
    return subprocess.run(
        [sys.executable, "-m", "tests.crash.storage_ops", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_crash_point_is_covered() -> None:
    assert {point for point, _ in CASES} == set(CRASH_POINTS)


def test_bad_crash_point_values_are_refused() -> None:
    assert parse("after_fsync") == ("after_fsync", 1)
    assert parse("after_fsync:7") == ("after_fsync", 7)
    for bad in ("after_fysnc", "after_fsync:0", "after_fsync:x", "after_fsync:-1", ""):
        with pytest.raises(ValueError, match="RAFT_CRASH_POINT"):
            parse(bad)


def test_a_typo_in_the_variable_stops_the_process() -> None:
    env = {**os.environ, "RAFT_CRASH_POINT": "before_fsnyc"}
    result = subprocess.run(
        [sys.executable, "-c", "import raft_trio.storage"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "unknown crash point 'before_fsnyc'" in result.stderr
    # As a bad setting does: one line, no traceback.
    assert result.stderr.startswith("raft-trio: RAFT_CRASH_POINT=") and len(result.stderr.splitlines()) == 1


@pytest.mark.integration
def test_without_a_crash_point_the_child_finishes(tmp_path: Path) -> None:
    result = run_child(tmp_path / "data", None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "finished"
    with DurableStorage.open(tmp_path / "data", "n1", "c1", initial_snapshot=INITIAL) as storage:
        assert_same(model(len(OPS)), storage)


@pytest.mark.integration
@pytest.mark.parametrize(("point", "hit"), sorted(CASES))
def test_crash_point(tmp_path: Path, point: str, hit: int) -> None:
    path = tmp_path / "data"
    result = run_child(path, f"{point}:{hit}")
    assert result.returncode == -signal.SIGKILL, (result.returncode, result.stderr)
    assert f"raft-trio: crash point {point} reached (hit {hit}): SIGKILL" in result.stderr
    done = [int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("done ")]
    in_progress = done[-1] + 1 if done else 0
    assert in_progress == CASES[point, hit], f"died in operation {in_progress}: {result.stdout!r}"

    # What the crash left, read without changing anything.
    before = {p.name: p.read_bytes() for p in path.rglob("*") if p.is_file() and p.suffix != ".db-shm"}
    left = inspect_data_dir(path)
    after = {p.name: p.read_bytes() for p in path.rglob("*") if p.is_file() and p.suffix != ".db-shm"}
    assert before == after, "inspecting the data directory changed it"
    durable = in_progress if point in COMMITTED else in_progress - 1
    expected = model(max(durable, 0))
    if in_progress > 0:
        assert (left.hard_state or HardState()) == expected.hard_state()
        assert left.snapshot == (expected.snapshot().meta.index, expected.snapshot().meta.term)
    if point == "before_rename":
        assert any(name.endswith(".snap.tmp") for name in left.other_files), left
    if point in ("after_rename", "before_compact_commit") and in_progress > 0:
        assert left.snapshot is not None and max(left.snapshot_files) > left.snapshot, left
    if point == "after_compact_commit":
        assert left.snapshot == max(left.snapshot_files), left

    # Recovery: exactly the durable operations, and no leftovers.
    with DurableStorage.open(path, "n1", "c1", initial_snapshot=INITIAL) as storage:
        assert_same(expected, storage)
    tidy = inspect_data_dir(path)
    assert tidy.other_files == [], tidy
    assert tidy.snapshot is not None and tidy.snapshot == max(tidy.snapshot_files), tidy
    assert len(tidy.snapshot_files) <= 2, tidy

    # And the directory keeps working: the rest of the writes on top.
    with DurableStorage.open(path, "n1", "c1", initial_snapshot=INITIAL) as storage:
        for _, apply in OPS[max(durable, 0) :]:
            apply(storage)
        assert_same(model(len(OPS)), storage)
