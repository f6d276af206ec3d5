"""What the disk-fault guards cost, run by hand (never part of the tests).

Per write, three guards run that did not before:

- the leader measures free space for every new value
  (``SpaceGuard.refusal``: one ``statvfs``);
- every node checks after each commit that ``raft.db`` is still the file it
  has open (``DurableStorage._check_present``: one ``stat``);
- the state machine keeps its size (``KeyValueStore.size``: an addition).

Once per start after a crash, the WAL is read and its checksums verified
before SQLite opens it (``check_wal``). And the high-water mark is
replaced only when the term or the vote changes: this counts how often it
is written over many one-entry writes.

Usage (from the repository root, with raft-trio installed)::

    python -m bench.disk_guard_cost --results bench/results/disk_guard.md
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
import timeit
from pathlib import Path

from raft_trio.core import Entry, EntryKind, HardState, Membership, Snapshot, SnapshotMeta
from raft_trio.kv import Put, encode_command
from raft_trio.node.space import SpaceGuard
from raft_trio.storage import DurableStorage
from raft_trio.storage._highwater import MARK_NAME
from raft_trio.storage._wal import check_wal

INITIAL = Snapshot(SnapshotMeta(0, 0, Membership.of({"n1": "http://n1"})))


def per_call_us(statement: str, namespace: dict[str, object], number: int = 20_000) -> float:
    best = min(timeit.repeat(statement, globals=namespace, number=number, repeat=5))
    return best / number * 1e6


def entry(index: int) -> Entry:
    return Entry(index, 1, EntryKind.NORMAL, encode_command(Put(f"key-{index}", "v" * 100)))


def write_cost(root: Path, writes: int) -> tuple[float, int, int]:
    """(CPU µs per one-entry ``write_to_disk``, the presence check
    included; high-water mark writes; term changes) over ``writes`` writes,
    the term changing every 1,000. CPU time, not wall time: the fsync's
    wait is the disk's, and this is what the guard adds to."""
    storage = DurableStorage.open(root / "d", "n1", initial_snapshot=INITIAL)
    mark = root / "d" / MARK_NAME
    marks = terms = term = 0
    inode = mark.stat().st_ino
    spent = 0.0
    try:
        for index in range(1, writes + 1):
            if index % 1000 == 1:
                term += 1
                terms += 1
            started = time.process_time()
            storage.write_to_disk(HardState(term, "n1", index - 1), [entry(index)], None)
            spent += time.process_time() - started
            if mark.stat().st_ino != inode:
                marks += 1
                inode = mark.stat().st_ino
    finally:
        storage.close()
    return spent / writes * 1e6, marks, terms


def wal_check_cost(root: Path, frames_wanted: int) -> tuple[int, float]:
    """(frames, ms) of check_wal on a WAL a killed process left."""
    live = root / "wal"
    storage = DurableStorage.open(live, "n1", initial_snapshot=INITIAL)
    storage._db._conn.execute("PRAGMA wal_autocheckpoint = 0")
    i = 0
    while (live / "raft.db-wal").stat().st_size < frames_wanted * (4096 + 24):
        i += 1
        storage.write_to_disk(HardState(1, "n1", i - 1), [entry(i)], None)
    image = root / "image"
    shutil.copytree(live, image)
    storage.close()
    started = time.perf_counter()
    finding = check_wal(image / "raft.db")
    took = (time.perf_counter() - started) * 1000
    assert finding.damage is None
    return finding.valid_frames, took


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--results", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        guard = SpaceGuard(root, 0)
        refusal_us = per_call_us("guard.refusal(120)", {"guard": guard})
        stat_us = per_call_us("os.stat(path)", {"os": os, "path": root})
        write_us, marks, terms = write_cost(root, args.writes)
        frames, wal_ms = wal_check_cost(root, 1000)
    lines = [
        "# What the disk-fault guards cost",
        "",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} cores; "
        f"load average {os.getloadavg()[0]:.1f} when run.",
        "",
        f"Command: `python -m bench.disk_guard_cost{' --writes ' + str(args.writes) if args.writes != 2000 else ''}`",
        "",
        "| what | cost |",
        "|---|---:|",
        f"| `SpaceGuard.refusal` (one `statvfs`), per new value on the leader | {refusal_us:.1f} µs |",
        f"| one `os.stat` (the presence check after each commit) | {stat_us:.1f} µs |",
        f"| for scale: CPU of a one-entry `write_to_disk` (a transaction, an fsync), that check included | {write_us:.0f} µs |",
        f"| high-water mark writes over {args.writes} writes (the term changed {terms} times) | {marks} |",
        f"| `check_wal` on a WAL of {frames} frames (once per start after a crash) | {wal_ms:.0f} ms |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.results is not None:
        args.results.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
