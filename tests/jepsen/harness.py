"""A Jepsen-style harness for raft-trio: a 3-node cluster of real processes
whose peer traffic goes through proxies the test controls, concurrent
clients that record every operation, and a seeded nemesis.

- :class:`PeerProxy`: one small threaded TCP proxy per destination node.
  Every node's ``--peers`` URL for node X is X's proxy, which forwards to
  X's real ``--listen`` port (streams included), answers 503 (forwarding
  nothing) to a connection whose ``X-Raft-From`` sender is in its
  ``blocked`` set, and cuts the connections of a sender once it is blocked.
  Blocking both directions between X and everyone else isolates X (a
  partition that breaks the streams crossing it).
- :class:`JepsenCluster`: the integration tests' :class:`Cluster` with its
  peers rewritten to go through the proxies; clients still talk to the
  nodes' own ports.
- :class:`Client`: a thread doing random reads, writes and compare-and-sets
  on a few keys, following 307s itself, recording an
  :class:`~raft_trio.testing.Operation` per call with ``ok``/``fail``/``info``.
- :class:`Nemesis`: a thread injecting one fault every few seconds from a
  schedule drawn from a seeded RNG (``JEPSEN_SEED`` replays it).

``JepsenCluster(auth=True)`` runs the same with auth on (users, logins and
an intruder: :mod:`.auth_on`); every client of the run, the harness's own
status and final reads included, then proves its user.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from raft_trio.testing import Operation, WatchedChange

from ..integration.cluster import Cluster, free_ports, kv_path
from .auth_on import TOKEN_TTL_S, RunUsers, turn_on

FROM_HEADER = "X-Raft-From"
KEYS = ("k0", "k1", "k2")
CLIENT_TIMEOUT = httpx.Timeout(1.5, connect=0.5)
MAX_REDIRECTS = 3


# -- the peer proxies -------------------------------------------------------------

#: The largest request head the proxy reads before it knows the sender.
MAX_HEAD_BYTES = 64 * 1024
#: Bytes of a forwarded request kept for a replay: a stream's opening and
#: first frames, or a whole snapshot request (larger ones are not replayed).
REPLAY_CAPTURE_BYTES = 4 * 1024 * 1024
#: Only peer requests (a stream's opening, a batch) are replayed: other
#: calls through the peer URLs are plain reads that anyone may repeat.
PEER_REQUEST_LINES = (b"GET /raft/stream ", b"POST /raft/")
#: How long a replay waits after the node is seen running.
REPLAY_DELAY_S = 0.5


class _Link:
    """One forwarded connection: the sender's socket and the node's."""

    def __init__(self, sender: str, client: socket.socket, upstream: socket.socket) -> None:
        self.sender = sender
        self.client = client
        self.upstream = upstream
        self.ended = threading.Event()
        #: Whether the node certainly read the connection's first request:
        #: it answered on it, or the connection was still open with the
        #: node running and not paused ``REPLAY_DELAY_S`` after it went in.
        #: A request the node never read (it sat in the socket buffer of a
        #: paused node when the connection was reset) is not replayed: its
        #: late first delivery is no replay, and no signature can tell.
        self.delivered = False

    def watch_delivery(self, node_up: Callable[[], bool]) -> None:
        if node_up() and not self.ended.wait(REPLAY_DELAY_S) and node_up():
            self.delivered = True

    def cut(self) -> None:
        self.ended.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class PeerProxy:
    """Forwards every connection arriving on ``port`` to ``127.0.0.1:target_port``,
    byte for byte both ways (a peer's long-lived stream and its snapshot
    requests alike), once it has read the head of the connection's first
    request and learnt the sender from ``X-Raft-From`` (a connection carries
    one node's requests). A connection from a sender in ``blocked`` is
    answered 503 and closed, forwarding nothing; :meth:`cut_blocked` closes
    those already forwarded: a partition cuts the streams it crosses.

    With ``replay_every`` N, the first request of every Nth forwarded
    connection, if it is a peer request (its head and what it sent of its
    body), is sent to the node again once the connection has ended, as an
    attacker who captured it would; the statuses of these replays are kept in ``replays`` (with a
    cluster secret each must be a 401; 0 stands for a replay taken without a
    refusal). A replay waits until ``node_up()`` says the node runs and is
    not paused, and a moment more: the node has then read whatever of the
    original was waiting in its socket buffers, so the replay comes second.
    """

    def __init__(
        self,
        dest_id: str,
        port: int,
        target_port: int,
        replay_every: int = 0,
        node_up: Callable[[], bool] = lambda: True,
    ) -> None:
        self.dest_id = dest_id
        self.port = port
        self.target_port = target_port
        self.blocked: set[str] = set()
        self.forwarded = 0
        self.dropped = 0
        self.replay_every = replay_every
        self.replays: list[int] = []
        self._node_up = node_up
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._closed = False
        self._listener = socket.create_server(("127.0.0.1", port))
        self.thread = threading.Thread(target=self._accept, daemon=True, name=f"proxy-{dest_id}")

    def start(self) -> None:
        self.thread.start()

    def cut_blocked(self) -> None:
        """Close every forwarded connection whose sender is now blocked."""
        with self._lock:
            cut = [link for link in self._links if link.sender in self.blocked]
        for link in cut:
            link.cut()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            link.cut()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = _read_head(client)
            if head is None:
                return
            sender = _header(head, FROM_HEADER) or ""
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=1.5)
            except OSError:
                return  # the node is down: the sender sees its connection closed
            upstream.settimeout(None)
            link = _Link(sender, client, upstream)
            replay = False
            with self._lock:
                if sender in self.blocked:
                    refuse = True
                else:
                    refuse = False
                    self._links.add(link)
                    self.forwarded += 1
                    replay = (
                        bool(self.replay_every)
                        and self.forwarded % self.replay_every == 0
                        and head.startswith(PEER_REQUEST_LINES)
                    )
            with upstream:
                if refuse:
                    self.dropped += 1
                    body = b"partitioned by the test"
                    with contextlib.suppress(OSError):
                        client.sendall(
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                        )
                    return
                captured = bytearray(head)
                try:
                    upstream.sendall(head)
                except OSError:
                    link.cut()
                    captured.clear()
                answer = bytearray()
                back = threading.Thread(target=_pump, args=(upstream, client, answer), daemon=True)
                back.start()
                if replay:
                    threading.Thread(target=link.watch_delivery, args=(self._node_up,), daemon=True).start()
                _pump(client, upstream, captured if replay else None)
                link.cut()
                back.join()
            with self._lock:
                self._links.discard(link)
        if replay and (link.delivered or answer):
            self._replay(bytes(captured))

    def _replay(self, captured: bytes) -> None:
        length = _header(captured, "Content-Length")
        head_end = captured.index(b"\r\n\r\n") + 4
        if length is not None and len(captured) - head_end < int(length):
            return  # not all of the body was captured: nothing to replay
        deadline = time.monotonic() + 10
        while not self._node_up():
            if self._closed or time.monotonic() > deadline:
                return
            time.sleep(0.1)
        time.sleep(REPLAY_DELAY_S)
        try:
            conn = socket.create_connection(("127.0.0.1", self.target_port), timeout=1.5)
        except OSError:
            return  # the node is down: nothing learnt
        with conn:
            # The head first: a stream's opening is judged on its head alone,
            # and a refusal then comes at once. Sending the frames behind it
            # unasked would leave them unread when the node closes, and its
            # reset could destroy the refusal before it is read.
            answer = b""
            try:
                conn.sendall(captured[:head_end])
                conn.settimeout(1.0)
                with contextlib.suppress(TimeoutError):
                    answer = conn.recv(4096)
                conn.settimeout(1.5)
                if not answer:
                    conn.sendall(captured[head_end:])
                    conn.shutdown(socket.SHUT_WR)
                while b"\r\n" not in answer:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
            except TimeoutError:
                return  # the node is paused: nothing learnt
            except OSError:
                pass
        status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.1 ") else b"0"
        self.replays.append(int(status))


def _read_head(sock: socket.socket) -> bytes | None:
    """The bytes up to the end of the first request head (and whatever of
    the body came with them), or None if the connection ends first."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD_BYTES:
            return None
        try:
            chunk = sock.recv(65536)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


def _header(head: bytes, name: str) -> str | None:
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    for line in lines:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower().encode():
            return value.strip().decode("latin-1")
    return None


def _pump(source: socket.socket, sink: socket.socket, capture: bytearray | None) -> None:
    """Copies ``source`` to ``sink`` until either ends, then ends both
    directions, keeping up to REPLAY_CAPTURE_BYTES in ``capture``."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
            if capture is not None and len(capture) < REPLAY_CAPTURE_BYTES:
                capture += data[: REPLAY_CAPTURE_BYTES - len(capture)]
    except OSError:
        pass
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _up(node: Any) -> bool:
    return bool(node.running and not node.paused)


class JepsenCluster(Cluster):
    """Three nodes whose peer URLs all point at :class:`PeerProxy` ports.

    ``auth``: once a leader is up, :meth:`start` makes the run's users and
    enables auth (:func:`.auth_on.turn_on`); :attr:`users` then holds their
    credentials, and the cluster's own requests (status, leader) go as
    ``root``. Tokens last :data:`.auth_on.TOKEN_TTL_S`. A cluster with auth
    needs a cluster secret (the nodes read each other's status with it)."""

    def __init__(
        self,
        root: Path,
        name: str = "jepsen",
        size: int = 3,
        env: dict[str, str] | None = None,
        replay_every: int = 0,
        auth: bool = False,
    ) -> None:
        if auth:
            assert env is not None and env.get("RAFT_CLUSTER_SECRET"), "auth needs a cluster secret"
            env = {**env, "RAFT_AUTH_TOKEN_TTL": str(TOKEN_TTL_S)}
        super().__init__(root, name, size=size, env=env)
        self.auth = auth
        self.users: RunUsers | None = None
        proxy_ports = free_ports(size)
        self.proxies: dict[str, PeerProxy] = {
            nid: PeerProxy(nid, pport, node.port, replay_every, partial(_up, node))
            for (nid, node), pport in zip(self.nodes.items(), proxy_ports, strict=True)
        }
        self.peers = ",".join(f"{nid}=http://127.0.0.1:{p.port}" for nid, p in self.proxies.items())
        for node in self.nodes.values():
            node.args = ["--peers", self.peers]

    def start(self) -> tuple[str, int]:
        for proxy in self.proxies.values():
            proxy.start()
        leader = super().start()
        if self.auth:
            self.users = turn_on([n.url for n in self.nodes.values()])
            self.authenticate(self.users.root)
        return leader

    def close(self) -> None:
        try:
            super().close()
        finally:
            for proxy in self.proxies.values():
                with contextlib.suppress(Exception):
                    proxy.close()
            if self.users is not None:
                self.users.close()

    # -- partitions -------------------------------------------------------------

    def client_rewrite(self) -> dict[str, str]:
        """Proxy URL -> the node's own URL, for clients following redirects."""
        return {f"http://127.0.0.1:{p.port}": self.nodes[nid].url for nid, p in self.proxies.items()}

    def isolate(self, node_id: str) -> None:
        """Cut ``node_id`` off from every other node, both ways: the streams
        between them break at once, and new ones are refused."""
        others = [nid for nid in self.nodes if nid != node_id]
        self.proxies[node_id].blocked.update(others)
        for nid in others:
            self.proxies[nid].blocked.add(node_id)
        for proxy in self.proxies.values():
            proxy.cut_blocked()

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
        auth: httpx.Auth | None = None,
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
        #: ``auth``: who the client is (a token, logged in again after a 401).
        self.http = httpx.Client(timeout=CLIENT_TIMEOUT, trust_env=False, follow_redirects=False, auth=auth)

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
#: Faults that end the peers' connections (a pause only stalls them).
CUTTING = ("kill_leader", "partition", "partition_follower")


def seed_from_env() -> int:
    raw = os.environ.get("JEPSEN_SEED")
    return int(raw) if raw else random.SystemRandom().randrange(2**32)


class Nemesis(threading.Thread):
    """Every ~2-3 s, one fault from ``faults``, drawn from ``Random(seed)``;
    the first one among those that end connections, where ``faults`` has
    any: with pauses alone no peer connection ended, so the proxies had
    nothing to replay (one short run in sixteen drew four pauses)."""

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
        cutting = [fault for fault in self.faults if fault in CUTTING]
        try:
            while not self.stop_event.is_set():
                self._sleep(self.rng.uniform(0.8, 1.5))
                if self.stop_event.is_set():
                    break
                first = not self.log
                self.inject(self.rng.choice(cutting if first and cutting else self.faults))
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
    received is checked as one stream (:func:`raft_trio.testing.check_watch`).
    ``prefix``: only the keys under it (a user may read no more); ``auth``:
    who the watcher is."""

    def __init__(
        self,
        urls: dict[str, str],
        stop: threading.Event,
        seed: int,
        prefix: str | None = None,
        auth: httpx.Auth | None = None,
    ) -> None:
        super().__init__(daemon=True, name="watcher")
        self.urls = urls
        self.prefix = prefix
        self.auth = auth
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
        with httpx.Client(timeout=timeout, trust_env=False, auth=self.auth) as http:
            while not self.stop_event.is_set():
                node = self.rng.choice(sorted(self.urls))
                last = self.last_id()
                headers = {"Last-Event-ID": str(last)} if last is not None else {}
                params = {} if last is not None else {"start_revision": "1"}
                if self.prefix is not None:
                    params["prefix"] = self.prefix
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
    auth = cluster.users.workload if cluster.users is not None else None
    reader = Client(-1, urls, history, threading.Event(), seed=0, rewrite=cluster.client_rewrite(), auth=auth)
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
    auth = cluster.users.root if cluster.users is not None else None
    with httpx.Client(timeout=CLIENT_TIMEOUT, trust_env=False, follow_redirects=False, auth=auth) as http:
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
