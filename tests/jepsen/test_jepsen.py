"""Jepsen-style runs against a real 3-node cluster (issue 8, part 1).

``test_short_jepsen_run``: concurrent clients on a few keys while a seeded
nemesis pauses and kills leaders, pauses followers and partitions nodes
(through per-destination peer proxies); then everything heals, each key is
read linearizably, and the whole history, final reads included, must be
linearizable per key (so every acknowledged write is accounted for).
CI runs 30 s of faults; the long form is one command::

    JEPSEN_SECONDS=600 pytest tests/jepsen -k jepsen_run -s

``JEPSEN_SEED=<n>`` replays a nemesis schedule (the seed is printed). The
nodes sign their peer streams and requests with a cluster secret, and the
proxies replay the opening of every 3rd connection they forwarded (a
stream's head and first frames, or a snapshot request) once it has ended:
each replay must be refused (401).

``test_stale_reads_are_caught``: the same workload with a deliberately
broken read path (reads sent as ``?consistency=stale`` to any node, so a
lagging or partitioned follower answers), which the checker must reject.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from raft_trio.testing import Operation, Outcome, WatchReport, check_history, check_watch

from .harness import (
    FOLLOWER_FAULTS,
    Client,
    History,
    JepsenCluster,
    Nemesis,
    Watcher,
    final_reads,
    last_change,
    seed_from_env,
    summarize,
)

pytestmark = pytest.mark.integration

CLIENTS = 5


def run_workload(
    cluster: JepsenCluster,
    history: History,
    seconds: float,
    seed: int,
    stale_reads: bool = False,
    faults: tuple[str, ...] | None = None,
) -> Nemesis:
    stop = threading.Event()
    urls = {nid: n.url for nid, n in cluster.nodes.items()}
    rw = cluster.client_rewrite()
    clients = [
        Client(i, urls, history, stop, seed=seed * 100 + i, stale_reads=stale_reads, rewrite=rw)
        for i in range(CLIENTS)
    ]
    nemesis = Nemesis(cluster, seed, stop, **({"faults": faults} if faults else {}))
    for c in clients:
        c.start()
    nemesis.start()
    time.sleep(seconds)
    stop.set()
    nemesis.join(timeout=15)
    for c in clients:
        c.join(timeout=10)
    assert not nemesis.is_alive() and not any(c.is_alive() for c in clients), "workload threads hung"
    if nemesis.error is not None:
        raise nemesis.error
    reasons: dict[tuple[str, str, str], int] = {}
    for c in clients:
        for k, n in c.reasons.items():
            reasons[k] = reasons.get(k, 0) + n
    for (kind, status, why), n in sorted(reasons.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {n:5d} x {kind} {status}: {why}")
    return nemesis


def test_short_jepsen_run(tmp_path: Path) -> None:
    seconds = float(os.environ.get("JEPSEN_SECONDS", "30"))
    seed = seed_from_env()
    print(f"\nJEPSEN_SEED={seed} JEPSEN_SECONDS={seconds:g}", flush=True)
    # Peers sign their streams (a cluster secret), and the proxies replay
    # every 3rd connection's opening, also to a node restarted since: under
    # faults the signatures must neither cost availability nor let a replay
    # through. Partitions cut the streams through the proxies.
    cluster = JepsenCluster(
        tmp_path / "cluster", env={"RAFT_CLUSTER_SECRET": "jepsen-cluster-secret"}, replay_every=3
    )
    try:
        cluster.start()
        history = History()
        # A watcher follows every key through the faults, reconnecting to
        # another node whenever its node fails it.
        watching = threading.Event()
        watcher = Watcher({nid: n.url for nid, n in cluster.nodes.items()}, watching, seed)
        watcher.start()
        nemesis = run_workload(cluster, history, seconds, seed)
        cluster.heal_all()
        cluster.wait_for_leader(ids=sorted(cluster.nodes), timeout=20)
        final_reads(cluster, history)
        ops = history.snapshot()
        result = check_history(ops, timeout_s=120)
        watched = watch_report(cluster, watcher, watching, ops)
        faults = [line for line in nemesis.log if not line.endswith("healed")]
        print(f"ops: {summarize(ops)}")
        print(f"faults injected ({len(faults)}): " + "; ".join(faults))
        print(f"final values: { {op.key: op.output for op in ops if op.client == 'final'} }")
        print(
            f"proxies (forwarded/dropped): { {n: (p.forwarded, p.dropped) for n, p in cluster.proxies.items()} }"
        )
        replays = [status for p in cluster.proxies.values() for status in p.replays]
        print(f"replayed peer requests: {len(replays)}, statuses {sorted(set(replays))}")
        print(f"check: {result.message.splitlines()[0]}")
        print(
            f"watch: {len(watcher.received())} changes over {watcher.connections} connections; {watched.message}"
        )
        dump = tmp_path / "history.txt"
        dump.write_text(
            "\n".join(op.describe() + f" key={op.key}" for op in sorted(ops, key=lambda o: o.invoke))
        )
        print(f"history written to {dump}")
        assert sum(op.status == "ok" and op.kind != "read" for op in ops) > 0, "no write was acknowledged"
        assert replays, "no peer request was replayed"
        assert set(replays) == {401}, f"a replayed peer request was not refused: {sorted(set(replays))}"
        assert len(faults) >= 3, f"too few faults injected: {faults}"
        assert result.outcome is not Outcome.UNKNOWN, (
            f"checker gave no verdict (seed {seed}):\n{result.message}"
        )
        assert result.ok, f"not linearizable (JEPSEN_SEED={seed}):\n{result.message}"
        assert watcher.connections >= 1 and watcher.received(), "the watcher received nothing"
        assert watched.ok, f"watch stream (JEPSEN_SEED={seed}): {watched.message}"
    except BaseException:
        print(cluster.tails(20))
        raise
    finally:
        cluster.close()


def watch_report(
    cluster: JepsenCluster, watcher: Watcher, watching: threading.Event, ops: list[Operation]
) -> WatchReport:
    """Let the watcher catch up with the last change, stop it, and check
    its stream against the history: acknowledged writes, writes that
    failed for certain, and the final reads."""
    last = last_change(cluster)
    deadline = time.monotonic() + 30
    while (watcher.last_id() or 0) < last and time.monotonic() < deadline:
        time.sleep(0.1)
    watching.set()
    watcher.join(timeout=10)
    acknowledged: dict[tuple[str, str], int | None] = {}
    failed: list[tuple[str, str]] = []
    for op in ops:
        if op.kind == "read" or op.client == "final":
            continue
        value = str(op.input if op.kind == "write" else op.input[1])  # type: ignore[index]
        if op.status == "ok" and op.output is not False:
            acknowledged[(op.key, value)] = None
        elif op.status == "fail" or (op.status == "ok" and op.output is False):
            failed.append((op.key, value))
    final = {op.key: None if op.output is None else str(op.output) for op in ops if op.client == "final"}
    return check_watch(watcher.received(), acknowledged, failed, final)


def test_stale_reads_are_caught(tmp_path: Path) -> None:
    """Stale reads from followers (the broken read path) must be caught
    within a budget of a few short rounds, each with its own seed."""
    base_seed = seed_from_env()
    cluster = JepsenCluster(tmp_path / "cluster")
    history = History()
    try:
        cluster.start()
        for round_ in range(4):
            seed = base_seed + round_
            run_workload(cluster, history, 7.0, seed, stale_reads=True, faults=FOLLOWER_FAULTS)
            cluster.heal_all()
            ops = history.snapshot()
            result = check_history(ops, timeout_s=20)
            print(f"\nround {round_} seed {seed}: {summarize(ops)}; {result.message.splitlines()[0]}")
            if result.outcome is Outcome.ILLEGAL:
                print(result.message)
                return
        pytest.fail(f"stale reads were not caught in 4 rounds (seeds {base_seed}..{base_seed + 3})")
    finally:
        cluster.close()
