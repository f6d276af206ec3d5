"""A Jepsen-style harness for raft-trio: a 3-node cluster of real processes
whose peer traffic goes through proxies the test controls, concurrent
clients that record every operation, and a seeded nemesis.

- :class:`PeerProxy`: one small threaded HTTP reverse proxy per destination
  node. Every node's ``--peers`` URL for node X is X's proxy, which forwards
  to X's real ``--listen`` port, and answers 503 (forwarding nothing) to a
  request whose ``X-Raft-From`` sender is in its ``blocked`` set. Blocking
  both directions between X and everyone else isolates X (a partition).
- :class:`JepsenCluster`: the integration tests' :class:`Cluster` with its
  peers rewritten to go through the proxies; clients still talk to the
  nodes' own ports.
- :class:`Client`: a thread doing random reads, writes and compare-and-sets
  on a few keys, following 307s itself, recording an
  :class:`~raft_trio.testing.Operation` per call with ``ok``/``fail``/``info``.
- :class:`Nemesis`: a thread injecting one fault every few seconds from a
  schedule drawn from a seeded RNG (``JEPSEN_SEED`` replays it).
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import random
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from raft_trio.testing import Operation, WatchedChange

from ..integration.cluster import Cluster, free_ports, kv_path

FROM_HEADER = "X-Raft-From"
KEYS = ("k0", "k1", "k2")
CLIENT_TIMEOUT = httpx.Timeout(1.5, connect=0.5)
MAX_REDIRECTS = 3


# -- the peer proxies -------------------------------------------------------------


class PeerProxy:
    """Forwards everything arriving on ``port`` to ``127.0.0.1:target_port``,
    except requests from a sender in ``blocked`` (answered 503, not forwarded).

    With ``replay_every`` N, every Nth forwarded request, if it is a peer
    request, is sent to the node a second time, as an attacker who captured
    it would; the statuses of
    these replays are kept in ``replays`` (with a cluster secret, each must
    be a 401)."""

    def __init__(self, dest_id: str, port: int, target_port: int, replay_every: int = 0) -> None:
        self.dest_id = dest_id
        self.port = port
        self.target_port = target_port
        self.blocked: set[str] = set()
        self.forwarded = 0
        self.dropped = 0
        self.replay_every = replay_every
        self.replays: list[int] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                sender = self.headers.get(FROM_HEADER, "")
                if sender in proxy.blocked:
                    proxy.dropped += 1
                    self._reply(503, b"partitioned by the test")
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "connection", "content-length", "transfer-encoding")
                }
                headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=1.5)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    proxy.forwarded += 1
                    # Only peer requests (signed, with X-Raft-From) are
                    # worth capturing; the leader's reads of a member's
                    # /api/status pass through here too.
                    if sender and proxy.replay_every and proxy.forwarded % proxy.replay_every == 0:
                        proxy.replay(self.command, self.path, body, headers)
                    self._reply(
                        resp.status, data, resp.getheader("Content-Type") or "application/octet-stream"
                    )
                except OSError:
                    # The request may have reached the node: answer nothing,
                    # so the sender cannot take it for a refusal.
                    self.close_connection = True
                finally:
                    conn.close()

            do_POST = _handle
            do_GET = _handle
            do_PUT = _handle
            do_DELETE = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a sender that gave up (timeout, killed node): nothing to report

        self.server = Server(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name=f"proxy-{dest_id}")

    def start(self) -> None:
        self.thread.start()

    def replay(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.target_port, timeout=1.5)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            self.replays.append(response.status)
        except OSError:
            pass  # the node is paused or down: nothing learnt
        finally:
            conn.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class JepsenCluster(Cluster):
    """Three nodes whose peer URLs all point at :class:`PeerProxy` ports."""

    def __init__(
        self,
        root: Path,
        name: str = "jepsen",
        size: int = 3,
        env: dict[str, str] | None = None,
        replay_every: int = 0,
    ) -> None:
        super().__init__(root, name, size=size, env=env)
        proxy_ports = free_ports(size)
        self.proxies: dict[str, PeerProxy] = {
            nid: PeerProxy(nid, pport, node.port, replay_every)
            for (nid, node), pport in zip(self.nodes.items(), proxy_ports, strict=True)
        }
        self.peers = ",".join(f"{nid}=http://127.0.0.1:{p.port}" for nid, p in self.proxies.items())
        for node in self.nodes.values():
            node.args = ["--peers", self.peers]

    def start(self) -> tuple[str, int]:
        for proxy in self.proxies.values():
            proxy.start()
        return super().start()

    def close(self) -> None:
        try:
            super().close()
        finally:
            for proxy in self.proxies.values():
                with contextlib.suppress(Exception):
                    proxy.close()

    # -- partitions -------------------------------------------------------------

    def client_rewrite(self) -> dict[str, str]:
        """Proxy URL -> the node's own URL, for clients following redirects."""
        return {f"http://127.0.0.1:{p.port}": self.nodes[nid].url for nid, p in self.proxies.items()}

    def isolate(self, node_id: str) -> None:
        """Cut ``node_id`` off from every other node, both ways."""
        others = [nid for nid in self.nodes if nid != node_id]
        self.proxies[node_id].blocked.update(others)
        for nid in others:
            self.proxies[nid].blocked.add(node_id)

    def heal(self) -> None:
        for proxy in self.proxies.values():
            proxy.blocked.clear()

    def heal_all(self) -> None:
        """End every fault: heal partitions, resume paused nodes, restart dead ones."""
        self.heal()
        for node in self.nodes.values():
            if node.running and node.paused:
                node.resume()
            elif not node.running:
                node.start()

    def current_leader(self) -> str | None:
        """The live node saying it is leader with the highest term, if any."""
        best: tuple[int, str] | None = None
        for nid in self.live_ids():
            st = self.status(nid)
            if st is not None and st.get("role") == "leader":
                cand = (int(st["term"]), nid)
                best = cand if best is None or cand > best else best
        return best[1] if best else None


# -- clients ----------------------------------------------------------------------


class History:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ops: list[Operation] = []

    def add(self, op: Operation) -> None:
        with self.lock:
            self.ops.append(op)

    def snapshot(self) -> list[Operation]:
        with self.lock:
            return list(self.ops)


class Client(threading.Thread):
    """Random reads, writes and compare-and-sets on :data:`KEYS` until stopped.

    ``stale_reads``: the deliberately broken read path. Reads are sent with
    ``?consistency=stale`` to a random node, which answers from its own
    state (possibly a lagging follower's) and must be caught by the checker.
    """

    def __init__(
        self,
        cid: int,
        urls: dict[str, str],
        history: History,
        stop: threading.Event,
        seed: int,
        stale_reads: bool = False,
        rewrite: dict[str, str] | None = None,
    ) -> None:
        super().__init__(daemon=True, name=f"client-{cid}")
        #: Redirects name the leader by its peer URL (its proxy): the client
        #: goes to the node itself instead (prefix -> prefix).
        self.rewrite = rewrite or {}
        self.cid = cid
        self.urls = urls
        self.history = history
        self.stop_event = stop
        self.rng = random.Random(seed)
        self.stale_reads = stale_reads
        self.seq = itertools.count()
        self.last_seen: dict[str, str | None] = {}
        #: Why operations did not end ok: (kind, status, reason) -> count.
        self.reasons: dict[tuple[str, str, str], int] = {}
        self.last_reason = ""
        self.http = httpx.Client(timeout=CLIENT_TIMEOUT, trust_env=False, follow_redirects=False)

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                op = self.one_op()
                self.history.add(op)
                if op.status == "fail":
                    self.stop_event.wait(0.05)  # refused at once (no leader, node down): back off a little
        finally:
            self.http.close()

    def _value(self) -> str:
        return f"c{self.cid}-{next(self.seq)}"

    def one_op(self) -> Operation:
        key = self.rng.choice(KEYS)
        kind = self.rng.choices(("read", "write", "cas"), weights=(5, 3, 2))[0]
        if kind == "read":
            return self.call(key, "read", None)
        if kind == "write":
            return self.call(key, "write", self._value())
        expected = self.last_seen.get(key) if self.rng.random() < 0.8 else None
        return self.call(key, "cas", (expected, self._value()))

    def call(self, key: str, kind: str, input_: Any) -> Operation:
        node = self.rng.choice(list(self.urls))
        url = self.urls[node] + kv_path(key)
        invoke = time.monotonic()
        status, output = self._request(url, kind, input_)
        complete = time.monotonic()
        if status != "ok":
            self.reasons[(kind, status, self.last_reason)] = (
                self.reasons.get((kind, status, self.last_reason), 0) + 1
            )
        if status == "ok" and kind == "read":
            self.last_seen[key] = output
        return Operation(self.cid, key, kind, input_, output, invoke, complete, status)  # type: ignore[arg-type]

    def _request(self, url: str, kind: str, input_: Any) -> tuple[str, Any]:
        for hop in range(MAX_REDIRECTS + 1):
            try:
                if kind == "read":
                    params = {"consistency": "stale"} if self.stale_reads else None
                    r = self.http.get(url, params=params)
                elif kind == "write":
                    r = self.http.put(url, json={"value": input_})
                else:
                    expected, new = input_
                    r = self.http.put(url, json={"value": new, "expect": expected})
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                self.last_reason = type(error).__name__
                # Nothing was sent; on the first hop, or after a redirect
                # (the earlier hops did nothing), the operation did not happen.
                return "fail", None
            except httpx.HTTPError as error:
                self.last_reason = type(error).__name__
                return "info", None
            code = r.status_code
            self.last_reason = f"{code} {r.text[:80]}"
            if code == 307 and hop < MAX_REDIRECTS:
                url = r.headers.get("Location", "")
                if not url:
                    return "fail", None
                for old, new in self.rewrite.items():
                    if url.startswith(old + "/"):
                        url = new + url[len(old) :]
                        break
                continue
            if code == 307:
                return "fail", None
            body = _json(r)
            if code == 200:
                if kind == "read":
                    return "ok", body.get("value")
                return "ok", (True if kind == "cas" else None)
            if code == 409 and kind == "cas":
                return "ok", False
            if code == 404 and kind == "read":
                return "ok", None
            if code == 503:
                return ("info", None) if body.get("indeterminate") else ("fail", None)
            if 400 <= code < 500:
                return "fail", None
            return "info", None
        return "fail", None


def _json(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# -- the nemesis ------------------------------------------------------------------

FAULTS = ("pause_leader", "kill_leader", "pause_follower", "partition")
FOLLOWER_FAULTS = ("pause_follower", "partition_follower")


def seed_from_env() -> int:
    raw = os.environ.get("JEPSEN_SEED")
    return int(raw) if raw else random.SystemRandom().randrange(2**32)


class Nemesis(threading.Thread):
    """Every ~2-3 s, one fault from ``faults``, drawn from ``Random(seed)``."""

    def __init__(
        self, cluster: JepsenCluster, seed: int, stop: threading.Event, faults: Iterable[str] = FAULTS
    ) -> None:
        super().__init__(daemon=True, name="nemesis")
        self.cluster = cluster
        self.rng = random.Random(seed)
        self.stop_event = stop
        self.faults = tuple(faults)
        self.log: list[str] = []
        self.error: BaseException | None = None

    def _sleep(self, seconds: float) -> None:
        self.stop_event.wait(seconds)

    def _note(self, text: str) -> None:
        self.log.append(text)
        print(f"[nemesis {time.strftime('%H:%M:%S')}] {text}", flush=True)

    def _pick(self, want_leader: bool) -> str:
        # The role is observed; the choice among candidates is the RNG's.
        ids = sorted(self.cluster.nodes)
        leader = self.cluster.current_leader()
        if want_leader:
            return leader if leader is not None else self.rng.choice(ids)
        followers = [nid for nid in ids if nid != leader]
        return self.rng.choice(followers)

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                self._sleep(self.rng.uniform(0.8, 1.5))
                if self.stop_event.is_set():
                    break
                self.inject(self.rng.choice(self.faults))
        except BaseException as error:  # reported by the test
            self.error = error
        finally:
            self.cluster.heal_all()

    def inject(self, fault: str) -> None:
        c = self.cluster
        hold = self.rng.uniform(1.0, 2.0)
        if fault in ("pause_leader", "pause_follower"):
            nid = self._pick(fault == "pause_leader")
            self._note(f"{fault}: SIGSTOP {nid} for {hold:.1f}s")
            c[nid].pause()
            self._sleep(hold)
            c[nid].resume()
        elif fault == "kill_leader":
            nid = self._pick(True)
            self._note(f"kill_leader: SIGKILL {nid}, restart after {hold / 2:.1f}s")
            c[nid].kill()
            self._sleep(hold / 2)
            c[nid].start()
        elif fault in ("partition", "partition_follower"):
            nid = self._pick(False) if fault == "partition_follower" else self.rng.choice(sorted(c.nodes))
            hold += 0.5
            self._note(f"{fault}: isolate {nid} for {hold:.1f}s")
            c.isolate(nid)
            self._sleep(hold)
            c.heal()
        else:
            raise ValueError(fault)
        self._note(f"{fault}: healed")


# -- a watcher ----------------------------------------------------------------------

#: A watch that sends nothing for this long (its keep-alive comment comes
#: every 5 s) is taken for a paused or cut-off node, and the watcher moves on.
WATCH_SILENCE_S = 7.0


class Watcher(threading.Thread):
    """Watches every key from revision 1 while the nemesis works, as a
    client would: on any error, end of stream or silence it reconnects to
    a random node with ``Last-Event-ID``, and it also hangs up by itself
    every few seconds, so that resuming is exercised on every node. What it
    received is checked as one stream (:func:`raft_trio.testing.check_watch`)."""

    def __init__(self, urls: dict[str, str], stop: threading.Event, seed: int) -> None:
        super().__init__(daemon=True, name="watcher")
        self.urls = urls
        self.stop_event = stop
        self.rng = random.Random(seed)
        self.changes: list[WatchedChange] = []
        self.connections = 0
        self.refusals: list[str] = []
        self._lock = threading.Lock()

    def received(self) -> list[WatchedChange]:
        with self._lock:
            return list(self.changes)

    def last_id(self) -> int | None:
        with self._lock:
            return self.changes[-1].revision if self.changes else None

    def run(self) -> None:
        timeout = httpx.Timeout(WATCH_SILENCE_S, connect=0.5)
        with httpx.Client(timeout=timeout, trust_env=False) as http:
            while not self.stop_event.is_set():
                node = self.rng.choice(sorted(self.urls))
                last = self.last_id()
                headers = {"Last-Event-ID": str(last)} if last is not None else {}
                params = {} if last is not None else {"start_revision": "1"}
                with contextlib.suppress(httpx.HTTPError):
                    self._follow(http, self.urls[node] + "/api/watch", params, headers)
                self.stop_event.wait(0.1)

    def _follow(self, http: httpx.Client, url: str, params: dict[str, str], headers: dict[str, str]) -> None:
        with http.stream("GET", url, params=params, headers=headers) as r:
            if r.status_code != 200:
                self.refusals.append(f"{r.status_code} {r.read()[:120]!r}")
                return
            self.connections += 1
            hang_up_at = time.monotonic() + self.rng.uniform(1.0, 4.0)
            event_id: int | None = None
            name, data = "message", ""
            for line in r.iter_lines():
                if self.stop_event.is_set():
                    return
                if line == "":
                    if data and name in ("put", "delete") and event_id is not None:
                        payload = json.loads(data)
                        change = WatchedChange(
                            event_id, name, payload["key"], payload.get("value"), payload["version"]
                        )
                        with self._lock:
                            self.changes.append(change)
                    elif name == "error":
                        self.refusals.append(data)
                        return
                    name, data = "message", ""
                    if time.monotonic() > hang_up_at:
                        return  # between two events: nothing half-received
                elif not line.startswith(":"):
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if field == "id":
                        event_id = int(value)
                    elif field == "event":
                        name = value
                    elif field == "data":
                        data += value


# -- running a workload -----------------------------------------------------------


def final_reads(cluster: JepsenCluster, history: History, timeout: float = 20.0) -> None:
    """After healing: one linearizable read per key, retried until ok, recorded."""
    urls = {nid: n.url for nid, n in cluster.nodes.items()}
    reader = Client(-1, urls, history, threading.Event(), seed=0, rewrite=cluster.client_rewrite())
    try:
        for key in KEYS:
            deadline = time.monotonic() + timeout
            while True:
                op = reader.call(key, "read", None)
                if op.status == "ok":
                    history.add(
                        Operation("final", key, "read", None, op.output, op.invoke, op.complete, "ok")
                    )
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"no final read of {key!r} within {timeout:.0f}s")
                time.sleep(0.1)
    finally:
        reader.http.close()


def last_change(cluster: JepsenCluster, timeout: float = 20.0) -> int:
    """The revision of the last change to any key: a linearizable range
    read through whichever node answers, following the leader."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=CLIENT_TIMEOUT, trust_env=False, follow_redirects=False) as http:
        while True:
            for node in cluster.nodes.values():
                try:
                    r = http.get(node.url + "/api/kv")
                except httpx.HTTPError:
                    continue
                if r.status_code == 200:
                    return max((kv["mod_revision"] for kv in r.json()["kvs"]), default=0)
            if time.monotonic() > deadline:
                raise AssertionError(f"no linearizable range read within {timeout:.0f}s")
            time.sleep(0.1)


def summarize(ops: list[Operation]) -> str:
    counts: dict[str, int] = {}
    for op in ops:
        counts[f"{op.kind}:{op.status}"] = counts.get(f"{op.kind}:{op.status}", 0) + 1
    by_status = {s: sum(op.status == s for op in ops) for s in ("ok", "fail", "info")}
    detail = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    return f"{len(ops)} ops; by outcome {by_status}; {detail}"
