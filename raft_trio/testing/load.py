"""A write load for black-box runs against a real cluster (the rolling-restart
test and ``bench/rolling_restart.py``): N client threads, each writing
distinct keys one after another, and a record of every write's fate.

Each client is a :class:`raft_trio.client.Client` that makes one attempt
at a time (``retry=False``), so that the load counts its retries; it
behaves as the contract asks of a careful client:

- it follows 307 redirects to the leader;
- a ``503`` that certainly had no effect (any but ``indeterminate``) is
  retried, at the next node;
- a connection error (refused, reset, timed out) is retried at the next
  node too. Every write carries an ``Idempotency-Key``, so a retry of a
  write that did reach a leader is answered with the first outcome and
  applied once: a connection error is never an unknown outcome here;
- a ``503`` with code ``indeterminate`` ends the write as
  *indeterminate*; any other answer ends it as *failed*; a write with no
  ``200`` within ``write_deadline`` seconds ends as indeterminate.

Only ``200`` answers count as acknowledged. ``LoadSummary`` reports the
longest gap between two consecutive acknowledgements (over all clients),
write latency percentiles (first attempt to the ``200``, retries included)
and the counts.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time

from ..client import ApiError, Client, Indeterminate, NoEndpointAnswered

#: Pause before retrying a write that certainly had no effect; short,
#: since the point is to see how soon the cluster takes writes again (a
#: careful production client would honour ``Retry-After``).
RETRY_PAUSE_S = 0.01


@dataclasses.dataclass(frozen=True)
class Ack:
    key: str
    value: str
    index: int
    started: float
    acked: float


@dataclasses.dataclass(frozen=True)
class Unacked:
    key: str
    value: str
    outcome: str  # "failed" or "indeterminate"
    detail: str


@dataclasses.dataclass(frozen=True)
class LoadSummary:
    ok: int
    failed: int
    indeterminate: int
    #: Attempts retried after a 503 that certainly had no effect.
    retried_unavailable: int
    #: Attempts retried after a connection error.
    retried_connection: int
    #: Longest time between two consecutive acknowledgements, and when it
    #: began (monotonic clock).
    longest_gap_s: float
    longest_gap_at: float
    p50_latency_s: float
    p99_latency_s: float
    max_latency_s: float

    def lines(self) -> list[str]:
        return [
            f"writes: {self.ok} ok, {self.failed} failed, {self.indeterminate} indeterminate",
            f"retried: {self.retried_unavailable} after a 503 without effect, "
            f"{self.retried_connection} after a connection error",
            f"longest gap between acknowledged writes: {self.longest_gap_s * 1000:.0f} ms",
            f"write latency: p50 {self.p50_latency_s * 1000:.1f} ms, p99 {self.p99_latency_s * 1000:.1f} ms, "
            f"max {self.max_latency_s * 1000:.0f} ms",
        ]


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending list (0.0 if empty)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


class WriteLoad:
    """``clients`` threads writing to the cluster at ``urls`` until ``stop``."""

    def __init__(
        self,
        urls: list[str],
        clients: int = 8,
        prefix: str = "load",
        *,
        request_timeout: float = 10.0,
        write_deadline: float = 30.0,
        api_prefix: str = "/api",
    ) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.prefix = prefix
        self.request_timeout = request_timeout
        self.write_deadline = write_deadline
        self.api_prefix = api_prefix
        self.acks: list[Ack] = []
        self.unacked: list[Unacked] = []
        self.errors: list[BaseException] = []
        self.retried_unavailable = 0
        self.retried_connection = 0
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), name=f"writer-{n}", daemon=True)
            for n in range(clients)
        ]

    # -- control ----------------------------------------------------------------

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop taking new writes; the ones under way finish (each within
        its deadline)."""
        self._halt.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise RuntimeError(f"writer threads still running after {timeout:.0f} s: {alive}")

    def ok_count(self) -> int:
        with self._lock:
            return len(self.acks)

    def acked_since(self, t: float) -> int:
        with self._lock:
            return sum(1 for a in self.acks if a.acked >= t)

    # -- the clients ------------------------------------------------------------

    def _run(self, client: int) -> None:
        try:
            with Client(
                self.urls,
                timeout=self.request_timeout,
                connect_timeout=1.0,
                api_prefix=self.api_prefix,
                retry=False,
            ) as cluster:
                nodes = [cluster.at(url) for url in self.urls]
                target = client  # spread the clients' first choices over the nodes
                n = 0
                while not self._halt.is_set():
                    key = f"{self.prefix}-{client}-{n:06d}"
                    target = self._write(nodes, key, f"value of {key}", target)
                    n += 1
        except BaseException as error:  # reported by the caller; a thread must not die silently
            with self._lock:
                self.errors.append(error)

    def _write(self, nodes: list[Client], key: str, value: str, target: int) -> int:
        """One write to its end; the node index to start the next one at."""
        started = time.monotonic()
        while True:
            if time.monotonic() - started > self.write_deadline:
                self._end(Unacked(key, value, "indeterminate", f"no 200 within {self.write_deadline} s"))
                return target
            try:
                answer = nodes[target % len(nodes)].put(key, value, idempotency_key=key)
            except NoEndpointAnswered:
                with self._lock:
                    self.retried_connection += 1
                target += 1
                continue
            except Indeterminate as error:
                if error.status is None:
                    # No answer at all: the connection broke after the write
                    # went out. Its key makes the retry safe.
                    with self._lock:
                        self.retried_connection += 1
                    target += 1
                    continue
                self._end(Unacked(key, value, "indeterminate", f"{error.status} {error.message}"))
                return target
            except ApiError as error:
                if error.status == 503:
                    # No effect for certain: retry.
                    with self._lock:
                        self.retried_unavailable += 1
                    target += 1
                    time.sleep(RETRY_PAUSE_S)
                    continue
                self._end(Unacked(key, value, "failed", f"{error.status} {error.code} {error.message}"))
                return target
            if answer.key != key or answer.value != value:
                self._end(Unacked(key, value, "failed", f"200 with a wrong body: {answer}"))
                return target
            with self._lock:
                self.acks.append(Ack(key, value, answer.index, started, time.monotonic()))
            return target

    def _end(self, write: Unacked) -> None:
        with self._lock:
            self.unacked.append(write)

    # -- results ----------------------------------------------------------------

    def summary(self) -> LoadSummary:
        with self._lock:
            acks = sorted(self.acks, key=lambda a: a.acked)
            unacked = list(self.unacked)
            retried = (self.retried_unavailable, self.retried_connection)
        gap, gap_at = 0.0, acks[0].acked if acks else 0.0
        for before, after in itertools.pairwise(acks):
            if after.acked - before.acked > gap:
                gap, gap_at = after.acked - before.acked, before.acked
        latencies = sorted(a.acked - a.started for a in acks)
        return LoadSummary(
            ok=len(acks),
            failed=sum(1 for u in unacked if u.outcome == "failed"),
            indeterminate=sum(1 for u in unacked if u.outcome == "indeterminate"),
            retried_unavailable=retried[0],
            retried_connection=retried[1],
            longest_gap_s=gap,
            longest_gap_at=gap_at,
            p50_latency_s=percentile(latencies, 0.50),
            p99_latency_s=percentile(latencies, 0.99),
            max_latency_s=latencies[-1] if latencies else 0.0,
        )
