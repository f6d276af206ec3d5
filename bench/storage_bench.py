"""Storage benchmarks of raft-trio, run by hand (never part of the tests).

1. ``fsync``: fsyncs per committed write under load. Starts a 3-node cluster
   of real ``raft-trio node`` processes on 127.0.0.1, drives the leader with
   ``wrk`` (``bench/put.lua``: distinct keys, 100-byte values) at several
   concurrencies, and reads every node's ``/metrics`` before and after:
   ``raft_fsync_seconds_count`` (one per durable write of a ``Ready``: one
   SQLite transaction, one fsync of the WAL) over the growth of
   ``raft_commit_index`` (entries committed). Group commit shows as a ratio
   well below 1 once many clients write at once. ``--strace`` also counts
   the real fsync/fdatasync system calls of the leader with strace, to check
   the metric: one more run at the highest concurrency with strace attached
   to the leader (which slows it), its row marked with the count.

2. ``restart``: restart time of a node with 1,000,000 entries. Builds data
   directories directly through ``DurableStorage.persist`` (batches of
   10,000 entries of a 100-byte Put each): one with the whole log after an
   empty snapshot (the issue's case), one with a snapshot of 1,000,000 keys
   and a short log after it (what a node with the default snapshot policy
   really holds). For each it times, on a fresh copy (warm page cache, as
   after a crash): ``DurableStorage.open`` and ``RaftNode`` construction in
   this process, then a real ``raft-trio node`` process from its start
   until ``/healthz`` answers and until it has applied everything.

Usage (from the repository root, with raft-trio installed)::

    python -m bench.storage_bench all --results bench/results/storage.md
    python -m bench.storage_bench fsync --duration 10 --connections 1,8,64
    python -m bench.storage_bench restart --entries 1000000 --runs 3

Every process this starts is stopped (SIGTERM, then SIGKILL) by its pid.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from raft_trio import schema
from raft_trio.client import Client, ClientError
from raft_trio.core import Entry, EntryKind, HardState, Membership, Snapshot, SnapshotMeta
from raft_trio.kv import KeyValueStore, Put, encode_command
from raft_trio.node.runtime import RaftNode, Timing
from raft_trio.storage import DurableStorage, SnapshotPolicy
from raft_trio.testing.processes import NodeCluster, NodeProcess, free_port
from raft_trio.testing.waiting import wait_until

from ._common import HERE, PUT_LUA, bench_env, fsync_probe, http_request, run_wrk, scrape

VALUE = "v" * 100
#: The log is never compacted while a data directory is built.
NO_SNAPSHOTS = SnapshotPolicy(max_entries=1 << 62, max_bytes=1 << 62)


def status(port: int) -> schema.Status | None:
    """The node's status through the client (None while it does not answer)."""
    try:
        with Client(f"http://127.0.0.1:{port}", timeout=2.0, retry=False) as client:
            return client.status()
    except ClientError:
        return None


#: The samples of /metrics the fsync bench reads.
METRICS = ("raft_fsync_seconds_count", "raft_fsync_seconds_sum", "raft_commit_index", "raft_applied_index")


# -- 1. fsyncs per committed write ----------------------------------------------------


@dataclasses.dataclass
class FsyncRow:
    connections: int
    node: str
    role: str
    writes_per_s: float
    acked: int
    committed: int
    fsyncs: int
    mean_fsync_ms: float
    p50_ms: float
    p99_ms: float
    syscalls: int | None = None

    @property
    def per_write(self) -> float:
        return self.fsyncs / self.committed if self.committed else float("nan")


def put_wrk(url: str, connections: int, duration: float, tag: str) -> dict[str, Any]:
    """wrk writing distinct keys (put.lua) to ``url``: its fields, and ``argv``."""
    result, argv = run_wrk(PUT_LUA, url, connections, duration, [tag])
    return {**result, "argv": argv}


@contextlib.contextmanager
def strace_fsyncs(pid: int, out: Path) -> Iterator[list[int]]:
    """Count the fsync/fdatasync calls of every thread of ``pid`` while
    the block runs (strace -c); the count lands in the yielded list."""
    argv = ["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", str(out), "-p", str(pid)]
    tracer = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached to every thread
    counted: list[int] = []
    try:
        yield counted
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(30)
        total = 0
        for row in out.read_text().splitlines():
            fields = row.split()
            if fields and fields[-1] in ("fsync", "fdatasync"):
                total += int(fields[3] if len(fields) >= 6 else fields[-2])
        counted.append(total)


def bench_fsync(
    connections: list[int], duration: float, use_strace: bool
) -> tuple[list[FsyncRow], list[str]]:
    commands: list[str] = []
    rows: list[FsyncRow] = []
    with tempfile.TemporaryDirectory(prefix="raft-bench-") as tmp:
        root = Path(tmp)
        cluster = NodeCluster(root, 3, bench_env())
        ids = list(cluster.nodes)
        port_of = {nid: node.port for nid, node in cluster.nodes.items()}
        try:
            cluster.start_processes()
            lid, _ = cluster.wait_for_leader(timeout=30.0)
            url = f"http://127.0.0.1:{port_of[lid]}"
            put_wrk(url, 8, 2, "warmup")
            runs = [(conc, False) for conc in connections]
            if use_strace:
                runs.append((max(connections), True))
            for conc, traced in runs:
                tag = f"c{conc}-{int(time.time())}"
                before = {nid: scrape(port, METRICS) for nid, port in port_of.items()}
                counted: list[int] = []
                with contextlib.ExitStack() as stack:
                    if traced:
                        counted = stack.enter_context(
                            strace_fsyncs(cluster[lid].pid, root / f"strace-{conc}")
                        )
                    result = put_wrk(url, conc, duration, tag)
                time.sleep(0.5)  # followers learn the last commit index
                after = {nid: scrape(port, METRICS) for nid, port in port_of.items()}
                agreed, seen = cluster.agreed_leader()
                if not agreed or seen[0] != lid:
                    raise SystemExit("storage_bench: the leader changed during the run; try again")
                commands.append(" ".join(result["argv"]))
                acked = result["requests"] - result["non_2xx"]
                for nid in ids:
                    b, a = before[nid], after[nid]
                    fsyncs = int(a["raft_fsync_seconds_count"] - b["raft_fsync_seconds_count"])
                    seconds = a["raft_fsync_seconds_sum"] - b["raft_fsync_seconds_sum"]
                    rows.append(
                        FsyncRow(
                            connections=conc,
                            node=nid,
                            role="leader" if nid == lid else "follower",
                            writes_per_s=acked / (result["duration_us"] / 1e6),
                            acked=acked,
                            committed=int(a["raft_commit_index"] - b["raft_commit_index"]),
                            fsyncs=fsyncs,
                            mean_fsync_ms=1000 * seconds / fsyncs if fsyncs else float("nan"),
                            p50_ms=result["p50_us"] / 1000,
                            p99_ms=result["p99_us"] / 1000,
                            syscalls=counted[0] if counted and nid == lid else None,
                        )
                    )
                    print(fsync_table(rows[-1:], header=False), flush=True)
        finally:
            cluster.stop()
            cluster.close()
    return rows, commands


def fsync_table(rows: list[FsyncRow], header: bool = True) -> str:
    out = []
    if header:
        out.append(
            "| clients | node | role | writes/s | p50 ms | p99 ms | committed entries | fsyncs "
            "| fsyncs per committed write | mean fsync ms | fsync+fdatasync syscalls (strace) |"
        )
        out.append("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        syscalls = "" if r.syscalls is None else str(r.syscalls)
        out.append(
            f"| {r.connections} | {r.node} | {r.role} | {r.writes_per_s:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} "
            f"| {r.committed:,} | {r.fsyncs:,} | **{r.per_write:.3f}** | {r.mean_fsync_ms:.2f} | {syscalls} |"
        )
    return "\n".join(out)


# -- 2. restart time ---------------------------------------------------------------------


def _puts(lo: int, hi: int, ts: int) -> list[Entry]:
    return [
        Entry(i, 1, EntryKind.NORMAL, encode_command(Put(f"key-{i:07d}", VALUE, ts=ts)))
        for i in range(lo, hi)
    ]


def build_log_dir(path: Path, url: str, entries: int, batch: int = 10_000) -> float:
    """A data directory of node n1 (alone in its cluster) holding
    ``entries`` committed entries after an empty snapshot."""
    started = time.perf_counter()
    initial = Snapshot(SnapshotMeta(0, 0, Membership.of({"n1": url})))
    ts = int(time.time() * 1000)
    with DurableStorage.open(path, "n1", initial_snapshot=initial, policy=NO_SNAPSHOTS) as storage:
        for lo in range(1, entries + 1, batch):
            hi = min(entries + 1, lo + batch)
            storage.persist(HardState(1, "n1", hi - 1), _puts(lo, hi, ts))
    return time.perf_counter() - started


def build_snapshot_dir(path: Path, url: str, keys: int, tail: int) -> float:
    """A data directory of node n1 whose snapshot holds ``keys`` keys (at
    index ``keys``), followed by ``tail`` committed entries."""
    started = time.perf_counter()
    ts = int(time.time() * 1000)
    kv = KeyValueStore()
    for i in range(1, keys + 1):
        kv.apply(i, Put(f"key-{i:07d}", VALUE, ts=ts))
    snapshot = Snapshot(SnapshotMeta(keys, 1, Membership.of({"n1": url})), kv.snapshot())
    del kv
    with DurableStorage.open(path, "n1", initial_snapshot=snapshot, policy=NO_SNAPSHOTS) as storage:
        last = keys + tail
        storage.persist(HardState(1, "n1", last), _puts(keys + 1, last + 1, ts))
    return time.perf_counter() - started


@dataclasses.dataclass
class RestartRow:
    case: str
    run: int
    open_s: float
    node_s: float
    healthz_s: float
    applied_s: float
    disk_mb: float


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure_restart(case: str, source: Path, url: str, port: int, last: int, runs: int) -> list[RestartRow]:
    rows = []
    for run in range(1, runs + 1):
        with tempfile.TemporaryDirectory(prefix="raft-restart-") as tmp:
            copy = Path(tmp) / "n1"
            shutil.copytree(source, copy)
            disk_mb = dir_size(copy) / 1e6
            # In this process: recovery and the node's construction (which
            # restores the snapshot into the key-value store).
            t0 = time.perf_counter()
            storage = DurableStorage.open(copy, "n1", policy=SnapshotPolicy())
            t1 = time.perf_counter()
            node = RaftNode("n1", url, storage, Timing())
            t2 = time.perf_counter()
            assert storage.last_index() == last, (storage.last_index(), last)
            del node
            storage.close()
            # A real process: from its start until /healthz answers, and
            # until it has applied every committed entry.
            env = bench_env({"RAFT_SNAPSHOT_ENTRIES": str(1 << 40)})
            process = NodeProcess("n1", port, copy.parent, ["--peers", f"n1={url}"], env)
            started = time.monotonic()
            process.start()
            try:

                def healthy(process: NodeProcess = process) -> tuple[bool, str]:
                    if process.returncode is not None:
                        raise SystemExit(
                            f"storage_bench: the node exited with {process.returncode}; see {process.log_path}"
                        )
                    try:
                        return http_request(port, "GET", "/healthz", timeout=0.5)[0] == 200, "not healthy"
                    except OSError as error:
                        return False, str(error)

                wait_until(healthy, 120.0, "/healthz", poll=0.01)
                healthz = time.monotonic() - started

                def applied() -> tuple[bool, object]:
                    st = status(port)
                    return st is not None and st.applied_index >= last, st

                wait_until(applied, 300.0, "everything applied", poll=0.02)
                applied_s = time.monotonic() - started
            finally:
                process.stop()
            rows.append(RestartRow(case, run, t1 - t0, t2 - t1, healthz, applied_s, disk_mb))
            print(restart_table(rows[-1:], header=False), flush=True)
    return rows


def restart_table(rows: list[RestartRow], header: bool = True) -> str:
    out = []
    if header:
        out.append(
            "| case | run | on disk MB | `DurableStorage.open` s | `RaftNode(...)` s | process start to /healthz s "
            "| process start to all applied s |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---:|")
    out.extend(
        f"| {r.case} | {r.run} | {r.disk_mb:,.0f} | {r.open_s:.2f} | {r.node_s:.2f} | **{r.healthz_s:.2f}** "
        f"| {r.applied_s:.2f} |"
        for r in rows
    )
    return "\n".join(out)


def bench_restart(entries: int, tail: int, runs: int) -> tuple[list[RestartRow], list[str]]:
    notes = []
    rows: list[RestartRow] = []
    with tempfile.TemporaryDirectory(prefix="raft-restart-src-") as tmp:
        root = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log_dir = root / "log"
        built = build_log_dir(log_dir, url, entries)
        notes.append(
            f"built {entries:,} entries in the log in {built:.1f} s ({dir_size(log_dir) / 1e6:,.0f} MB)"
        )
        print(notes[-1], flush=True)
        rows += measure_restart(f"{entries:,} entries in the log", log_dir, url, port, entries, runs)
        shutil.rmtree(log_dir)
        snap_dir = root / "snap"
        built = build_snapshot_dir(snap_dir, url, entries, tail)
        notes.append(
            f"built a snapshot of {entries:,} keys + {tail:,} entries in {built:.1f} s "
            f"({dir_size(snap_dir) / 1e6:,.0f} MB)"
        )
        print(notes[-1], flush=True)
        rows += measure_restart(
            f"snapshot of {entries:,} keys + {tail:,} entries", snap_dir, url, port, entries + tail, runs
        )
    return rows, notes


# -- the report ----------------------------------------------------------------------------


def machine() -> str:
    return (
        f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} cores, "
        f"median 4 KiB write+fsync {fsync_probe(HERE):.2f} ms"
    )


FSYNC_NOTES = """\
A 3-node cluster of `raft-trio node` processes on 127.0.0.1 (default timings:
heartbeat 100 ms, election 1-2 s), driven by `wrk` on the leader with
`bench/put.lua` (distinct keys, 100-byte values), everything on the same
machine. *fsyncs* is the growth of `raft_fsync_seconds_count` (one per
`Ready` made durable: one SQLite transaction, whose COMMIT fsyncs the WAL)
and *committed entries* that of `raft_commit_index`, on each node over the
run. *mean fsync ms* is the time of one such write, thread hop included. With
one client each write costs two transactions on every node (its entries,
then the hard state carrying the new commit index); with many, group commit
makes one transaction carry many writes. The strace column, where filled,
counts the leader's real fsync and fdatasync calls over that run (strace
slows the leader, so that run is a check of the metric, not a speed)."""

RESTART_NOTES = """\
Data directories of a one-node cluster built through
`DurableStorage.persist` (batches of 10,000 entries, each a Put of a
100-byte value), restarted from a fresh copy (warm page cache, as after a
process crash). `DurableStorage.open` (recovery: verify and load every row
after the snapshot, or load and verify the snapshot) and `RaftNode(...)`
(restore the snapshot into the key-value store) are timed in the bench's own
process; then a real `raft-trio node` process from its start until `/healthz`
answers (interpreter start and imports included), and until
`/api/status` says every committed entry is applied. The runtime replays the
recovered log into the key-value store in one `Ready`, on its event loop:
while it does, the node answers nothing, so `/healthz` answers either before
that replay starts (if the HTTP server was up first) or only after it ends
(then the two last columns are equal)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("fsync", "restart", "all"), nargs="?", default="all")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of wrk per concurrency")
    parser.add_argument("--connections", default="1,8,64", help="wrk connections, comma-separated")
    parser.add_argument("--strace", action="store_true", help="count the leader's fsync syscalls too")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--tail", type=int, default=5_000, help="log entries after the 1M-key snapshot")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--results", type=Path, help="write the report (markdown) here")
    args = parser.parse_args()
    if args.what in ("fsync", "all") and shutil.which("wrk") is None:
        raise SystemExit("storage_bench: wrk is not installed (apt-get install wrk)")

    report = ["# Storage benchmarks", "", f"Machine: {machine()}.", ""]
    report.append(f"Command: `python -m bench.storage_bench {' '.join(sys.argv[1:])}`")
    report.append("")
    if args.what in ("fsync", "all"):
        conns = [int(c) for c in args.connections.split(",")]
        rows, commands = bench_fsync(conns, args.duration, args.strace)
        report += ["## fsyncs per committed write", "", FSYNC_NOTES, "", fsync_table(rows), "", "Load:", ""]
        report += [f"    {c}" for c in commands] + [""]
    if args.what in ("restart", "all"):
        restart_rows, notes = bench_restart(args.entries, args.tail, args.runs)
        report += ["## Restart time", "", RESTART_NOTES, "", *[f"- {n}" for n in notes], ""]
        report += [restart_table(restart_rows), ""]
    text = "\n".join(report)
    print()
    print(text)
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(text)


if __name__ == "__main__":
    main()
