"""A/B of code trees, side by side: one 3-node cluster per tree, all running
at the same time, measured over the same windows, so that the load of a
shared machine falls on every tree alike (alternating runs of
``bench/levers.py`` differ by a factor of two on a busy machine).

    python -m bench.side_by_side idle --seconds 30 --rounds 3 /tmp/base .
    python -m bench.side_by_side writes --clients 1 --seconds 10 --rounds 3 /tmp/base .
    python -m bench.side_by_side reads --clients 64 --seconds 10 --rounds 3 /tmp/base .
    python -m bench.side_by_side idle . '.|HEARTBEAT_REPEAT_MILLIS=200'
    python -m bench.side_by_side front-door --clients 64 --seconds 8 --rounds 3 /tmp/base .

A tree is a directory holding a ``raft_trio`` package (``git archive
<commit> raft_trio | tar -x -C /tmp/base`` makes one), put on the nodes'
``PYTHONPATH`` (they run in their data directories, so that ``python -m``
does not put the caller's directory first); ``tree|NAME=value,...`` adds
environment variables.
``idle`` prints each member's CPU at rest in percent of a core; ``writes``
runs wrk (``bench/load.lua``, distinct keys, 100-byte values) on every
leader at once and prints each member's CPU per committed write, in ms
(``/proc``: utime + stime, over the leader's commit index), and each
member's mean disk hop in ms (``raft_fsync_seconds``: from a Ready handed
to the disk until it is durable and back on the event loop); ``reads``
writes the keys of compare.py's read workload once, then runs its
linearizable reads on every leader at once and prints each member's CPU
per read;
``front-door`` runs no cluster: each tree's do-nothing front door
(``bench/front_door.py`` behind the tree's ``raft_trio.asgi``) under wrk
at once, and prints its CPU per request.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from raft_trio.testing.processes import Process, free_port

from . import compare
from ._common import http_request, scrape


class TreeCluster(compare.RaftCluster):
    """A raft-trio cluster running the code of one tree."""

    def __init__(self, root: Path, tree: str) -> None:
        super().__init__(root, compare.DEFAULT)
        path, _, extra = tree.partition("|")
        self.env = {"PYTHONPATH": str(Path(path).resolve())}
        for setting in filter(None, extra.split(",")):
            name, _, value = setting.partition("=")
            self.env[name] = value

    def argv(self, i: int) -> tuple[list[str], dict[str, str] | None]:
        argv, env = super().argv(i)
        return argv, {**(env or {}), **self.env}

    def start(self, i: int) -> None:
        argv, env = self.argv(i)
        process = Process(f"member{i}", argv, self.root / f"member{i}.log", env, cwd=self.root)
        process.start()
        self.procs[i] = process


def by_role(values: list[float], leader: int) -> str:
    followers = [f"{v:.2f}" for i, v in enumerate(values) if i != leader]
    return f"leader {values[leader]:.2f}  followers {', '.join(followers)}"


def at_once(calls: list[Callable[[], None]]) -> None:
    """Runs the calls in threads at the same time, until all are done."""
    threads = [threading.Thread(target=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def idle(clusters: list[TreeCluster], leaders: list[int], trees: list[str], a: argparse.Namespace) -> None:
    for round_ in range(a.rounds):
        before, started = [c.cpu() for c in clusters], time.monotonic()
        time.sleep(a.seconds)
        after, took = [c.cpu() for c in clusters], time.monotonic() - started
        for tree, leader, b, e in zip(trees, leaders, before, after, strict=True):
            pct = [100 * (y - x) / took for x, y in zip(b, e, strict=True)]
            print(
                f"round {round_}  {tree:40}  idle % of a core: {by_role(pct, leader)}  load {load()}",
                flush=True,
            )


_HOP = ("raft_fsync_seconds_sum", "raft_fsync_seconds_count")


def hops(c: TreeCluster) -> list[tuple[float, float]]:
    """Every member's ``raft_fsync_seconds`` so far: (sum, count)."""
    return [(m[_HOP[0]], m[_HOP[1]]) for m in (scrape(c.client_port(i), _HOP, timeout=2.0) for i in range(3))]


def write_round(
    c: TreeCluster, leader: int, tree: str, tag: str, a: argparse.Namespace, out: list[str]
) -> None:
    """One measured wrk run on ``c``'s leader; its line goes to ``out``,
    with each member's mean disk hand-off (``raft_fsync_seconds``: a
    Ready handed to the disk until durable and back on the event loop)."""
    url = c.url(leader)
    compare.load_wrk(url, a.clients, 2, c.api, "put", f"warm-{tag}")
    cpu0, m0, h0 = c.cpu(), c.metrics(leader), hops(c)
    done = compare.load_wrk(url, a.clients, a.seconds, c.api, "put", f"run-{tag}")
    cpu1, m1, h1 = c.cpu(), c.metrics(leader), hops(c)
    commits = max(1.0, m1[c.commit_metric] - m0[c.commit_metric])
    ms = [(y - x) * 1000 / commits for x, y in zip(cpu0, cpu1, strict=True)]
    hop = [1000 * (y[0] - x[0]) / max(1.0, y[1] - x[1]) for x, y in zip(h0, h1, strict=True)]
    out.append(
        f"{tree:40}  {done.rate:6.0f} writes/s  p50 {done.p50_us / 1000:6.1f} ms  "
        f"CPU ms a write: {by_role(ms, leader)}  total {sum(ms):.2f}  "
        f"disk hop ms: {by_role(hop, leader)}"
    )


def read_round(
    c: TreeCluster, leader: int, tree: str, tag: str, a: argparse.Namespace, out: list[str]
) -> None:
    """One measured wrk run of linearizable reads on ``c``'s leader (of
    the keys written under ``tag``); its line goes to ``out``."""
    url = c.url(leader)
    compare.load_wrk(url, a.clients, 2, c.api, "get", tag)
    cpu0 = c.cpu()
    done = compare.load_wrk(url, a.clients, a.seconds, c.api, "get", tag)
    cpu1 = c.cpu()
    ms = [(y - x) * 1000 / max(1, done.requests) for x, y in zip(cpu0, cpu1, strict=True)]
    failed = f"  {done.failures} FAILED" if done.failures else ""
    out.append(
        f"{tree:40}  {done.rate:6.0f} reads/s  p50 {done.p50_us / 1000:6.1f} ms  "
        f"CPU ms a read: {by_role(ms, leader)}  total {sum(ms):.2f}{failed}"
    )


def each_round(
    clusters: list[TreeCluster],
    leaders: list[int],
    trees: list[str],
    a: argparse.Namespace,
    measure: Callable[[TreeCluster, int, str, str, argparse.Namespace, list[str]], None],
    tag: Callable[[int, int], str],
) -> None:
    """``a.rounds`` rounds of ``measure`` on every cluster at once."""
    for round_ in range(a.rounds):
        outs: list[list[str]] = [[] for _ in clusters]
        at_once(
            [
                functools.partial(measure, c, leader, tree, tag(round_, k), a, out)
                for k, (c, leader, tree, out) in enumerate(zip(clusters, leaders, trees, outs, strict=True))
            ]
        )
        for out in outs:
            print(f"round {round_}  {''.join(out)}  load {load()}", flush=True)


def writes(clusters: list[TreeCluster], leaders: list[int], trees: list[str], a: argparse.Namespace) -> None:
    each_round(clusters, leaders, trees, a, write_round, lambda round_, k: f"{round_}-{k}")


def reads(clusters: list[TreeCluster], leaders: list[int], trees: list[str], a: argparse.Namespace) -> None:
    at_once(
        [
            functools.partial(compare.preload, c, c.url(leader), "sbs")
            for c, leader in zip(clusters, leaders, strict=True)
        ]
    )
    each_round(clusters, leaders, trees, a, read_round, lambda round_, k: "sbs")


#: The repository: ``bench`` is importable from here.
REPO = Path(__file__).resolve().parent.parent


def front_door_round(
    proc: Process, url: str, tree: str, tag: str, a: argparse.Namespace, lines: list[str], k: int
) -> None:
    """One measured wrk run on one tree's front door; its line goes to ``lines[k]``."""
    compare.load_wrk(url, a.clients, 1, "raft", "put", f"warm-{tag}")
    before = proc.cpu_seconds()
    done = compare.load_wrk(url, a.clients, a.seconds, "raft", "put", f"run-{tag}")
    used = proc.cpu_seconds() - before
    lines[k] = (
        f"{tree:40}  {done.rate:6.0f} requests/s  CPU ms a request {1000 * used / max(done.requests, 1):.3f}"
    )


def front_door(root: Path, trees: list[str], a: argparse.Namespace) -> None:
    procs: list[Process] = []
    urls: list[str] = []
    try:
        for k, tree in enumerate(trees):
            port = free_port()
            env = {"PYTHONPATH": f"{Path(tree.partition('|')[0]).resolve()}:{REPO}"}
            argv = [sys.executable, "-m", "bench.front_door", str(port)]
            proc = Process(f"front-door{k}", argv, root / f"front-door{k}.log", env, cwd=root)
            proc.start()
            procs.append(proc)
            urls.append(f"http://127.0.0.1:{port}")
            deadline = time.monotonic() + 20
            while True:
                try:
                    http_request(port, "GET", "/", timeout=0.5)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit(
                            f"the front door of {tree} did not start; see {proc.log_path}"
                        ) from None
                    time.sleep(0.05)
        for round_ in range(a.rounds):
            lines = ["" for _ in trees]
            at_once(
                [
                    functools.partial(
                        front_door_round, procs[k], urls[k], trees[k], f"{round_}-{k}", a, lines, k
                    )
                    for k in range(len(trees))
                ]
            )
            for line in lines:
                print(f"round {round_}  {line}  load {load()}", flush=True)
    finally:
        for proc in procs:
            proc.kill()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("idle", "writes", "reads", "front-door"))
    p.add_argument("trees", nargs="+")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--clients", type=int, default=1)
    a = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="side-by-side-"))
    if a.what == "front-door":
        try:
            front_door(root, a.trees, a)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    clusters: list[TreeCluster] = []
    try:
        for k, tree in enumerate(a.trees):
            cluster = TreeCluster(root / f"tree{k}", tree)
            clusters.append(cluster)
            cluster.__enter__()
        leaders = [c.wait_stable(2.0) for c in clusters]
        time.sleep(3)
        {"idle": idle, "writes": writes, "reads": reads}[a.what](clusters, leaders, a.trees, a)
    finally:
        for cluster in clusters:
            cluster.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
