"""Jepsen-style runs against a real 3-node cluster (issue 8, part 1).

``test_short_jepsen_run``: concurrent clients on a few keys while a seeded
nemesis pauses and kills leaders, pauses followers and partitions nodes
(through per-destination peer proxies); then everything heals, each key is
read linearizably, and the whole history, final reads included, must be
linearizable per key (so every acknowledged write is accounted for).
The default run has 15 s of faults (``[plain-long]``, 2 minutes, with
``-m soak``); the long form is one command::

    JEPSEN_SECONDS=600 pytest tests/jepsen -k jepsen_run -s

(``-k "jepsen_run and plain"`` for the run without auth alone).

``JEPSEN_SEED=<n>`` replays a nemesis schedule (the seed is printed). The
nodes sign their peer streams and requests with a cluster secret, and the
proxies replay the opening of every 3rd connection they forwarded (a
stream's head and first frames, or a snapshot request) once it has ended:
each replay must be refused (401).

With auth on (``[auth]``: 15 s by default, ``[auth-long]``: 2 minutes, with
``-m soak``), the same run and the same checks, every client proving its
user with a token that expires every few seconds (so clients log in again
under faults), while an intruder keeps trying anonymous writes and
watches, writes by a user who may only read, and writes outside the
workload user's grant: each must be refused (401, 403) or not served, and
none of their values may appear in any read, the watch stream or the
final state.

``test_stale_reads_are_caught``: the same workload with a deliberately
broken read path (reads sent as ``?consistency=stale`` to any node, so a
lagging or partitioned follower answers), which the checker must reject.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from raft_trio.testing import Operation, Outcome, WatchReport, check_history, check_watch

from .auth_on import INTRUDER_MARK, OUTSIDE_KEY, WORKLOAD_PREFIX, Intruder
from .harness import (
    FOLLOWER_FAULTS,
    KEYS,
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
    auth = cluster.users.workload if cluster.users is not None else None
    clients = [
        Client(i, urls, history, stop, seed=seed * 100 + i, stale_reads=stale_reads, rewrite=rw, auth=auth)
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
    if cluster.users is not None:
        refused = {key: n for key, n in reasons.items() if key[2].startswith("403")}
        assert not refused, f"the workload's user was refused what it may do: {refused}"
    return nemesis


RUNS = [
    pytest.param(False, 15.0, id="plain"),
    pytest.param(True, 15.0, id="auth"),
    pytest.param(False, 120.0, id="plain-long", marks=pytest.mark.soak),
    pytest.param(True, 120.0, id="auth-long", marks=pytest.mark.soak),
]


@pytest.mark.parametrize(("auth", "default_seconds"), RUNS)
def test_short_jepsen_run(tmp_path: Path, auth: bool, default_seconds: float) -> None:
    seconds = float(os.environ.get("JEPSEN_SECONDS", default_seconds))
    seed = seed_from_env()
    print(f"\nJEPSEN_SEED={seed} JEPSEN_SECONDS={seconds:g} auth={auth}", flush=True)
    # Peers sign their streams (a cluster secret), and the proxies replay
    # every 3rd connection's opening, also to a node restarted since: under
    # faults the signatures must neither cost availability nor let a replay
    # through. Partitions cut the streams through the proxies. The shorter
    # auth run replays every connection's opening, to replay as many.
    cluster = JepsenCluster(
        tmp_path / "cluster",
        env={"RAFT_CLUSTER_SECRET": "jepsen-cluster-secret"},
        replay_every=1 if auth else 3,
        auth=auth,
    )
    try:
        cluster.start()
        history = History()
        urls = {nid: n.url for nid, n in cluster.nodes.items()}
        # A watcher follows every key through the faults, reconnecting to
        # another node whenever its node fails it. With auth on it is the
        # workload's user, which may read the keys under the prefix only.
        watching = threading.Event()
        if cluster.users is None:
            watcher = Watcher(urls, watching, seed)
        else:
            watcher = Watcher(urls, watching, seed, prefix=WORKLOAD_PREFIX, auth=cluster.users.workload)
        watcher.start()
        intruding = threading.Event()
        intruder = None
        if cluster.users is not None:
            intruder = Intruder(urls, cluster.users, KEYS, intruding, seed)
            intruder.start()
        nemesis = run_workload(cluster, history, seconds, seed)
        if intruder is not None:
            intruding.set()
            intruder.join(timeout=10)
            assert not intruder.is_alive(), "the intruder hung"
        cluster.heal_all()
        cluster.wait_for_leader(ids=sorted(cluster.nodes), timeout=20)
        final_reads(cluster, history)
        ops = history.snapshot()
        result = check_history(ops, timeout_s=120)
        refused_writes = intruder.written if intruder is not None else []
        watched = watch_report(cluster, watcher, watching, ops, refused_writes)
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
        if intruder is not None:
            check_auth_held(cluster, intruder, ops, watcher)
    except BaseException:
        print(cluster.tails(20))
        raise
    finally:
        cluster.close()


def check_auth_held(
    cluster: JepsenCluster, intruder: Intruder, ops: list[Operation], watcher: Watcher
) -> None:
    """Auth was in force all through the run: the intruder was refused
    (each kind of attempt at least once, none let through), its values
    are nowhere (reads, the watch stream, the final state read as root),
    the workload's tokens expired and were renewed, and auth is still on."""
    users = cluster.users
    assert users is not None
    if intruder.error is not None:
        raise intruder.error
    outcomes = intruder.outcomes()
    print(f"intruder: {len(intruder.attempts)} attempts; (who, what, outcome) -> count:")
    for (who, what, outcome), n in sorted(outcomes.items()):
        print(f"  {n:5d} x {who} {what}: {outcome}")
    print(f"logins: workload {users.workload.logins}, reader {users.reader.logins}, root {users.root.logins}")
    breaches = intruder.breaches()
    assert not breaches, f"auth let the intruder through: {breaches[:10]}"
    expected = [("anonymous", "put", "401"), ("anonymous", "watch", "401"), ("reader", "put", "403")]
    expected += [("reader", "watch", "403"), ("jepsen", "put", "403")]
    for key in expected:
        assert outcomes[key] > 0, f"never refused: {' '.join(key)} ({dict(outcomes)})"
    seen = {(op.key, op.output) for op in ops if op.kind == "read" and op.status == "ok"}
    seen |= {(change.key, change.value) for change in watcher.received()}
    leaked = [pair for pair in seen if isinstance(pair[1], str) and pair[1].startswith(INTRUDER_MARK)]
    assert not leaked, f"a refused write took effect: {leaked[:10]}"
    with httpx.Client(timeout=10.0, trust_env=False, auth=users.root, follow_redirects=True) as root:
        leader = cluster.leader().url
        everything = root.get(leader + "/api/kv").json()["kvs"]
        assert {kv["key"] for kv in everything} <= set(KEYS), f"a key outside the workload: {everything}"
        assert OUTSIDE_KEY not in {kv["key"] for kv in everything}
        assert not any(kv["value"].startswith(INTRUDER_MARK) for kv in everything), everything
        status = root.get(leader + "/api/auth/status").json()
        assert status["enabled"] is True, status
    # Every token lasts a few seconds: the workload's expired mid-run, and
    # its clients logged in again (through faults) without losing safety.
    assert users.workload.logins >= 2, (
        f"the workload's token was never renewed ({users.workload.logins} logins)"
    )


def watch_report(
    cluster: JepsenCluster,
    watcher: Watcher,
    watching: threading.Event,
    ops: list[Operation],
    refused_writes: Sequence[tuple[str, str]] = (),
) -> WatchReport:
    """Let the watcher catch up with the last change, stop it, and check
    its stream against the history: acknowledged writes, writes that
    failed for certain (and writes auth refused, or may have: none of them
    may show), and the final reads."""
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
    failed.extend(refused_writes)
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
