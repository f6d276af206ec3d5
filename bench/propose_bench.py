"""Proposals per second through a leader's own write path, with no client
HTTP: what the Raft machinery itself sustains, the figure PySyncObj's
benchmark reports for its library.

The leader runs in this process: ``raft_trio.server.run_node`` as the
``raft-trio node`` command runs it (its real ``DurableStorage`` with fsync,
its real peer transport over HTTP, its HTTP server, which the followers need
to answer it). Two followers are ordinary ``raft-trio node`` processes.
Once this node leads (a leadership transfer to it if another won the first
election), N tasks each call ``RaftNode.write(Put(...))`` in a loop, the
call ``PUT /api/kv/{key}`` makes after parsing the request, and the writes
that returned within the measured window are counted. Set against the HTTP
figures of ``bench/compare.py``, this says how much the client HTTP layer
costs.

Usage::

    python -m bench.propose_bench --proposers 1,64 --warmup 2 --seconds 10

Prints one line ``PROPOSE_JSON {...}`` per concurrency for compare.py, and
stops the followers (by pid) however it ends.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import trio

from raft_trio.client import ClientError, TrioClient
from raft_trio.kv import Put
from raft_trio.node.runtime import RaftNode
from raft_trio.server import NodeSettings, run_node, tune_process
from raft_trio.testing.processes import NodeCluster

from ._common import bench_env

VALUE = "v" * 100


async def become_leader(node: RaftNode, timeout: float = 60.0) -> None:  # noqa: ASYNC109 (a bench script)
    """Wait until this node leads and has committed an entry of its term;
    ask the elected leader to hand over if another node won."""
    async with TrioClient((), timeout=5) as client:
        with trio.fail_after(timeout):
            while True:
                if node.is_leader:
                    try:
                        await node.write(Put("propose-bench-probe", "x"))
                        return
                    except Exception as error:  # not settled yet: try again
                        logging.info("probe write: %s", error)
                elif (leader_url := node.leader_url()) is not None:
                    try:
                        await client.at(leader_url).transfer_leadership(node.id)
                    except ClientError as error:
                        logging.info("transfer: %s", error)
                await trio.sleep(0.2)


async def measure(node: RaftNode, proposers: int, warmup: float, seconds: float) -> dict[str, Any]:
    """``proposers`` tasks writing distinct keys back to back; counts the
    writes that complete inside the window after the warm-up."""
    start = trio.current_time() + warmup
    end = start + seconds
    latencies: list[float] = []
    errors: list[str] = []

    async def proposer(worker: int) -> None:
        n = 0
        while (now := trio.current_time()) < end:
            n += 1
            try:
                await node.write(Put(f"propose-{proposers}-{worker}-{n}", VALUE))
            except Exception as error:  # every failure is reported, none hidden
                errors.append(f"{type(error).__name__}: {error}")
                await trio.sleep(0.01)
                continue
            done = trio.current_time()
            if start <= now and done <= end:
                latencies.append(done - now)

    async with trio.open_nursery() as nursery:
        for worker in range(proposers):
            nursery.start_soon(proposer, worker)
    latencies.sort()

    def pct(p: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0

    return {
        "proposers": proposers,
        "writes": len(latencies),
        "seconds": seconds,
        "writes_per_s": len(latencies) / seconds,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


async def run(concurrencies: list[int], warmup: float, seconds: float, root: Path) -> None:
    # n1 is planned with the others but runs here; n2 and n3 are processes.
    cluster = NodeCluster(root, 3, bench_env())
    urls = cluster.urls
    followers = [cluster["n2"], cluster["n3"]]
    try:
        for follower in followers:
            follower.start()
        settings = NodeSettings(
            node_id="n1",
            listen_host="127.0.0.1",
            listen_port=cluster["n1"].port,
            data_dir=str(root / "n1"),
            peers=urls,
            url=urls["n1"],
        )
        async with trio.open_nursery() as nursery:

            async def leader_node(*, task_status: trio.TaskStatus[RaftNode]) -> None:
                # run_node returns on SIGTERM/SIGINT: then stop everything.
                await run_node(settings, task_status=task_status)
                nursery.cancel_scope.cancel()

            node: RaftNode = await nursery.start(leader_node)
            await become_leader(node)
            for proposers in concurrencies:
                result = await measure(node, proposers, warmup, seconds)
                if not node.is_leader:
                    raise SystemExit("propose_bench: this node lost leadership during the run; try again")
                print("PROPOSE_JSON " + json.dumps(result), flush=True)
            nursery.cancel_scope.cancel()
    finally:
        for follower in followers:
            follower.stop(grace=5.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proposers", default="1,64", help="concurrent proposers, comma-separated")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each window")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per concurrency")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    concurrencies = [int(c) for c in args.proposers.split(",")]
    started = time.monotonic()
    # The leader runs in this process: the process-wide settings that
    # ``raft-trio node`` makes at its start (raft_trio.server.run_node_process).
    tune_process()
    with tempfile.TemporaryDirectory(prefix="raft-propose-") as tmp:
        trio.run(partial(run, concurrencies, args.warmup, args.seconds, Path(tmp)))
    print(f"propose_bench: done in {time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
