"""The disk hand-off of one Ready, side by side: code trees writing at once.

    python -m bench.disk_hop --writes 1000 --gap-ms 3 --entries 1 /tmp/base .

For each tree (a directory holding a ``raft_trio`` package, as for
``bench/side_by_side.py``) one process runs at the same time as the
others, so that the disk and the machine's load fall on every tree alike.
Each opens a ``DurableStorage`` in a new data directory and, from a Trio
event loop, hands ``--writes`` Readys (a new hard state and ``--entries``
entries of 150 bytes) to a ``DiskWriter`` thread, one at a time and
``--gap-ms`` apart (a write at one client comes every few milliseconds),
as the node's ready loop does. ``--busy-us`` keeps the event loop busy that
long after each hand-off (the frames a node sends meanwhile), holding the
GIL the writer thread needs between its SQLite calls.

Per tree: the hop (handed over until back on the loop) and the write alone
(on the writer thread, ``write_to_disk``), p50 and p90 in microseconds,
the writer thread's CPU time in the write (system calls included),
and the bytes written per Ready (``wchar`` of ``/proc/self/io``: the
WAL's frames, and the checkpoints' pages, over the window). With
``--noop`` the writer is handed a job that does nothing: what the
hand-off itself costs (two thread wake-ups and the Trio task switches).
With ``--bare`` it appends the Ready (msgpack, a CRC32 and a length before
it) to a plain file and ``fdatasync``s it, as an append-only log such as
etcd's WAL does: the floor under the SQLite transaction's cost.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = "--child"


def child(a: argparse.Namespace) -> None:
    import zlib

    import msgspec
    import trio

    from raft_trio.core import Entry, EntryKind, HardState
    from raft_trio.node.disk import DiskWriter
    from raft_trio.server import tune_process
    from raft_trio.storage import DurableStorage

    tune_process()  # as in a node process
    hops: list[float] = []
    writes: list[float] = []
    cpus: list[float] = []

    async def main() -> None:
        with tempfile.TemporaryDirectory(prefix="disk-hop-") as root:
            storage = DurableStorage.open(root, "n1")
            writer = DiskWriter("disk-hop")

            bare = os.open(Path(root) / "bare.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            encode = msgspec.msgpack.Encoder().encode

            def append_bare(hard_state: HardState, entries: list[Entry], _: None) -> None:
                record = encode((hard_state, entries))
                os.write(bare, struct.pack("<II", len(record), zlib.crc32(record)) + record)
                os.fdatasync(bare)

            def timed(*args: object) -> None:
                started, cpu = time.perf_counter(), time.thread_time()
                if a.bare:
                    append_bare(*args)  # type: ignore[arg-type]
                elif not a.noop:
                    storage.write_to_disk(*args)  # type: ignore[arg-type]
                writes.append(time.perf_counter() - started)
                cpus.append(time.thread_time() - cpu)

            index = 0
            written_before = 0
            try:
                for n in range(a.writes):
                    await trio.sleep(a.gap_ms / 1000)
                    if n == a.writes // 10:
                        written_before = _bytes_written()
                        writes.clear()
                        cpus.clear()
                        hops.clear()
                    batch = [
                        Entry(index + k, 1, EntryKind.NORMAL, os.urandom(150))
                        for k in range(1, a.entries + 1)
                    ]
                    index += a.entries
                    hard_state = HardState(1, "n1", index - a.entries)
                    handed = trio.Event()

                    async def write(
                        handed: trio.Event = handed,
                        hard_state: HardState = hard_state,
                        batch: list[Entry] = batch,
                    ) -> None:
                        handed.set()  # the job is queued before this task first yields
                        await writer(timed, hard_state, batch, None)

                    started = time.perf_counter()
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(write)
                        await handed.wait()
                        spin_until = time.perf_counter() + a.busy_us / 1e6
                        while time.perf_counter() < spin_until:
                            pass
                    hops.append(time.perf_counter() - started)
                    storage.apply_to_cache(hard_state, batch, None)
                written = _bytes_written() - written_before
            finally:
                await writer(storage.close)
                writer.stop()
                os.close(bare)
        measured = len(hops)
        print(
            json.dumps(
                {
                    "hop": _percentiles(hops),
                    "write": _percentiles(writes),
                    "cpu": _percentiles(cpus),
                    "bytes_a_ready": written / measured,
                }
            )
        )

    trio.run(main)


def _bytes_written() -> int:
    """Bytes this process has handed to write system calls (the WAL's
    frames, checkpoints' pages, the WAL and database headers)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/self/io")


def _percentiles(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return values[len(values) // 2] * 1e6, values[len(values) * 9 // 10] * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trees", nargs="*")
    p.add_argument("--writes", type=int, default=1000)
    p.add_argument("--gap-ms", type=float, default=3.0)
    p.add_argument("--entries", type=int, default=1)
    p.add_argument("--busy-us", type=float, default=0.0)
    p.add_argument("--rounds", type=int, default=3)
    job = p.add_mutually_exclusive_group()
    job.add_argument(
        "--noop", action="store_true", help="hand over a job that does nothing: the hand-off alone"
    )
    job.add_argument(
        "--bare",
        action="store_true",
        help="append each Ready to a plain file and fdatasync it: an append-only log's floor",
    )
    p.add_argument(CHILD, action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a)
        return
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        CHILD,
        f"--writes={a.writes}",
        f"--gap-ms={a.gap_ms}",
        f"--entries={a.entries}",
        f"--busy-us={a.busy_us}",
        *(["--noop"] if a.noop else []),
        *(["--bare"] if a.bare else []),
    ]
    load = Path("/proc/loadavg").read_text().split()[0]
    for round_ in range(a.rounds):
        # Run as a script, so that each tree's raft_trio (PYTHONPATH) comes
        # before the one installed, and all at once.
        procs = [
            subprocess.Popen(
                argv,
                env={**os.environ, "PYTHONPATH": str(Path(tree).resolve())},
                stdout=subprocess.PIPE,
                text=True,
            )
            for tree in a.trees
        ]
        for tree, proc in zip(a.trees, procs, strict=True):
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"{tree}: the writer process failed ({proc.returncode})")
            r = json.loads(out)
            print(
                f"round {round_}  {tree:30}  hop p50 {r['hop'][0]:6.0f} p90 {r['hop'][1]:6.0f} us  "
                f"write p50 {r['write'][0]:6.0f} p90 {r['write'][1]:6.0f} us  "
                f"its CPU p50 {r['cpu'][0]:4.0f} us  "
                f"written {r['bytes_a_ready']:.0f} bytes a Ready  load {load}",
                flush=True,
            )
        load = Path("/proc/loadavg").read_text().split()[0]


if __name__ == "__main__":
    main()
