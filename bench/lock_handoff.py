"""Lock hand-off: how long a waiting ``raft-trio lock`` takes to run its
command once the holder is done, against ``etcdctl lock``, in one run.

    python -m bench.lock_handoff [--trials 10] [--crash-trials 5] [--ttl 5] [--out FILE]

For each system, a fresh 3-member cluster on 127.0.0.1 (default settings,
fsync on, as ``bench/compare.py`` starts them), then:

- ``release``: holder A's command ends by itself (it releases the lock);
  waiter B, already queued, runs its command. Measured: from A's last
  record to B's first, each command stamping the system-wide monotonic
  clock itself. This is the path of every ordinary hand-off: the holder's
  agent sees its command exit, releases (raft-trio: revokes its lease;
  etcd: deletes its key), the waiter's watch fires, it checks its turn and
  starts its command.
- ``crash``: A's lock process and its command are killed (SIGKILL of both
  process groups, as when A's machine dies). Measured: from the kill to
  B's first record. The lock is free once A's lease runs out (``--ttl``,
  the same for both), counted by the cluster from A's last keep-alive:
  between TTL minus one keep-alive interval and TTL, plus how often the
  leader looks for expired leases (raft-trio: at each deadline; etcd:
  every 500 ms).

Both commands are the same small Python script (``python3 -S``), so its
start-up is in both numbers alike; the table also shows it alone
(``spawn``: starting the script and its first record, no lock). Every
process started here is killed by its pid when its block ends.
"""

from __future__ import annotations

import abc
import argparse
import base64
import contextlib
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from raft_trio.testing.processes import Process, cli_command
from raft_trio.testing.waiting import wait_until

from ._common import http_request
from .compare import DEFAULT, Cluster, EtcdCluster, RaftCluster, machine

NAME = "bench/handoff"
#: The command each holder runs: it stamps its start (and, when told to
#: wait for a file, its end) in the log, with the monotonic clock.
HOLDER = """\
import os, sys, time
log, who, trigger = sys.argv[1], sys.argv[2], sys.argv[3]
def stamp(kind):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{kind} {who} {os.getpid()} {time.monotonic():.6f}\\n".encode())
    os.close(fd)
stamp("start")
if trigger != "-":
    while not os.path.exists(trigger):
        time.sleep(0.001)
    stamp("end")
"""


class Stamps:
    def __init__(self, path: Path) -> None:
        self.path = path

    def find(self, kind: str, who: str) -> tuple[int, float] | None:
        """(pid, time) of the command ``who``'s ``kind`` stamp."""
        if not self.path.exists():
            return None
        for line in self.path.read_text().splitlines():
            k, w, pid, at = line.split()
            if (k, w) == (kind, who):
                return int(pid), float(at)
        return None

    def wait(self, kind: str, who: str, timeout: float = 60.0) -> tuple[int, float]:
        deadline = time.monotonic() + timeout
        while (found := self.find(kind, who)) is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"lock_handoff: no {kind} of {who} within {timeout:.0f} s (see {self.path})")
            time.sleep(0.002)
        return found


class System(abc.ABC):
    """How one system's lock command is run and its waiters counted."""

    name: str

    def __init__(self, cluster: Cluster, root: Path, ttl: int) -> None:
        self.cluster = cluster
        self.root = root
        self.ttl = ttl
        self.endpoints = ",".join(cluster.url(i) for i in range(3))

    @abc.abstractmethod
    def lock_argv(self, command: list[str]) -> list[str]:
        """The lock command that runs ``command`` while holding the lock."""

    @abc.abstractmethod
    def waiters(self) -> int:
        """The keys in line for the lock (holder included)."""

    def start(self, command: list[str], log: Path) -> Process:
        process = Process(log.name, self.lock_argv(command), log, notes=False)
        process.start()
        return process


class RaftTrio(System):
    name = "raft-trio"

    def lock_argv(self, command: list[str]) -> list[str]:
        return [*cli_command(), "lock", NAME, "--ttl", str(self.ttl), "--endpoints", self.endpoints,
                "--", *command]  # fmt: skip

    def waiters(self) -> int:
        leader = self.cluster.wait_stable(0)
        code, body = http_request(
            self.cluster.client_port(leader), "GET", f"/api/kv?prefix={NAME}/&count_only=true"
        )
        return int(json.loads(body)["count"]) if code == 200 else -1


class Etcd(System):
    name = "etcd"

    def lock_argv(self, command: list[str]) -> list[str]:
        return ["etcdctl", f"--endpoints={self.endpoints}", "lock", NAME, f"--ttl={self.ttl}", "--", *command]

    def waiters(self) -> int:
        key = base64.b64encode(f"{NAME}/".encode()).decode()
        end = base64.b64encode(f"{NAME}0".encode()).decode()
        body = json.dumps({"key": key, "range_end": end, "count_only": True}).encode()
        code, answer = http_request(self.cluster.client_port(0), "POST", "/v3/kv/range", body, 2.0)
        return int(json.loads(answer).get("count", 0)) if code == 200 else -1


def until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    wait_until(lambda: (check(), "not yet"), timeout, what, poll=0.01)


def kill_group(pid: int) -> None:
    """SIGKILL to a process group we did not start (a lock's command)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def trial(system: System, script: Path, number: int, crash: bool) -> float:
    """One hand-off, in seconds."""
    log = system.root / f"{system.name}-{'crash' if crash else 'release'}-{number}.stamps"
    stamps = Stamps(log)
    trigger = system.root / f"{log.name}.done"
    holder = system.start(
        [sys.executable, "-S", str(script), str(log), "A", str(trigger)], log.with_suffix(".a")
    )
    waiter = None
    try:
        command_pid, _ = stamps.wait("start", "A")
        waiter = system.start([sys.executable, "-S", str(script), str(log), "B", "-"], log.with_suffix(".b"))
        until(lambda: system.waiters() == 2, f"{system.name}: the waiter in line")
        time.sleep(0.2)  # it now waits on its watch
        if crash:
            began = time.monotonic()
            holder.kill()
            kill_group(command_pid)
            _, started = stamps.wait("start", "B", timeout=system.ttl * 3 + 30)
            return started - began
        trigger.touch()
        _, ended = stamps.wait("end", "A")
        _, started = stamps.wait("start", "B")
        return started - ended
    finally:
        for proc in (holder, waiter):
            if proc is not None:
                proc.kill()
        until(
            lambda: system.waiters() == 0, f"{system.name}: the lock free again", timeout=system.ttl * 3 + 30
        )


def spawn_times(script: Path, root: Path, count: int) -> list[float]:
    """Starting the holder script alone, to its first stamp."""
    times = []
    for number in range(count):
        log = root / f"spawn-{number}.stamps"
        began = time.monotonic()
        subprocess.run([sys.executable, "-S", str(script), str(log), "S", "-"], check=True)
        times.append(Stamps(log).wait("start", "S")[1] - began)
    return times


def summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"{ms[0]:.0f} / {statistics.median(ms):.0f} / {ms[-1]:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10, help="release hand-offs per system (default 10)")
    parser.add_argument("--crash-trials", type=int, default=5, help="crash hand-offs per system (default 5)")
    parser.add_argument("--ttl", type=int, default=5, help="the locks' lease TTL, both systems (default 5)")
    parser.add_argument("--out", type=Path, help="write the report (markdown) here")
    args = parser.parse_args()
    if not shutil.which("etcd") or not shutil.which("etcdctl"):
        parser.error("etcd and etcdctl are needed (apt-get install etcd-server etcd-client)")
    command = shlex.join(["python", "-m", "bench.lock_handoff", *sys.argv[1:]])
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="raft-lock-handoff-") as tmp:
        root = Path(tmp)
        header = [*machine(root), f"- Command: `{command}`"]
        print("\n".join(header), flush=True)
        script = root / "holder.py"
        script.write_text(HOLDER)
        spawn = spawn_times(script, root, 10)
        results: dict[str, dict[str, list[float]]] = {}
        for kind, cluster_class in (("raft-trio", RaftCluster), ("etcd", EtcdCluster)):
            with cluster_class(root / kind, DEFAULT) as cluster:
                cluster.wait_stable(2.0)
                system: System = (
                    RaftTrio(cluster, root, args.ttl)
                    if kind == "raft-trio"
                    else Etcd(cluster, root, args.ttl)
                )
                release = [trial(system, script, n, crash=False) for n in range(args.trials)]
                print(f"{kind} release: {summary(release)} ms (min / median / max)", flush=True)
                crash = [trial(system, script, n, crash=True) for n in range(args.crash_trials)]
                print(f"{kind} crash: {summary(crash)} ms (min / median / max)", flush=True)
                results[kind] = {"release": release, "crash": crash}
    rows = [
        "| hand-off (ms: min / median / max) | raft-trio `lock` | etcd 3.4 `etcdctl lock` |",
        "|---|---|---|",
        f"| release: holder's command ends → waiter's command runs ({args.trials} trials) | "
        f"{summary(results['raft-trio']['release'])} | {summary(results['etcd']['release'])} |",
        f"| crash: holder killed (-9) → waiter's command runs, TTL {args.ttl} s ({args.crash_trials} trials) | "
        f"{summary(results['raft-trio']['crash'])} | {summary(results['etcd']['crash'])} |",
        f"| spawn: the command alone, start to its first stamp (10 runs) | {summary(spawn)} | (the same) |",
    ]
    text = "\n".join(["## Lock hand-off", "", *header, "", *rows, ""])
    print()
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
