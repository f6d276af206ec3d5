"""What the crash tests share: a cluster with short timings and frequent
snapshots, a writer that records every acknowledged write, a recorder of
each node's term and vote across kills, and the final check that every
acknowledged write survived on every node.

Processes are started and killed through :mod:`raft_trio.testing.processes`
(the integration tests' :class:`tests.integration.cluster.Cluster`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import itertools
import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import h11
import httpx

from raft_trio.storage import inspect_data_dir

from ..integration.cluster import (
    CATCH_UP_S,
    ELECTION_S,
    HTTP_TIMEOUT,
    STATUS_TIMEOUT,
    Cluster,
    as_written,
    describe,
    kv_path,
    wait_until,
)

#: Snapshot (and so rename and compaction) every 30 entries.
CRASH_ENV = {"RAFT_SNAPSHOT_ENTRIES": "30"}
#: A term a node has shown on /api/status for this long must be on its
#: disk: the only window in which memory may be ahead of the disk is one
#: fsync (milliseconds).
TERM_GRACE_S = 0.5
DEATH_S = 30.0


#: The index that marks a key as expected absent (declined, deleted).
ABSENT = -1

#: Clusters the running test started (their logs go into a failure's report).
STARTED: list[Cluster] = []


def make_cluster(root: Path, name: str, crash: dict[str, str] | None = None) -> Cluster:
    """A started 3-node cluster; ``crash`` maps node id -> RAFT_CRASH_POINT
    for the nodes that should die at a crash point. The caller closes it."""
    c = Cluster(root / name, name, env=CRASH_ENV)
    STARTED.append(c)
    for nid, point in (crash or {}).items():
        c[nid].env = {**c.env, "RAFT_CRASH_POINT": point}
    try:
        c.start()
    except BaseException:
        c.close()
        raise
    return c


def disarm(c: Cluster, nid: str) -> None:
    """The next start of ``nid`` runs without a crash point."""
    c[nid].env = c.env


def make_leader(c: Cluster, nid: str, tries: int = 3) -> bool:
    """Hand leadership to ``nid``; whether it leads now."""
    for _ in range(tries):
        lid, _ = c.wait_for_leader()
        if lid == nid:
            return True
        with contextlib.suppress(httpx.HTTPError):
            c.http.post(c[lid].url + "/api/leadership/transfer", json={"to": nid})
        try:
            lid, _ = c.wait_for_leader(timeout=5.0)
        except AssertionError:
            continue
        if lid == nid:
            return True
    return False


def wait_dead(c: Cluster, nid: str, timeout: float = DEATH_S) -> int:
    """Until ``nid``'s process has exited; its exit status."""
    node = c[nid]
    wait_until(lambda: (node.returncode is not None, "running"), timeout, f"{nid} to die at its crash point")
    return node.wait(timeout=0)


def assert_died_at(c: Cluster, nid: str, point: str) -> None:
    status = wait_dead(c, nid)
    assert status == -signal.SIGKILL, f"{nid} exited with status {status}, not by SIGKILL\n{c.tails()}"
    assert f"raft-trio: crash point {point} reached" in c[nid].log_text(), (
        f"{nid} died, but not at {point}\n{c.tails()}"
    )


# -- the writer ---------------------------------------------------------------------


@dataclasses.dataclass
class Ack:
    value: str
    index: int
    at: float


class Writer:
    """``threads`` threads, each writing distinct keys one after another
    as fast as they are answered, to whichever node answers (following
    redirects to the leader). Records every 200, every write whose
    outcome is unknown (a connection lost after the request left, a 503),
    and every write declined for want of space (a 507, which must have
    changed nothing). A write that could not connect reached no node and
    is retried. Values are padded to ``value_bytes`` when given."""

    def __init__(self, urls: list[str], threads: int = 4, prefix: str = "w", value_bytes: int = 0) -> None:
        self.urls = urls
        self.prefix = prefix
        self.value_bytes = value_bytes
        self.acked: dict[str, Ack] = {}
        self.unknown: dict[str, str] = {}
        self.declined: dict[str, str] = {}
        self.declined_errors: set[str] = set()
        self.refused: list[str] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(threads)]

    def start(self) -> Writer:
        for t in self._threads:
            t.start()
        return self

    def count(self) -> int:
        with self._lock:
            return len(self.acked)

    def wait_for(self, more: int, timeout: float = 20.0, what: str = "") -> None:
        """Until ``more`` writes beyond the ones acknowledged now."""
        target = self.count() + more
        wait_until(
            lambda: (self.count() >= target, self.count()),
            timeout,
            f"{more} more acknowledged writes {what}".strip(),
        )

    def stop(self) -> None:
        self._halt.set()
        for t in self._threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in self._threads), "the writer did not stop"
        assert not self.errors, f"writer failed: {self.errors[0]!r}"

    def _run(self, thread: int) -> None:
        target = thread
        i = 0
        try:
            with httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False, follow_redirects=True) as client:
                while not self._halt.is_set():
                    key, value = f"{self.prefix}-{thread}-{i:05d}", f"value {thread}/{i}"
                    value = value.ljust(self.value_bytes, ".")
                    url = self.urls[target % len(self.urls)] + kv_path(key)
                    try:
                        r = client.put(url, json={"value": value})
                    except httpx.ConnectError:
                        # Never reached a node (a dead one, or the leader a
                        # live one redirected to): the same key goes to the
                        # next node.
                        target += 1
                        time.sleep(0.02)
                        continue
                    except httpx.HTTPError:
                        i += 1
                        with self._lock:
                            self.unknown[key] = value
                        target += 1
                        time.sleep(0.02)
                        continue
                    i += 1
                    with self._lock:
                        if r.status_code == 200:
                            body = r.json()
                            assert body["key"] == key and body["value"] == value, describe(r)
                            self.acked[key] = Ack(value, body["index"], time.monotonic())
                        elif r.status_code == 507 and r.json().get("indeterminate") is False:
                            self.declined[key] = value
                            self.declined_errors.add(r.json()["error"])
                        else:
                            self.unknown[key] = value
                            if r.status_code != 503:
                                self.refused.append(describe(r))
                    if r.status_code != 200:
                        target += 1
                        time.sleep(0.02)
        except BaseException as error:
            self.errors.append(error)


# -- terms and votes ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Seen:
    """One observation of a node's term: from a live process's
    /api/status (``pid`` set, ``vote`` unknown; ``at`` when the request
    left, ``until`` when the answer came) or from its data directory while
    it was dead (``pid`` None)."""

    at: float
    until: float
    term: int
    vote: str | None
    pid: int | None


class TermRecorder:
    """Polls every running node's /api/status in the background, and reads
    a dead node's hard state from its data directory (read-only) when the
    test says so; :meth:`check` then asserts that no node's term ever went
    back and that no node changed its vote within a term."""

    def __init__(self, c: Cluster, interval: float = 0.1) -> None:
        self.c = c
        self.interval = interval
        self.seen: dict[str, list[Seen]] = collections.defaultdict(list)
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TermRecorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with httpx.Client(timeout=STATUS_TIMEOUT, trust_env=False) as client:
            while not self._halt.is_set():
                for node in list(self.c.nodes.values()):
                    if not node.running:
                        continue
                    pid = node.pid
                    at = time.monotonic()
                    try:
                        r = client.get(node.url + "/api/status")
                        term = r.json()["term"] if r.status_code == 200 else None
                    except (httpx.HTTPError, ValueError, KeyError):
                        continue
                    if isinstance(term, int):
                        seen = Seen(at, time.monotonic(), term, None, pid)
                        with self._lock:
                            self.seen[node.id].append(seen)
                self._halt.wait(self.interval)

    def record_disk(self, nid: str) -> Seen:
        """Read ``nid``'s hard state from its data directory; it must not be running."""
        node = self.c[nid]
        assert not node.running, f"{nid} is running: read its disk only while it is dead"
        state = inspect_data_dir(node.data_dir)
        hs = state.hard_state
        now = time.monotonic()
        seen = Seen(now, now, hs.term if hs else 0, hs.vote if hs else None, None)
        with self._lock:
            self.seen[nid].append(seen)
        node.note(f"hard state on disk while dead: {hs}")
        return seen

    def kill_all_and_record(self) -> None:
        """End of a test: kill every node and read every disk."""
        self.stop()
        for nid, node in self.c.nodes.items():
            node.kill()
            self.record_disk(nid)

    def check(self) -> dict[str, list[tuple[int, str | None]]]:
        """Assert the rules (:func:`check_terms`); returns each node's disk
        (term, vote) history."""
        with self._lock:
            seen = {nid: list(obs) for nid, obs in self.seen.items()}
        return check_terms(seen)


def check_terms(seen: dict[str, list[Seen]]) -> dict[str, list[tuple[int, str | None]]]:
    """Assert that no node's term went back and no node changed its vote
    within a term, given every observation of each node; returns each
    node's disk (term, vote) history."""
    problems: list[str] = []
    history: dict[str, list[tuple[int, str | None]]] = {}
    for nid, unsorted in seen.items():
        obs = sorted(unsorted, key=lambda s: s.at)
        disk = [s for s in obs if s.pid is None]
        history[nid] = [(s.term, s.vote) for s in disk]
        # 1. The term on disk never goes back, across every kill.
        for a, b in itertools.pairwise(disk):
            if b.term < a.term:
                problems.append(f"{nid}: term on disk went back from {a.term} to {b.term}")
        # 2. A vote, once on disk for a term, stays the same in that term.
        votes: dict[int, str] = {}
        for s in disk:
            if s.term in votes and s.vote != votes[s.term]:
                problems.append(f"{nid}: vote in term {s.term} changed from {votes[s.term]} to {s.vote}")
            if s.vote is not None:
                votes.setdefault(s.term, s.vote)
        # 3. A live process never shows a lower term than it showed before.
        by_pid: dict[int, list[Seen]] = collections.defaultdict(list)
        for s in obs:
            if s.pid is not None:
                by_pid[s.pid].append(s)
        for pid, live in by_pid.items():
            for a, b in itertools.pairwise(live):
                if b.term < a.term:
                    problems.append(f"{nid} (pid {pid}): status term went back from {a.term} to {b.term}")
        # 4. A term a process showed for a while is on its disk after it
        #    died (the kill may land in the one fsync that writes a new
        #    term: hence the grace);
        # 5. and after a restart no lower term than the disk's is shown.
        last_disk: Seen | None = None
        shown: list[Seen] = []  # status answers since the last disk read
        for s in obs:
            if s.pid is not None:
                if last_disk is not None and s.term < last_disk.term:
                    problems.append(
                        f"{nid} (pid {s.pid}): showed term {s.term} below the {last_disk.term} "
                        "its disk held before it started"
                    )
                shown.append(s)
                continue
            if shown:
                settled = [x.term for x in shown if x.until <= shown[-1].at - TERM_GRACE_S]
                if settled and max(settled) > s.term:
                    problems.append(
                        f"{nid} (pid {shown[-1].pid}): showed term {max(settled)} for over "
                        f"{TERM_GRACE_S} s, but its disk held term {s.term} after it died"
                    )
            last_disk, shown = s, []
    assert not problems, "\n".join(problems)
    return history


# -- the final check -------------------------------------------------------------------


def pipelined_get(port: int, paths: list[str], batch: int = 100) -> list[tuple[int, bytes]]:
    """GET every path from 127.0.0.1:``port`` over one keep-alive
    connection, ``batch`` requests sent at a time before their answers are
    read (HTTP/1.1 pipelining, parsed with h11): far cheaper than a client
    round trip per request, for reads that need no leader round.
    (status, body) per path, in order."""
    answers: list[tuple[int, bytes]] = []
    conn = h11.Connection(h11.CLIENT)

    def request(path: str) -> h11.Request:
        return h11.Request(method="GET", target=path, headers=[("Host", f"127.0.0.1:{port}")])

    with socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT.read) as sock:
        for lo in range(0, len(paths), batch):
            chunk = paths[lo : lo + batch]
            wire = bytearray()
            for path in chunk:
                writer = h11.Connection(h11.CLIENT)  # only to encode the request
                wire += writer.send(request(path)) or b""
                wire += writer.send(h11.EndOfMessage()) or b""
            sock.sendall(wire)
            for path in chunk:
                # The parser must have "sent" the request its answer is for.
                conn.send(request(path))
                conn.send(h11.EndOfMessage())
                status, body = 0, bytearray()
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = sock.recv(65536)
                        if not data:
                            raise ConnectionError(f"127.0.0.1:{port} closed the connection")
                        conn.receive_data(data)
                    elif isinstance(event, h11.Response):
                        status = event.status_code
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                answers.append((status, bytes(body)))
                conn.start_next_cycle()
    return answers


def converge(c: Cluster) -> tuple[str, int]:
    """Every node runs, agrees on one leader and has applied the leader's
    commit index; (leader id, commit index)."""
    ids = list(c.nodes)
    lid, _ = c.wait_for_leader(ids, timeout=ELECTION_S)
    st = c.status(lid)
    assert st is not None
    commit = int(st["commit_index"])
    for nid in ids:
        c.wait_caught_up(nid, commit, timeout=CATCH_UP_S)
    return lid, commit


def check_acknowledged(c: Cluster, writer: Writer, deleted: set[str] | None = None) -> dict[str, Any]:
    """Every acknowledged write is readable with its value and index:
    linearizably through the leader and with ?consistency=stale on every
    node (all caught up); every write of unknown outcome is either there
    with its value or absent; every write declined for want of space (507)
    and every key in ``deleted`` (deleted by the test since) is absent.
    Also that acknowledged writes were applied in the order they were
    acknowledged, per writer thread."""
    deleted = deleted or set()
    assert not writer.refused, f"answers outside the contract: {writer.refused[:3]}"
    lid, commit = converge(c)
    per_thread: dict[str, list[Ack]] = collections.defaultdict(list)
    for key, ack in writer.acked.items():
        per_thread[key.rsplit("-", 1)[0]].append(ack)
    for thread, acks in per_thread.items():
        acks.sort(key=lambda a: a.at)
        indexes = [a.index for a in acks]
        assert indexes == sorted(indexes), f"{thread}: acknowledged out of log order"

    # (key, value, index; None for an unknown outcome, ABSENT for one that must be absent)
    expected: list[tuple[str, str, int | None]] = [
        (k, a.value, a.index) for k, a in writer.acked.items() if k not in deleted
    ]
    expected += [(key, value, None) for key, value in writer.unknown.items() if key not in deleted]
    expected += [(key, value, ABSENT) for key, value in writer.declined.items()]
    expected += [(key, "", ABSENT) for key in deleted]
    wrong: list[str] = []

    def judge(where: str, key: str, value: str, index: int | None, status: int, body: bytes) -> None:
        answer = json.loads(body) if status in (200, 404) else None
        if index == ABSENT:
            ok = status == 404
        elif index is None:  # unknown outcome: there with its value, or absent
            ok = status == 404 or (status == 200 and answer is not None and answer["value"] == value)
        else:
            ok = status == 200 and as_written(answer) == {"key": key, "value": value, "index": index}
        if not ok:
            wrong.append(f"{where}: {key!r} -> {status} {body[:200]!r}")

    def linearizable(chunk: list[tuple[str, str, int | None]]) -> None:
        # Concurrent connections: the leader confirms many reads with one
        # ReadIndex round. A 503 (no leader to confirm the read: an
        # election, which the check's own load on a busy machine can bring
        # about) says nothing of the data: the read is tried again, through
        # the redirect of a node that follows, until a leader answers.
        with httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False, follow_redirects=True) as client:

            def answered(key: str) -> tuple[bool, httpx.Response]:
                response = client.get(c.kv_url(lid, key))
                return response.status_code != 503, response

            for key, value, index in chunk:
                r = wait_until(
                    functools.partial(answered, key), ELECTION_S, f"a leader to confirm the read of {key!r}"
                )
                judge(f"linearizable read on {lid}", key, value, index, r.status_code, r.content)

    def stale(nid: str) -> None:
        paths = [kv_path(key) + "?consistency=stale" for key, _, _ in expected]
        answers = pipelined_get(c[nid].port, paths)
        for (key, value, index), (status, body) in zip(expected, answers, strict=True):
            judge(f"stale read on {nid}", key, value, index, status, body)

    readers = 8
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=readers + len(c.nodes)) as pool:
        futures = [pool.submit(linearizable, expected[i::readers]) for i in range(readers)]
        futures += [pool.submit(stale, nid) for nid in c.nodes]
        for future in futures:
            future.result()
    reads = len(expected) * (1 + len(c.nodes))
    print(f"{reads} reads in {time.monotonic() - started:.1f} s")
    assert not wrong, f"{len(wrong)} of {reads} reads wrong, e.g.\n" + "\n".join(wrong[:5])
    return {
        "leader": lid,
        "commit": commit,
        "acked": len(writer.acked),
        "unknown": len(writer.unknown),
        "declined": len(writer.declined),
        "deleted": len(deleted),
    }
