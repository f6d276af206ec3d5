"""raft-trio against etcd on one machine, with one command.

    python -m bench.compare [--vs etcd] [--quick] [--out bench/results/compare.md]

Every workload runs on a fresh 3-node cluster on 127.0.0.1 (temporary data
directories, fsync on, default settings), held with one stable leader for a
while before any load, with the load sent to the leader directly:

- ``ceiling``: wrk against ``bench/null_server.py`` (a bare asyncio socket
  server answering a fixed 200 to every request head), so that the other
  rows can be read against what the load generator itself manages here;
- ``front-door``: wrk against ``bench/front_door.py``: a node's own HTTP
  stack (the same Hypercorn configuration and ASGI wrappers, on Trio)
  serving a do-nothing ASGI app, with the writes' and the reads' requests
  at 64 connections: the ceiling the front door alone allows (raft-trio
  only), with its CPU per request;
- ``writes1``, ``writes16``, ``writes64``: wrk (``bench/load.lua``:
  distinct keys, 100-byte values) at 1, 16 and 64 connections, a warm-up,
  then a measured window: writes/s, p50, p99; fsyncs per committed write
  from each node's ``/metrics``; every node's RSS at rest and under load;
  every node's CPU time (utime + stime from ``/proc``) over the window per
  committed write (per read for reads), and its idle CPU in a quiet window
  before any load;
- ``reads64``: linearizable reads at 64 connections of 1,000 keys written
  beforehand (raft-trio ``GET /api/kv/{key}``, etcd ``/v3/kv/range``);
- ``failover-default``, ``failover-fast``: SIGKILL of the leader under a
  steady write load, 15 times (2 with ``--quick``), with the default election timeouts
  and with 150-300 ms ones; the time from the kill until a write succeeds
  again (a Trio+httpx client, see :func:`failover_trials`);
- ``failover-pause``: the same with SIGSTOP of the leader (``docker pause``)
  and the default timeouts, resumed once writes succeed again: a paused
  leader's port still accepts connections, so only silence tells its
  followers (raft-trio's campaign in turns once their leases end, as after
  a kill; etcd's wait out their random election timeouts);
- ``idle``: every member's CPU at rest, over a long window (30 s; 5 s
  with ``--quick``) on a cluster held stable a while;
- ``propose``: proposals/s through the leader's own write path in-process,
  no client HTTP (``bench/propose_bench.py``; raft-trio only);
- ``floor``: writes at 1 and 64 connections on ``bench/floor_node.py``,
  three processes that do only what any replicated write on this stack
  must (the same front door, a frame to each follower, an append and an
  ``fdatasync`` a batch, an answer on a majority) and no Raft: the least
  a write costs here, against which the targets on one client's p50 and
  CPU and the writes at 64 clients are read.

With ``--vs etcd`` the same runs are made against 3 etcd members (Debian:
``apt-get install etcd-server etcd-client``) through its JSON gateway, and
the targets are checked. Any non-2xx answer or socket error during a
measured window is printed loudly, marked in the tables and makes the
command exit with status 1. wrk comes from ``apt-get install wrk``.

Every process started here is killed by its pid when its block ends, also
on Ctrl-C, SIGTERM or an exception.
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import httpx
import trio

from raft_trio.client import Client, ClientError
from raft_trio.testing.processes import Process, free_port, free_ports, node_argv, peers_flag, python_module
from raft_trio.testing.waiting import wait_for

from ._common import (
    HERE,
    LOAD_LUA,
    REPO,
    BenchError,
    bench_env,
    fsync_probe,
    http_request,
    run_wrk,
    scrape,
)

NULL_SERVER = HERE / "null_server.py"
FRONT_DOOR = HERE / "front_door.py"
FLOOR_NODE = HERE / "floor_node.py"
#: Keys written before the read workload, read round-robin.
READ_KEYS = 1000
MIB = 1024 * 1024
MEMORY_TARGET_MIB = 80
#: Idle CPU of a node at rest, in percent of one core.
IDLE_TARGET_PCT = 1.0
#: writes/s and reads/s at 64 clients against the front door's ceiling.
FRONT_DOOR_TARGET = 0.8
#: Total CPU per committed write against etcd's, at 1 and at 64 clients.
CPU_TARGET_1, CPU_TARGET_64 = 1.0, 1.5
WORKLOADS = (
    "ceiling", "front-door", "idle", "writes1", "writes16", "writes64", "reads64", "failover-default",
    "failover-fast", "failover-pause", "propose", "floor",
)  # fmt: skip
#: The clients of the floor's runs: those of the targets it bears on.
FLOOR_CLIENTS = (1, 64)


# -- settings ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Profile:
    """Election timing given to both systems. etcd draws its election
    timeout in [E, 2E), so ``--election-timeout 150`` is raft-trio's
    150-300 ms."""

    name: str
    heartbeat_ms: int
    election_min_ms: int
    election_max_ms: int


DEFAULT = Profile("default", 100, 1000, 2000)
FAST = Profile("fast", 30, 150, 300)
#: Each failover workload's timing, and how it hits the leader.
FAILOVER_RUNS = {
    "failover-default": (DEFAULT, "kill"),
    "failover-fast": (FAST, "kill"),
    "failover-pause": (DEFAULT, "pause"),
}


@dataclasses.dataclass(frozen=True)
class Plan:
    """How long each part runs; ``--quick`` shortens it for validation."""

    warmup: float
    window: float
    hold: float
    kills: int
    ceiling_window: float
    propose_window: float
    #: Quiet window before the load, for the idle CPU of every member.
    idle_window: float
    #: The window of the ``idle`` workload.
    idle_long: float

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(
                warmup=1,
                window=3,
                hold=1,
                kills=2,
                ceiling_window=2,
                propose_window=3,
                idle_window=2,
                idle_long=5,
            )
        return cls(
            warmup=3,
            window=15,
            hold=2,
            # A failover's time is mostly a random election timeout: with 7
            # kills the same code's median moved by a quarter between runs
            # (1,274-1,616 ms), more than the gap to etcd it was to show.
            kills=15,
            ceiling_window=10,
            propose_window=10,
            idle_window=10,
            idle_long=30,
        )

    def estimate(self, systems: list[str], workloads: list[str]) -> float:
        """Seconds the run should take on a quiet machine: cluster starts
        (Python imports for raft-trio), holds, windows, and per kill a
        hold, an election at most and a restart."""
        total = 0.0
        if "floor" in workloads:
            total += len(FLOOR_CLIENTS) * (2 + self.hold + self.idle_window + self.warmup + self.window + 2)
        for system in systems:
            start = 4.0 if system == "raft-trio" else 2.0
            for workload in workloads:
                if workload.startswith(("writes", "reads")):
                    total += start + self.hold + self.idle_window + self.warmup + self.window + 2
                    total += 3 if workload.startswith("reads") else 0
                elif workload == "idle":
                    total += start + self.hold + 3 + self.idle_long
                elif workload.startswith("failover"):
                    profile, _ = FAILOVER_RUNS[workload]
                    per_kill = self.hold + 0.5 + profile.election_max_ms / 1000 + start
                    total += start + self.kills * per_kill
        if "ceiling" in workloads:
            total += len(systems) * (self.ceiling_window + 1) + 1
        if "front-door" in workloads:
            total += 2 * (self.ceiling_window + 2) + 2
        if "propose" in workloads:
            total += 8 + 2 * (2 + self.propose_window)
        return total


# -- clusters -------------------------------------------------------------------------------


class Cluster(abc.ABC):
    """Three members on 127.0.0.1 with fresh data directories; a context
    manager that kills them all when it ends."""

    system: str
    #: The API argument of bench/load.lua.
    api: str
    fsync_metric: str
    commit_metric: str

    def __init__(self, root: Path, profile: Profile) -> None:
        self.root = root
        self.profile = profile
        self.ports = free_ports(6)
        self.procs: list[Process | None] = [None, None, None]
        root.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Cluster:
        try:
            for i in range(3):
                self.start(i)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for proc in self.procs:
            if proc is not None:
                proc.kill()

    def client_port(self, i: int) -> int:
        return self.ports[i]

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.client_port(i)}"

    @abc.abstractmethod
    def argv(self, i: int) -> tuple[list[str], dict[str, str] | None]:
        """The command line and environment of member ``i``."""

    def start(self, i: int) -> None:
        argv, env = self.argv(i)
        process = Process(f"member{i}", argv, self.root / f"member{i}.log", env)
        process.start()
        self.procs[i] = process

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None:
            proc.kill()

    def pause(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None:
            proc.pause()

    def resume(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None:
            proc.resume()

    @abc.abstractmethod
    def view(self, i: int) -> tuple[int, int] | None:
        """(leader's member index, term) as member ``i`` sees them; None if
        it does not answer or knows no leader."""

    def leader(self) -> int | None:
        """The leader every member agrees on, or None."""
        views = [self.view(i) for i in range(3)]
        if any(v is None for v in views) or len({v for v in views}) != 1:
            return None
        first = views[0]
        return first[0] if first is not None else None

    def wait_stable(self, hold: float, timeout: float = 60.0) -> int:
        """The leader, once all three members have agreed on it (same term)
        for ``hold`` seconds without a break."""
        deadline = time.monotonic() + timeout
        since: float | None = None
        seen: tuple[int, int] | None = None
        while time.monotonic() < deadline:
            for i, proc in enumerate(self.procs):
                if proc is not None and not proc.running:
                    raise BenchError(f"{self.system} member {i} exited; see {proc.log_path}")
            views = [self.view(i) for i in range(3)]
            agreed = views[0] if views[0] is not None and all(v == views[0] for v in views) else None
            now = time.monotonic()
            if agreed is None or agreed != seen:
                seen, since = agreed, (now if agreed is not None else None)
            elif since is not None and now - since >= hold:
                return agreed[0]
            time.sleep(0.05)
        raise BenchError(f"{self.system}: no stable leader within {timeout:.0f} s (logs in {self.root})")

    def metrics(self, i: int) -> dict[str, float]:
        return scrape(self.client_port(i), (self.fsync_metric, self.commit_metric), timeout=2.0)

    def rss(self) -> list[int]:
        return [proc.rss() if proc is not None else 0 for proc in self.procs]

    def cpu(self) -> list[float]:
        """CPU seconds each member has used so far."""
        return [proc.cpu_seconds() if proc is not None else 0.0 for proc in self.procs]

    def idle_cpu(self, seconds: float) -> list[float]:
        """Each member's CPU over ``seconds`` with no client, in percent of a core."""
        before, started = self.cpu(), time.monotonic()
        time.sleep(seconds)
        after, took = self.cpu(), time.monotonic() - started
        return [100 * (b - a) / took for a, b in zip(before, after, strict=True)]

    @abc.abstractmethod
    def failover_request(self, i: int, key: str) -> tuple[str, str, dict[str, Any]]:
        """(method, URL, JSON body) of one write of ``key`` to member ``i``."""


class RaftCluster(Cluster):
    system = "raft-trio"
    api = "raft"
    fsync_metric = "raft_fsync_seconds_count"
    commit_metric = "raft_commit_index"
    ids = ("n1", "n2", "n3")

    def argv(self, i: int) -> tuple[list[str], dict[str, str] | None]:
        peers = peers_flag({nid: self.url(j) for j, nid in enumerate(self.ids)})
        node_id = self.ids[i]
        argv = node_argv(node_id, f"127.0.0.1:{self.ports[i]}", self.root / node_id, "--peers", peers)
        env = bench_env()
        if self.profile != DEFAULT:
            env.update(
                ELECTION_TIMEOUT_LOWER_MILLIS=str(self.profile.election_min_ms),
                ELECTION_TIMEOUT_UPPER_MILLIS=str(self.profile.election_max_ms),
                HEARTBEAT_REPEAT_MILLIS=str(self.profile.heartbeat_ms),
            )
        return argv, env

    def view(self, i: int) -> tuple[int, int] | None:
        try:
            with Client(self.url(i), timeout=1.0, retry=False) as client:
                status = client.status()
        except ClientError:
            return None
        leader = status.leader_id
        return (self.ids.index(leader), status.term) if leader in self.ids else None

    def failover_request(self, i: int, key: str) -> tuple[str, str, dict[str, Any]]:
        return "PUT", f"{self.url(i)}/api/kv/{key}", {"value": "v" * 100}


class EtcdCluster(Cluster):
    system = "etcd"
    api = "etcd"
    fsync_metric = "etcd_disk_wal_fsync_duration_seconds_count"
    commit_metric = "etcd_server_proposals_committed_total"
    names = ("e1", "e2", "e3")

    def __init__(self, root: Path, profile: Profile) -> None:
        super().__init__(root, profile)
        self.token = f"bench-{os.getpid()}-{time.monotonic_ns()}"
        self.member_ids: dict[str, int] = {}

    def peer_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[3 + i]}"

    def argv(self, i: int) -> tuple[list[str], dict[str, str] | None]:
        cluster = ",".join(f"{name}={self.peer_url(j)}" for j, name in enumerate(self.names))
        argv = [
            "etcd", "--name", self.names[i], "--data-dir", str(self.root / self.names[i]),
            "--listen-client-urls", self.url(i), "--advertise-client-urls", self.url(i),
            "--listen-peer-urls", self.peer_url(i), "--initial-advertise-peer-urls", self.peer_url(i),
            "--initial-cluster", cluster, "--initial-cluster-token", self.token,
            "--initial-cluster-state", "new", "--log-level", "warn",
        ]  # fmt: skip
        if self.profile != DEFAULT:
            argv += [
                "--heartbeat-interval", str(self.profile.heartbeat_ms),
                "--election-timeout", str(self.profile.election_min_ms),
            ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        return argv, env

    def view(self, i: int) -> tuple[int, int] | None:
        try:
            code, body = http_request(self.client_port(i), "POST", "/v3/maintenance/status", b"{}", 1.0)
        except OSError:
            return None
        if code != 200:
            return None
        status = json.loads(body)
        self.member_ids[status["header"]["member_id"]] = i
        leader = self.member_ids.get(status.get("leader", "0"))
        return (leader, int(status["raftTerm"])) if leader is not None else None

    def failover_request(self, i: int, key: str) -> tuple[str, str, dict[str, Any]]:
        return "POST", f"{self.url(i)}/v3/kv/put", {"key": b64(key), "value": b64("v" * 100)}


class FloorCluster(Cluster):
    """Three members of ``bench/floor_node.py``: the stack's least work for
    a replicated write, with no Raft. The first leads, always."""

    system = "floor"
    api = "raft"
    fsync_metric = "floor_fsyncs_total"
    commit_metric = "floor_commit_index"

    def argv(self, i: int) -> tuple[list[str], dict[str, str] | None]:
        followers = [str(self.ports[j]) for j in (1, 2)] if i == 0 else []
        argv = [sys.executable, str(FLOOR_NODE), str(self.root / f"member{i}.wal"), str(self.ports[i])]
        return [*argv, *followers], bench_env()

    def view(self, i: int) -> tuple[int, int] | None:
        """Member 0 at term 1 once this member's connections are up."""
        try:
            links = scrape(self.client_port(i), ("floor_links",), timeout=1.0)["floor_links"]
        except (OSError, BenchError):
            return None
        return (0, 1) if links == (2 if i == 0 else 1) else None

    def failover_request(self, i: int, key: str) -> tuple[str, str, dict[str, Any]]:
        raise BenchError("the floor has no failover: its first member always leads")


def b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def make_cluster(system: str, root: Path, profile: Profile) -> Cluster:
    kinds: dict[str, type[Cluster]] = {"raft-trio": RaftCluster, "etcd": EtcdCluster, "floor": FloorCluster}
    return kinds[system](root, profile)


# -- wrk -----------------------------------------------------------------------------------


@dataclasses.dataclass
class WrkResult:
    requests: int
    duration_us: int
    non_2xx: int
    socket_errors: int
    p50_us: int
    p99_us: int
    max_us: int
    command: str

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return (self.requests - self.non_2xx) / (self.duration_us / 1e6)

    @property
    def failures(self) -> int:
        return self.non_2xx + self.socket_errors


def load_wrk(url: str, connections: int, seconds: float, api: str, op: str, tag: str) -> WrkResult:
    """wrk with load.lua: ``op`` (put, get, preload) in ``api``'s requests."""
    fields, argv = run_wrk(
        LOAD_LUA, url, connections, seconds, [api, op, tag, str(READ_KEYS)], request_timeout="5s"
    )
    return WrkResult(**fields, command=shlex.join(argv))


@contextmanager
def serving(script: Path, root: Path, what: str, timeout: float = 20.0) -> Iterator[tuple[str, Process]]:
    """``python SCRIPT PORT`` until the block ends, once it answers HTTP."""
    port = free_port()
    proc = Process(script.stem, [sys.executable, str(script), str(port)], root / f"{script.stem}.log")
    proc.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                http_request(port, "GET", "/", timeout=0.5)
                break
            except OSError:
                if time.monotonic() > deadline or not proc.running:
                    raise BenchError(f"{what} did not start; see {proc.log_path}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.kill()


@dataclasses.dataclass
class FrontDoorRow:
    op: str
    wrk: WrkResult
    #: CPU of the server per request, ms.
    cpu_ms: float


def front_door_runs(root: Path, plan: Plan) -> list[FrontDoorRow]:
    """The writes' and the reads' requests at 64 connections against the
    do-nothing app behind a node's HTTP stack."""
    rows = []
    with serving(FRONT_DOOR, root, "the front door") as (url, proc):
        for op in ("put", "get"):
            load_wrk(url, 64, 1, "raft", op, "warm")
            before = proc.cpu_seconds()
            result = load_wrk(url, 64, plan.ceiling_window, "raft", op, "front-door")
            used = proc.cpu_seconds() - before
            rows.append(FrontDoorRow(op, result, 1000 * used / max(result.requests, 1)))
            print(
                f"front door (Hypercorn, do-nothing app), {'writes' if op == 'put' else 'reads'}' "
                f"requests: {result.rate:,.0f}/s, {rows[-1].cpu_ms:.3f} ms CPU a request",
                flush=True,
            )
    return rows


@contextmanager
def rss_peaks(cluster: Cluster, interval: float = 0.25) -> Iterator[list[int]]:
    """Samples every member's RSS while the block runs; the list holds the
    peak of each once it ends."""
    peaks = [0, 0, 0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for i, rss in enumerate(cluster.rss()):
                peaks[i] = max(peaks[i], rss)
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        stop.set()
        thread.join()


# -- workloads -----------------------------------------------------------------------------


@dataclasses.dataclass
class LoadRow:
    system: str
    workload: str
    connections: int
    wrk: WrkResult
    rss_rest: list[int]
    rss_load: list[int]
    #: fsyncs per committed entry (over the leader's commit growth)
    fsync_leader: float
    fsync_followers: float
    committed: int
    problems: list[str]
    leader: int = 0
    #: Each member's CPU in the quiet window before the load, % of a core.
    idle_pct: list[float] = dataclasses.field(default_factory=list)
    #: Each member's CPU over the window per committed write (per read
    #: for reads), ms.
    cpu_ms: list[float] = dataclasses.field(default_factory=list)

    @property
    def cpu_total_ms(self) -> float:
        return sum(self.cpu_ms)

    def by_role(self, values: list[float]) -> list[float]:
        """``values`` with the leader's first."""
        return [values[self.leader]] + [v for i, v in enumerate(values) if i != self.leader]


def load_run(system: str, root: Path, op: str, connections: int, plan: Plan) -> LoadRow:
    """One wrk workload on a fresh cluster held stable first."""
    workload = f"{'writes' if op == 'put' else 'reads'}{connections}"
    with make_cluster(system, root / f"{system}-{workload}", DEFAULT) as cluster:
        leader = cluster.wait_stable(plan.hold)
        rss_rest = cluster.rss()
        idle_pct = cluster.idle_cpu(plan.idle_window)
        url = cluster.url(leader)
        tag = f"{workload}-{int(time.time())}"
        problems: list[str] = []
        if op == "get":
            preload(cluster, url, tag)
        # The warm-up reads the same keys; its writes are keys of their own.
        load_wrk(url, connections, plan.warmup, cluster.api, op, tag if op == "get" else tag + "w")
        before = [cluster.metrics(i) for i in range(3)]
        cpu_before = cluster.cpu()
        with rss_peaks(cluster) as rss_load:
            result = load_wrk(url, connections, plan.window, cluster.api, op, tag)
        cpu_used = [b - a for a, b in zip(cpu_before, cluster.cpu(), strict=True)]
        time.sleep(0.5)  # the followers learn the last commit index
        after = [cluster.metrics(i) for i in range(3)]
        if cluster.leader() != leader:
            problems.append("the leader changed during the window")
        if result.failures:
            problems.append(f"{result.non_2xx} non-2xx answers, {result.socket_errors} socket errors")
        committed = int(after[leader][cluster.commit_metric] - before[leader][cluster.commit_metric])
        fsyncs = [after[i][cluster.fsync_metric] - before[i][cluster.fsync_metric] for i in range(3)]
        followers = [fsyncs[i] for i in range(3) if i != leader]
        # Per committed write; for reads, per read answered.
        done = committed if op == "put" else result.requests - result.non_2xx
        row = LoadRow(
            system=system,
            workload=workload,
            connections=connections,
            wrk=result,
            rss_rest=rss_rest,
            rss_load=rss_load,
            fsync_leader=fsyncs[leader] / committed if committed else float("nan"),
            fsync_followers=statistics.mean(followers) / committed if committed else float("nan"),
            committed=committed,
            problems=problems,
            leader=leader,
            idle_pct=idle_pct,
            cpu_ms=[1000 * used / max(done, 1) for used in cpu_used],
        )
    for problem in problems:
        print(f"!!! {system} {workload}: {problem}", flush=True)
    print(
        f"{system:9} {workload:9} {result.rate:9,.0f}/s  p50 {result.p50_us / 1000:7.2f} ms  "
        f"p99 {result.p99_us / 1000:7.2f} ms  "
        + (f"fsyncs/write leader {row.fsync_leader:.3f}  " if op == "put" else "")
        + f"CPU ms/{'write' if op == 'put' else 'read'} "
        + "/".join(f"{v:.2f}" for v in row.by_role(row.cpu_ms))
        + f" (total {row.cpu_total_ms:.2f})  idle % "
        + "/".join(f"{v:.1f}" for v in row.by_role(idle_pct))
        + f"  RSS rest {max(rss_rest) / MIB:.0f} MiB, load {max(rss_load) / MIB:.0f} MiB",
        flush=True,
    )
    return row


def preload(cluster: Cluster, url: str, tag: str) -> None:
    """Writes the READ_KEYS keys the read workload reads: one wrk run that
    makes at least READ_KEYS requests (its counter cycles through them)."""
    seconds = 2.0
    for _ in range(5):
        result = load_wrk(url, 16, seconds, cluster.api, "preload", tag)
        if result.failures:
            raise BenchError(f"{cluster.system}: preload failed: {result.non_2xx} non-2xx answers")
        if result.requests >= READ_KEYS:
            return
        seconds *= 2
    raise BenchError(f"{cluster.system}: could not write {READ_KEYS} keys")


@dataclasses.dataclass
class IdleRow:
    system: str
    leader: int
    #: Each member's CPU at rest, % of a core.
    pct: list[float]

    def by_role(self) -> list[float]:
        return [self.pct[self.leader]] + [v for i, v in enumerate(self.pct) if i != self.leader]


def idle_run(system: str, root: Path, plan: Plan) -> IdleRow:
    """A fresh cluster held stable, then left alone: each member's CPU."""
    with make_cluster(system, root / f"{system}-idle", DEFAULT) as cluster:
        leader = cluster.wait_stable(plan.hold)
        time.sleep(3)  # the start's own work (imports, first elections) is over
        row = IdleRow(system, leader, cluster.idle_cpu(plan.idle_long))
    print(
        f"{system:9} idle      CPU % of a core, leader first: "
        + ", ".join(f"{v:.2f}" for v in row.by_role()),
        flush=True,
    )
    return row


@dataclasses.dataclass
class FailoverRow:
    system: str
    profile: Profile
    #: "kill" (SIGKILL, then a restart) or "pause" (SIGSTOP, then SIGCONT).
    fault: str
    #: Milliseconds from each fault to the first write that succeeded
    #: among those sent after it.
    recoveries_ms: list[float]
    problems: list[str]

    @property
    def paused(self) -> str:
        """What the report adds to the timing's name for a pause row."""
        return ", leader paused" if self.fault == "pause" else ""

    @property
    def bound_ms(self) -> float:
        return 2.0 * self.profile.election_max_ms


#: One write attempt is given up after this long: etcd holds a write sent
#: to a follower whose leader died until its own request timeout (7 s),
#: where a client would time out and try elsewhere.
ATTEMPT_TIMEOUT_S = 0.5
#: A new attempt starts this often whatever the others do (open loop), so
#: a recovery is seen within about this much of when it happens, and the
#: load stays at 100 attempts/s also while every attempt fails at once:
#: clients retrying in a tight loop would flood the surviving nodes.
WRITE_INTERVAL_S = 0.01
MAX_IN_FLIGHT = 64


async def failover_trials(
    cluster: Cluster, kills: int, hold: float, fault: str = "kill"
) -> tuple[list[float], list[str]]:
    """SIGKILL (or, with ``fault="pause"``, SIGSTOP) the leader ``kills``
    times under a steady write load and time each recovery.

    The client: every WRITE_INTERVAL_S one write attempt of a distinct key
    starts (at most MAX_IN_FLIGHT at once), to the node that last answered;
    it follows 307 redirects, and an error, a timeout or a non-2xx moves
    the next attempts on to the next node. A recovery is the time from the
    kill until the first success of an attempt started after it, so that
    requests in flight at the kill do not blur it. The killed node is
    restarted (the paused one resumed) and the cluster held stable between
    kills."""
    successes: list[tuple[float, float]] = []
    preferred = [0]
    ports = {cluster.client_port(i): i for i in range(3)}
    recoveries: list[float] = []
    problems: list[str] = []
    timeout = min(ATTEMPT_TIMEOUT_S, cluster.profile.election_max_ms / 1000)
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT * 3, max_keepalive_connections=MAX_IN_FLIGHT * 3)
    async with httpx.AsyncClient(
        timeout=timeout, follow_redirects=True, trust_env=False, limits=limits
    ) as client:

        async def write(n: int, slots: trio.Semaphore) -> None:
            node = preferred[0]
            method, url, body = cluster.failover_request(node, f"failover-{n}")
            started = trio.current_time()
            try:
                response = await client.request(method, url, json=body)
                if response.is_success:
                    successes.append((started, trio.current_time()))
                    preferred[0] = ports.get(response.url.port or 0, node)
                    return
            except httpx.HTTPError:
                pass
            finally:
                slots.release()
            if preferred[0] == node:
                preferred[0] = (node + 1) % 3

        async def load(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            slots = trio.Semaphore(MAX_IN_FLIGHT)
            task_status.started()
            async with trio.open_nursery() as writers:
                n = 0
                while True:
                    await slots.acquire()
                    n += 1
                    writers.start_soon(write, n, slots)
                    await trio.sleep(WRITE_INTERVAL_S)

        async with trio.open_nursery() as nursery:
            for trial in range(kills):
                # abandon_on_cancel: Ctrl-C does not wait for the poll to end.
                leader = await trio.to_thread.run_sync(cluster.wait_stable, hold, abandon_on_cancel=True)
                preferred[0] = leader
                if trial == 0:
                    await nursery.start(load)
                mark = trio.current_time()
                with trio.move_on_after(10):
                    await wait_for(lambda: any(start >= mark for start, _ in successes[-50:]), poll=0.05)  # noqa: B023 (awaited at once)
                await trio.sleep(0.5)  # steady writes before the kill
                if not any(start >= mark for start, _ in successes[-50:]):
                    problems.append(f"kill {trial + 1}: no writes succeeded before it")
                killed_at = trio.current_time()
                if fault == "pause":
                    cluster.pause(leader)
                else:
                    cluster.kill(leader)
                with trio.move_on_after(30):
                    await wait_for(
                        lambda: any(start >= killed_at for start, _ in successes[-50:]),  # noqa: B023 (awaited at once)
                        poll=0.005,
                    )
                after = [end for start, end in successes if start >= killed_at]
                if after:
                    recoveries.append(1000 * (min(after) - killed_at))
                    print(
                        f"{cluster.system:9} failover ({cluster.profile.name}) {fault} {trial + 1}: "
                        f"writes again after {recoveries[-1]:.0f} ms",
                        flush=True,
                    )
                else:
                    problems.append(f"{fault} {trial + 1}: no write succeeded within 30 s")
                    print(f"!!! {cluster.system} failover: {problems[-1]}", flush=True)
                if fault == "pause":
                    cluster.resume(leader)
                else:
                    cluster.start(leader)
            nursery.cancel_scope.cancel()
    return recoveries, problems


def failover_run(system: str, root: Path, profile: Profile, plan: Plan, fault: str = "kill") -> FailoverRow:
    with make_cluster(system, root / f"{system}-failover-{profile.name}-{fault}", profile) as cluster:
        recoveries, problems = trio.run(failover_trials, cluster, plan.kills, plan.hold, fault)
    row = FailoverRow(system, profile, fault, recoveries, problems)
    over = [r for r in recoveries if r > row.bound_ms]
    if over and system == "raft-trio":
        print(
            f"!!! {system} failover ({profile.name}{row.paused}): {len(over)} above {row.bound_ms:.0f} ms",
            flush=True,
        )
    return row


@dataclasses.dataclass
class ProposeRow:
    proposers: int
    writes_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    first_error: str | None


def propose_run(root: Path, plan: Plan, concurrencies: str = "1,64") -> list[ProposeRow]:
    """bench/propose_bench.py in a child process (it runs a node's Trio
    machinery of its own); stopped with SIGTERM, so that it stops its
    followers, and then its process group is killed."""
    log = root / "propose.log"
    argv = [
        *python_module("bench.propose_bench"), "--proposers", concurrencies,
        "--warmup", "2", "--seconds", f"{plan.propose_window:g}",
    ]  # fmt: skip
    proc = Process("propose_bench", argv, log, cwd=REPO, notes=False)
    proc.start()
    try:
        proc.wait(timeout=120 + 4 * plan.propose_window)
    except subprocess.TimeoutExpired:
        raise BenchError("propose_bench did not finish in time") from None
    finally:
        proc.stop(grace=10)
    rows = []
    for line in log.read_text().splitlines():
        if line.startswith("PROPOSE_JSON "):
            fields = json.loads(line.removeprefix("PROPOSE_JSON "))
            rows.append(ProposeRow(**{k: fields[k] for k in ProposeRow.__dataclass_fields__}))
    if proc.returncode != 0 or not rows:
        raise BenchError(f"propose_bench failed ({proc.returncode}); see {log}:\n{log.read_text()[-2000:]}")
    for row in rows:
        print(
            f"raft-trio propose   {row.proposers:3} proposers {row.writes_per_s:9,.0f}/s  "
            f"p50 {row.p50_ms:.2f} ms  p99 {row.p99_ms:.2f} ms  errors {row.errors}",
            flush=True,
        )
    return rows


# -- the report -----------------------------------------------------------------------------


@dataclasses.dataclass
class Results:
    #: wrk against the null server, with each system's requests
    ceilings: dict[str, WrkResult] = dataclasses.field(default_factory=dict)
    front_door: list[FrontDoorRow] = dataclasses.field(default_factory=list)
    idle: list[IdleRow] = dataclasses.field(default_factory=list)
    loads: list[LoadRow] = dataclasses.field(default_factory=list)
    #: The floor's writes (the ``floor`` workload).
    floor: list[LoadRow] = dataclasses.field(default_factory=list)
    failovers: list[FailoverRow] = dataclasses.field(default_factory=list)
    proposes: list[ProposeRow] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)

    def load(self, system: str, workload: str) -> LoadRow | None:
        return next((r for r in self.loads if r.system == system and r.workload == workload), None)

    def failover(self, system: str, profile: Profile, fault: str = "kill") -> FailoverRow | None:
        return next(
            (r for r in self.failovers if r.system == system and r.profile == profile and r.fault == fault),
            None,
        )


def first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except OSError:
        return "not installed"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else "?"


def machine(root: Path) -> list[str]:
    """Date, CPU, disk and versions: what a reader needs to compare runs."""
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    source = first_line(["findmnt", "-no", "SOURCE,FSTYPE", "--target", str(root)])
    device = Path(source.split()[0]).name if source.startswith("/dev/") else ""
    rotational = Path(f"/sys/block/{device}/queue/rotational")
    kind = ""
    if rotational.exists():
        kind = ", rotational" if rotational.read_text().strip() == "1" else ", non-rotational"
    commit = first_line(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return [
        f"- Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {os.cpu_count()} cores, {cpu}, {platform.platform()}, "
        f"load average at start {os.getloadavg()[0]:.2f}",
        f"- Disk of the data directories: {source}{kind}; median 4 KiB write+fsync "
        f"{fsync_probe(root):.2f} ms",
        f"- raft-trio {commit}{' (with uncommitted changes)' if dirty else ''}, Python "
        f"{platform.python_version()}; {first_line(['etcd', '--version'])}; {first_line(['wrk', '-v'])}",
    ]


def fmt_ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else ""


def report(results: Results, systems: list[str], plan: Plan, header: list[str]) -> str:
    out = ["# raft-trio compared with etcd" if "etcd" in systems else "# raft-trio benchmarks", ""]
    out += header
    out += [
        f"- Windows: warm-up {plan.warmup:g} s, measured {plan.window:g} s, leader held stable "
        f"{plan.hold:g} s before load, {plan.kills} kills per failover run",
        "",
    ]
    if results.ceilings:
        out += [
            "## wrk's own ceiling",
            "",
            "wrk (1 thread, 64 connections, `bench/load.lua` writing, with each system's requests: etcd's "
            "carry base64 made in Lua) against `bench/null_server.py`, a bare asyncio socket server that "
            "answers every request head with a fixed `200` and does nothing else. A row below that comes "
            "near this figure measures wrk, not the server.",
            "",
            "| requests as for | requests/s | p50 ms | p99 ms |",
            "|---|---:|---:|---:|",
        ]
        for system, c in results.ceilings.items():
            out.append(f"| {system} | {c.rate:,.0f} | {c.p50_us / 1000:.2f} | {c.p99_us / 1000:.2f} |")
        out.append("")
    if results.front_door:
        out += [
            "## The front door's own ceiling",
            "",
            "wrk (1 thread, 64 connections, `bench/load.lua`, raft-trio's requests) against "
            "`bench/front_door.py`: the node's HTTP stack (the same Hypercorn configuration and ASGI wrappers, "
            "on Trio) serving a do-nothing ASGI app that reads each body and answers `200 {}`. No node can "
            "serve its clients faster than this on this machine.",
            "",
            "| requests | requests/s | p50 ms | p99 ms | server CPU ms a request |",
            "|---|---:|---:|---:|---:|",
        ]
        for door in results.front_door:
            name = "writes (PUT)" if door.op == "put" else "reads (GET)"
            out.append(
                f"| {name} | {door.wrk.rate:,.0f} | {door.wrk.p50_us / 1000:.2f} | {door.wrk.p99_us / 1000:.2f} "
                f"| {door.cpu_ms:.3f} |"
            )
        out.append("")
    if results.idle:
        out += [
            "## At rest",
            "",
            f"A fresh cluster held stable, then {plan.idle_long:g} s with no client: each member's CPU "
            "(utime + stime from `/proc`) in percent of one core, leader first.",
            "",
            "| system | leader | followers |",
            "|---|---:|---|",
        ]
        for at_rest in results.idle:
            values = at_rest.by_role()
            out.append(
                f"| {at_rest.system} | {values[0]:.2f} | {', '.join(f'{v:.2f}' for v in values[1:])} |"
            )
        out.append("")
    if results.loads:
        out += ["## Throughput and latency", ""]
        out += [
            "Fresh 3-node cluster per row, wrk on the leader (1 thread; distinct keys, 100-byte values; "
            "reads: linearizable, of 1,000 keys written beforehand). *failures* counts non-2xx answers "
            "and socket errors in the window (any is a failed run).",
            "",
        ]
        head = "| workload | clients |"
        rule = "|---|---:|"
        for system in systems:
            head += f" {system} /s | p50 ms | p99 ms | failures |"
            rule += "---:|---:|---:|---:|"
        if len(systems) == 2:
            head += " raft-trio/etcd /s | p50 ratio |"
            rule += "---:|---:|"
        out += [head, rule]
        for workload in ("writes1", "writes16", "writes64", "reads64"):
            rows = [results.load(s, workload) for s in systems]
            if not any(rows):
                continue
            conns = next(r for r in rows if r is not None).connections
            line = f"| {workload.rstrip('0123456789')} | {conns} |"
            for row in rows:
                if row is None:
                    line += " | | | |"
                    continue
                w = row.wrk
                fail = f"**{w.failures}**" if w.failures else "0"
                line += f" {w.rate:,.0f} | {w.p50_us / 1000:.2f} | {w.p99_us / 1000:.2f} | {fail} |"
            if len(systems) == 2:
                a, b = rows
                line += (
                    f" {fmt_ratio(a.wrk.rate if a else None, b.wrk.rate if b else None)} |"
                    f" {fmt_ratio(a.wrk.p50_us if a else None, b.wrk.p50_us if b else None)} |"
                )
            out.append(line)
        out.append("")
        out += ["## fsyncs per committed write", ""]
        out += [
            "Growth of each node's fsync counter (raft-trio `raft_fsync_seconds_count`, etcd "
            "`etcd_disk_wal_fsync_duration_seconds_count`) over the growth of the leader's committed "
            "entries (`raft_commit_index`, `etcd_server_proposals_committed_total`) in the window; wrk's "
            "acknowledged writes beside them (they differ by the writes in flight at the window's edges).",
            "",
            "| system | workload | writes acknowledged | entries committed | leader | followers (mean) |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for row in results.loads:
            if row.workload.startswith("writes"):
                acked = row.wrk.requests - row.wrk.non_2xx
                out.append(
                    f"| {row.system} | {row.workload} | {acked:,} | {row.committed:,} "
                    f"| {row.fsync_leader:.3f} | {row.fsync_followers:.3f} |"
                )
        out += ["", "## CPU per committed write, and at rest", ""]
        out += [
            "Each member's CPU time (utime + stime from `/proc`) over the measured window, divided by the "
            "entries the leader committed in it (for reads: by the reads answered), in ms; leader first. "
            "Idle: each member's CPU in a quiet window after the leader was held stable, before any load, "
            "in percent of one core. CPU time is much less sensitive to a loaded machine than rates are.",
            "",
            "| system | workload | ms per write (leader, followers) | total ms | idle % of a core (leader, followers) |",
            "|---|---|---|---:|---|",
        ]
        for row in results.loads:
            per = ", ".join(f"{v:.2f}" for v in row.by_role(row.cpu_ms))
            idle = ", ".join(f"{v:.2f}" for v in row.by_role(row.idle_pct))
            out.append(f"| {row.system} | {row.workload} | {per} | {row.cpu_total_ms:.2f} | {idle} |")
        out += ["", "## Memory per node (RSS)", ""]
        out += [
            "At rest: after the leader was held stable, before any load. Under load: the peak over the "
            "window, sampled every 0.25 s. MiB, largest node first.",
            "",
            "| system | workload | at rest | under load |",
            "|---|---|---|---|",
        ]
        for row in results.loads:
            rest = ", ".join(f"{r / MIB:.0f}" for r in sorted(row.rss_rest, reverse=True))
            load = ", ".join(f"{r / MIB:.0f}" for r in sorted(row.rss_load, reverse=True))
            out.append(f"| {row.system} | {row.workload} | {rest} | {load} |")
        out.append("")
    if results.floor:
        out += floor_section(results, systems)
    if results.failovers:
        out += ["## Failover", ""]
        out += [
            'SIGKILL ("paused": SIGSTOP) of the leader under a steady write load (a Trio+httpx client starting a write every '
            f"{WRITE_INTERVAL_S * 1000:.0f} ms, at most {MAX_IN_FLIGHT} in flight, to the node that last "
            "answered, following 307 redirects; after an error, a non-2xx or "
            f"{ATTEMPT_TIMEOUT_S:g} s (the upper election timeout if shorter) the next writes go to the next "
            "node); the time from the kill to the first success of a write sent after it. The killed node is restarted (the "
            "paused one resumed) and the cluster held stable between kills. Bound: twice the upper election timeout. "
            "Killed or paused, a leader that says nothing for the minimum election timeout is given up by "
            "raft-trio's followers, which then campaign in turns (RaftConfig.quiet_leader_turns; a killed "
            "leader's refused port is logged too); etcd's followers wait out their random election timeouts.",
            "",
            "| system | timing | kills | median ms | max ms | bound ms | each ms |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for f in results.failovers:
            timing = (
                f"{f.profile.name} ({f.profile.election_min_ms}-{f.profile.election_max_ms} ms){f.paused}"
            )
            med = f"{statistics.median(f.recoveries_ms):.0f}" if f.recoveries_ms else "-"
            top = f"{max(f.recoveries_ms):.0f}" if f.recoveries_ms else "-"
            each = ", ".join(f"{r:.0f}" for r in f.recoveries_ms)
            if f.problems:
                each += " **" + "; ".join(f.problems) + "**"
            out.append(
                f"| {f.system} | {timing} | {len(f.recoveries_ms)} | {med} | {top} | {f.bound_ms:.0f} | {each} |"
            )
        out.append("")
    if results.proposes:
        out += ["## In-process proposals (no client HTTP)", ""]
        out += [
            "`bench/propose_bench.py`: the leader's `run_node` in the bench's own process (real "
            "`DurableStorage` with fsync, real HTTP peer transport), two follower processes, N tasks calling "
            "`RaftNode.write(Put(...))` back to back with distinct keys and 100-byte values.",
            "",
            "| proposers | proposals/s | p50 ms | p99 ms | errors |",
            "|---:|---:|---:|---:|---:|",
        ]
        for p in results.proposes:
            out.append(
                f"| {p.proposers} | {p.writes_per_s:,.0f} | {p.p50_ms:.2f} | {p.p99_ms:.2f} | {p.errors} |"
            )
        out.append("")
    out += ["## Targets", "", "| target | raft-trio | etcd | met |", "|---|---:|---:|---|"]
    out += targets(results, systems)
    if results.errors:
        out += ["", "## Failures", ""] + [f"- **{e}**" for e in results.errors]
    return "\n".join(out) + "\n"


def floor_section(results: Results, systems: list[str]) -> list[str]:
    """The floor's rows beside each system's same workload."""
    out = [
        "## The floor: the stack without Raft",
        "",
        "`bench/floor_node.py`, three members driven as the leader is, with the same wrk load: the "
        "node's front door (the same Hypercorn configuration on Trio), peer connections on the same port "
        "switched by an `Upgrade`, a frame a write to each follower, an append and an `fdatasync` a batch "
        "on each member (on the loop for one write while the disk is quick, else on the writer thread, "
        "the node's own `DiskWriter`), an answer once the leader and one follower hold it. No log, term, "
        "Raft step, state machine, encoding or authentication: what any replicated write on this stack "
        "and this machine costs at least (a design that skipped the disk task's wake-up for a lone write "
        "would save a few tens of microseconds more at one client). CPU ms a committed write from `/proc`, "
        "leader first.",
        "",
        "| clients | system | writes/s | p50 ms | CPU ms a write (leader, followers) | total CPU ms |",
        "|---:|---|---:|---:|---|---:|",
    ]
    for floor in results.floor:
        rows = [floor] + [r for s in systems if (r := results.load(s, floor.workload)) is not None]
        for row in rows:
            per = ", ".join(f"{v:.2f}" for v in row.by_role(row.cpu_ms))
            out.append(
                f"| {row.connections} | {row.system} | {row.wrk.rate:,.0f} | {row.wrk.p50_us / 1000:.2f} "
                f"| {per} | {row.cpu_total_ms:.2f} |"
            )
    out.append("")
    out += floor_against_targets(results)
    return [*out, ""]


def floor_against_targets(results: Results) -> list[str]:
    """What the floor leaves of each target it bears on: a target the floor
    itself misses is out of reach of any Raft on this stack."""
    lines = []
    one = next((r for r in results.floor if r.connections == 1), None)
    many = next((r for r in results.floor if r.connections == 64), None)
    etcd_one = results.load("etcd", "writes1")
    if one is not None and etcd_one is not None:
        lines.append(
            f"- One client: the floor's p50 is {one.wrk.p50_us / 1000:.2f} ms against etcd's "
            f"{etcd_one.wrk.p50_us / 1000:.2f} ({one.wrk.p50_us / etcd_one.wrk.p50_us:.2f} x), and its CPU a "
            f"write {one.cpu_total_ms:.2f} ms against {etcd_one.cpu_total_ms:.2f} "
            f"({one.cpu_total_ms / etcd_one.cpu_total_ms:.2f} x): what is left of each for all of Raft's own "
            f"work is {max(etcd_one.wrk.p50_us - one.wrk.p50_us, 0) / 1000:.2f} ms of latency and "
            f"{max(etcd_one.cpu_total_ms - one.cpu_total_ms, 0):.2f} ms of CPU."
        )
    door = next((d for d in results.front_door if d.op == "put"), None)
    if many is not None and door is not None:
        lines.append(
            f"- 64 clients: the floor serves {many.wrk.rate:,.0f} writes/s, {many.wrk.rate / door.wrk.rate:.2f} x "
            f"the front door's {door.wrk.rate:,.0f} (target for the node: {FRONT_DOOR_TARGET:g} x), its "
            f"leader {many.by_role(many.cpu_ms)[0]:.3f} ms of CPU a write against the front door's "
            f"{door.cpu_ms:.3f} a request."
        )
    return lines


def targets(results: Results, systems: list[str]) -> list[str]:
    """One row per target: a figure of each system and whether it is met
    (blank when a part did not run)."""
    lines = []
    vs = "etcd" in systems

    def row(name: str, ours: str, theirs: str, met: bool | None) -> None:
        verdict = "" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {name} | {ours} | {theirs} | {verdict} |")

    def load(system: str, workload: str) -> LoadRow | None:
        return results.load(system, workload)

    if vs:
        a, b = load("raft-trio", "writes1"), load("etcd", "writes1")
        if a and b:
            row("p50 at 1 client ≤ etcd's (ms)", f"{a.wrk.p50_us / 1000:.2f}", f"{b.wrk.p50_us / 1000:.2f}",
                a.wrk.p50_us <= b.wrk.p50_us)  # fmt: skip
        for workload, factor in (("writes1", CPU_TARGET_1), ("writes64", CPU_TARGET_64)):
            a, b = load("raft-trio", workload), load("etcd", workload)
            if a and b:
                row(f"CPU ms per committed write, all nodes, {workload} ≤ {factor:g} x etcd's",
                    f"{a.cpu_total_ms:.2f}", f"{b.cpu_total_ms:.2f}",
                    a.cpu_total_ms <= factor * b.cpu_total_ms)  # fmt: skip
    doors = {f.op: f for f in results.front_door}
    for workload, op in (("writes64", "put"), ("reads64", "get")):
        a = load("raft-trio", workload)
        door = doors.get(op)
        if a and door:
            b = load("etcd", workload) if vs else None
            row(f"{workload.rstrip('0123456789')}/s at 64 ≥ {FRONT_DOOR_TARGET:g} x the front door's "
                f"{door.wrk.rate:,.0f}/s", f"{a.wrk.rate:,.0f} ({a.wrk.rate / door.wrk.rate:.2f} x)",
                f"{b.wrk.rate:,.0f}" if b else "", a.wrk.rate >= FRONT_DOOR_TARGET * door.wrk.rate)  # fmt: skip

    def idle_seen(system: str) -> list[float]:
        rows = [max(r.pct) for r in results.idle if r.system == system]
        return rows or [max(r.idle_pct) for r in results.loads if r.system == system and r.idle_pct]

    idle = idle_seen("raft-trio")
    if idle:
        etcd_idle = idle_seen("etcd")
        row(f"idle CPU ≤ {IDLE_TARGET_PCT:g} % of a core per node (largest seen)", f"{max(idle):.2f}",
            f"{max(etcd_idle):.2f}" if etcd_idle else "", max(idle) <= IDLE_TARGET_PCT)  # fmt: skip
    for profile, fault in FAILOVER_RUNS.values():
        ours = results.failover("raft-trio", profile, fault)
        theirs = results.failover("etcd", profile, fault) if vs else None
        if ours is None or not ours.recoveries_ms:
            continue
        med = statistics.median(ours.recoveries_ms)
        if theirs is not None and theirs.recoveries_ms:
            their_med = statistics.median(theirs.recoveries_ms)
            row(f"failover median ≤ etcd's, {profile.name} timing{ours.paused} (ms)", f"{med:.0f}", f"{their_med:.0f}",
                med <= their_med and not ours.problems)  # fmt: skip
        worst = max(ours.recoveries_ms)
        row(f"every failover ≤ {ours.bound_ms:.0f} ms, {profile.name} timing{ours.paused} (worst)", f"{worst:.0f}",
            "", worst <= ours.bound_ms and not ours.problems)  # fmt: skip
    rest = [max(r.rss_rest) for r in results.loads if r.system == "raft-trio"]
    if rest:
        etcd_rest = [max(r.rss_rest) for r in results.loads if r.system == "etcd"]
        row(f"memory at rest ≤ {MEMORY_TARGET_MIB} MiB per node (largest seen)", f"{max(rest) / MIB:.0f}",
            f"{max(etcd_rest) / MIB:.0f}" if etcd_rest else "", max(rest) <= MEMORY_TARGET_MIB * MIB)  # fmt: skip
    return lines


# -- main ------------------------------------------------------------------------------------


def run_all(systems: list[str], workloads: list[str], plan: Plan, root: Path) -> Results:
    results = Results()

    def attempt(what: str, step: Callable[[], None]) -> None:
        """One part; a failure is reported and the others still run."""
        try:
            step()
        except BenchError as error:
            results.errors.append(f"{what}: {error}")
            print(f"!!! {what}: {error}", flush=True)

    if "front-door" in workloads:
        attempt("front-door", lambda: results.front_door.extend(front_door_runs(root, plan)))

    if "ceiling" in workloads:

        def ceiling() -> None:
            with serving(NULL_SERVER, root, "the null server") as (url, _):
                for system in systems:
                    api = "raft" if system == "raft-trio" else "etcd"
                    result = load_wrk(url, 64, plan.ceiling_window, api, "put", "ceiling")
                    results.ceilings[system] = result
                    print(f"wrk ceiling, {system}'s requests, null server: {result.rate:,.0f}/s", flush=True)

        attempt("ceiling", ceiling)

    def load_step(system: str, op: str, connections: int) -> Callable[[], None]:
        return lambda: results.loads.append(load_run(system, root, op, connections, plan))

    def failover_step(system: str, profile: Profile, fault: str) -> Callable[[], None]:
        return lambda: results.failovers.append(failover_run(system, root, profile, plan, fault))

    def idle_step(system: str) -> Callable[[], None]:
        return lambda: results.idle.append(idle_run(system, root, plan))

    for system in systems:
        for workload in workloads:
            if workload == "idle":
                attempt(f"{system} idle", idle_step(system))
            elif workload.startswith(("writes", "reads")):
                op = "put" if workload.startswith("writes") else "get"
                connections = int(workload.removeprefix("writes").removeprefix("reads"))
                attempt(f"{system} {workload}", load_step(system, op, connections))
            elif workload.startswith("failover"):
                attempt(f"{system} {workload}", failover_step(system, *FAILOVER_RUNS[workload]))
    if "floor" in workloads:
        for connections in FLOOR_CLIENTS:

            def floor_step(connections: int = connections) -> None:
                results.floor.append(load_run("floor", root, "put", connections, plan))

            attempt(f"floor writes{connections}", floor_step)
    if "propose" in workloads:
        attempt("propose", lambda: results.proposes.extend(propose_run(root, plan)))
    for row in [*results.loads, *results.floor]:
        results.errors += [f"{row.system} {row.workload}: {p}" for p in row.problems]
    for f in results.failovers:
        results.errors += [f"{f.system} failover ({f.profile.name}{f.paused}): {p}" for p in f.problems]
    return results


def sigterm_as_sigint(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so every ``with`` block kills its
    processes on the way out. Re-raised as SIGINT rather than as an
    exception from here: inside ``trio.run`` Trio's own SIGINT handler then
    delivers the KeyboardInterrupt where Trio can unwind cleanly."""
    signal.raise_signal(signal.SIGINT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vs", choices=("etcd",), help="compare with 3 etcd members")
    parser.add_argument("--quick", action="store_true", help="short windows, 2 kills: for validation")
    parser.add_argument("--out", type=Path, help="write the report (markdown) here")
    parser.add_argument(
        "--only", help=f"comma-separated subset of: {', '.join(WORKLOADS)}", default=",".join(WORKLOADS)
    )
    args = parser.parse_args()
    workloads = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workloads: {', '.join(unknown)}")
    systems = ["raft-trio", "etcd"] if args.vs else ["raft-trio"]
    missing = [
        tool for tool, needed in (("wrk", True), ("etcd", bool(args.vs))) if needed and not shutil.which(tool)
    ]
    if missing:
        hint = {"wrk": "apt-get install wrk", "etcd": "apt-get install etcd-server etcd-client"}
        parser.error("; ".join(f"{tool} is not installed ({hint[tool]})" for tool in missing))
    plan = Plan.make(args.quick)
    command = shlex.join(["python", "-m", "bench.compare", *sys.argv[1:]])
    # Ctrl-C works even where SIGINT was ignored at start (a background job
    # of a non-interactive shell), and SIGTERM does the same.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, sigterm_as_sigint)
    estimate = plan.estimate(systems, workloads)
    print(f"{command}: about {estimate / 60:.0f} min ({estimate:.0f} s) on a quiet machine", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="raft-compare-") as tmp:
        root = Path(tmp)
        header = [*machine(root), f"- Command: `{command}`"]
        print("\n".join(header), flush=True)
        results = run_all(systems, workloads, plan, root)
    header.append(f"- Took {time.monotonic() - started:.0f} s (estimated {estimate:.0f} s)")
    text = report(results, systems, plan, header)
    print()
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"written to {args.out}")
    if results.errors:
        print(f"!!! {len(results.errors)} failure(s); see the Failures section", file=sys.stderr)
        return 1
    return 0


def interrupted(error: BaseException) -> bool:
    """A KeyboardInterrupt, alone or inside Trio's exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return error.subgroup(KeyboardInterrupt) is not None
    return isinstance(error, KeyboardInterrupt)


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BaseException as error:
        if not interrupted(error):
            raise
        print("\ncompare: interrupted; every process it started is stopped", file=sys.stderr)
        raise SystemExit(130) from None
