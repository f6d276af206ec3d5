"""Real node processes for the integration tests: start, signal, restart and
stop them, ask them for their status, and wait for them, every wait bounded.

Nodes run as ``python -m raft_trio.cli node`` in their own session (so a
signal sent to the test run does not reach them and each can be signalled
as a group), with output in a log file per node. Nothing here touches a
process it did not start.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

#: Short timings, so that elections take well under a second.
NODE_ENV = {
    "ELECTION_TIMEOUT_LOWER_MILLIS": "300",
    "ELECTION_TIMEOUT_UPPER_MILLIS": "600",
    "HEARTBEAT_REPEAT_MILLIS": "50",
    "LOGGING": "INFO",
}
ELECTION_TIMEOUT_MAX_S = 0.6
#: Variables that would change what the tests assume (the /api prefix at the
#: root, static peers, no payload scripts, the default snapshot threshold).
ENV_DROP = (
    "API_PREFIX",
    "ROOT_PATH",
    "APP_NAME",
    "SCRIPT_LEADER_PATH",
    "SCRIPT_FOLLOWER_PATH",
    "RAFT_SNAPSHOT_ENTRIES",
)

POLL_S = 0.05
START_S = 20.0  # first leader of a fresh cluster (three interpreters start on 2 cores)
ELECTION_S = 10.0  # a new leader after a failure
CATCH_UP_S = 15.0
KILL_WAIT_S = 10.0
LOG_TAIL_LINES = 40

HTTP_TIMEOUT = httpx.Timeout(10.0, connect=2.0)
STATUS_TIMEOUT = httpx.Timeout(1.0, connect=0.5)

NODE_COMMAND = [sys.executable, "-m", "raft_trio.cli"]

T = TypeVar("T")


def cli_command() -> list[str]:
    """The installed console script (next to this interpreter), else the module."""
    script = Path(sys.executable).with_name("raft-trio")
    if script.exists():
        return [str(script)]
    return NODE_COMMAND


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out for port 0, all bound at once so they differ."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_until(check: Callable[[], tuple[bool, T]], timeout: float, what: str, poll: float = POLL_S) -> T:
    """Poll ``check`` (returning ``(done, detail)``) until done; on timeout fail
    with ``what`` and the last detail seen."""
    deadline = time.monotonic() + timeout
    while True:
        done, detail = check()
        if done:
            return detail
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}; last seen: {detail!r}")
        time.sleep(poll)


def kv_path(key: str) -> str:
    return "/api/kv/" + quote(key, safe="/")


def json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def as_written(body: Any) -> Any:
    """The key, value and index of an answer about a key (which carries
    its revisions and version too; tests/integration/test_coordination.py
    checks those)."""
    if not isinstance(body, dict):
        return body
    return {name: body.get(name) for name in ("key", "value", "index")}


def describe(response: httpx.Response) -> str:
    return (
        f"{response.request.method} {response.request.url} -> {response.status_code} {response.text[:300]!r}"
    )


class Node:
    def __init__(
        self, node_id: str, port: int, root: Path, args: list[str], env: dict[str, str], scheme: str = "http"
    ) -> None:
        self.id = node_id
        self.scheme = scheme
        self.port = port
        self.data_dir = root / node_id
        self.log_path = root / f"{node_id}.log"
        self.args = args
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        assert not self.running, f"{self.id} is already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            *NODE_COMMAND,
            "node",
            "--id",
            self.id,
            "--listen",
            f"127.0.0.1:{self.port}",
            "--data-dir",
            str(self.data_dir),
            *self.args,
        ]
        with open(self.log_path, "ab") as log:
            log.write(f"=== test: starting {shlex.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        self.paused = False

    def note(self, text: str) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"=== test: {text}\n".encode())

    def send(self, sig: signal.Signals) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"{self.id} is not running"
        self.note(f"sending {sig.name} to pid {self.proc.pid}")
        os.kill(self.proc.pid, sig)

    def pause(self) -> None:
        self.send(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.send(signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        """SIGKILL the node's process group (a stopped process dies too) and reap it."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            self.note(f"sending SIGKILL to the process group {proc.pid}")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        try:
            proc.wait(timeout=KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=KILL_WAIT_S)
        self.paused = False

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait for the exit; the exit status."""
        assert self.proc is not None
        self.send(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        try:
            text = self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def log_text(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""


class Cluster:
    """A set of nodes started with static ``--peers`` (more may join later),
    and HTTP clients to talk to them."""

    def __init__(
        self,
        root: Path,
        name: str,
        size: int = 3,
        env: dict[str, str] | None = None,
        *,
        scheme: str = "http",
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """``scheme`` and ``verify``: for nodes serving HTTPS (the env
        names their certificate), and the CA the test clients trust."""
        self.root = root
        self.name = name
        root.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
        self.env.update(NODE_ENV)
        self.env.update(env or {})
        ports = free_ports(size)
        ids = [f"n{i + 1}" for i in range(size)]
        self.scheme = scheme
        self.peers = ",".join(
            f"{nid}={scheme}://127.0.0.1:{port}" for nid, port in zip(ids, ports, strict=True)
        )
        self.nodes: dict[str, Node] = {
            nid: Node(nid, port, root, ["--peers", self.peers], self.env, scheme)
            for nid, port in zip(ids, ports, strict=True)
        }
        self.http = httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False, verify=verify)
        self.follow = httpx.Client(
            timeout=HTTP_TIMEOUT, trust_env=False, follow_redirects=True, verify=verify
        )
        self._status_client = httpx.Client(timeout=STATUS_TIMEOUT, trust_env=False, verify=verify)

    def authenticate(self, auth: httpx.Auth) -> None:
        """Send ``auth`` with the test's own requests (status, key-value)
        from now on: the cluster turned auth on."""
        for client in (self.http, self.follow, self._status_client):
            client.auth = auth

    # -- processes ------------------------------------------------------------

    def start(self) -> tuple[str, int]:
        for node in self.nodes.values():
            node.start()
        try:
            return self.wait_for_leader(timeout=START_S)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.tails()}") from None

    def add_node(self, node_id: str, args: list[str]) -> Node:
        (port,) = free_ports(1)
        node = Node(node_id, port, self.root, args, self.env, self.scheme)
        self.nodes[node_id] = node
        node.start()
        return node

    def close(self) -> None:
        """Kill every process of the cluster, whatever state it is in."""
        try:
            for node in self.nodes.values():
                node.kill()
        finally:
            self.http.close()
            self.follow.close()
            self._status_client.close()

    def crashed(self) -> list[str]:
        return [
            f"{n.id} exited with status {n.proc.returncode}"
            for n in self.nodes.values()
            if n.proc is not None and n.proc.poll() is not None and n.proc.returncode != -signal.SIGKILL
        ]

    def tails(self, lines: int = LOG_TAIL_LINES) -> str:
        out = []
        for node in self.nodes.values():
            out.append(f"---- last {lines} lines of {node.log_path} ----")
            out.extend("    " + line[:400] for line in node.log_tail(lines))
        return "\n".join(out)

    # -- status ---------------------------------------------------------------

    def __getitem__(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def live_ids(self) -> list[str]:
        """Nodes running and not paused."""
        return [n.id for n in self.nodes.values() if n.running and not n.paused]

    def status(self, node_id: str) -> dict[str, Any] | None:
        try:
            r = self._status_client.get(self.nodes[node_id].url + "/api/status")
        except httpx.HTTPError:
            return None
        body = json_of(r)
        return body if r.status_code == 200 and isinstance(body, dict) else None

    def statuses(self, ids: Iterable[str] | None = None) -> dict[str, dict[str, Any] | None]:
        return {nid: self.status(nid) for nid in (self.live_ids() if ids is None else ids)}

    def agreed_leader(self, ids: Iterable[str] | None = None, min_term: int = 0) -> tuple[bool, Any]:
        """(True, (leader id, term)) when every node of ``ids`` answers, exactly
        one says leader, all agree on leader_id and term, and term >= min_term."""
        sts = self.statuses(ids)
        missing = [nid for nid, st in sts.items() if st is None]
        if missing:
            return False, f"no status from {missing}"
        seen = {nid: (st["role"], st["term"], st["leader_id"]) for nid, st in sts.items() if st is not None}
        leaders = [nid for nid, (role, _, _) in seen.items() if role == "leader"]
        if len(leaders) != 1:
            return False, seen
        lid = leaders[0]
        term = seen[lid][1]
        if any(t != term or leader != lid for _, t, leader in seen.values()) or term < min_term:
            return False, seen
        return True, (lid, term)

    def wait_for_leader(
        self, ids: Iterable[str] | None = None, min_term: int = 0, timeout: float = ELECTION_S
    ) -> tuple[str, int]:
        id_list = list(ids) if ids is not None else None
        lid, term = wait_until(
            lambda: self.agreed_leader(id_list, min_term),
            timeout,
            f"one leader agreed on by {id_list or self.live_ids()} (term >= {min_term})",
        )
        return lid, term

    def leader(self) -> Node:
        lid, _ = self.wait_for_leader()
        return self.nodes[lid]

    def readiness(self, node_id: str) -> tuple[int, Any]:
        """(status, body) of ``GET /readyz``; (0, error) if it does not answer."""
        try:
            r = self._status_client.get(self.nodes[node_id].url + "/readyz")
        except httpx.HTTPError as error:
            return 0, f"{type(error).__name__}: {error}"
        return r.status_code, json_of(r)

    def wait_ready(self, node_id: str, timeout: float = CATCH_UP_S) -> dict[str, Any]:
        """Until ``node_id`` answers ``/readyz`` with 200 (caught up with a live leader)."""

        def check() -> tuple[bool, Any]:
            status, body = self.readiness(node_id)
            return status == 200, (status, body)

        _, body = wait_until(check, timeout, f"{node_id} to be ready (/readyz 200)")
        result: dict[str, Any] = body
        return result

    def wait_caught_up(self, node_id: str, index: int, timeout: float = CATCH_UP_S) -> dict[str, Any]:
        """Until ``node_id`` has committed and applied ``index``."""

        def check() -> tuple[bool, Any]:
            st = self.status(node_id)
            if st is None:
                return False, "no status"
            ok = st["commit_index"] >= index and st["applied_index"] >= index
            return ok, st

        result: dict[str, Any] = wait_until(check, timeout, f"{node_id} to commit and apply index {index}")
        return result

    # -- key-value ------------------------------------------------------------

    def kv_url(self, node_id: str, key: str) -> str:
        return self.nodes[node_id].url + kv_path(key)

    def put(self, node_id: str, key: str, value: str, **kwargs: Any) -> httpx.Response:
        return self.http.put(self.kv_url(node_id, key), json={"value": value}, **kwargs)

    def get(self, node_id: str, key: str, stale: bool = False) -> httpx.Response:
        params = {"consistency": "stale"} if stale else None
        return self.http.get(self.kv_url(node_id, key), params=params)

    def write(
        self, key: str, value: str, timeout: float = ELECTION_S, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """PUT through whichever live node answers, following redirects,
        retrying 503 and connection errors until a 200 within ``timeout``
        (meant for setting up state, where an unknown outcome is retried)."""
        last: str = "nothing tried"
        deadline = time.monotonic() + timeout
        while True:
            for nid in self.live_ids():
                try:
                    r = self.follow.put(self.kv_url(nid, key), json={"value": value}, headers=headers)
                except httpx.HTTPError as error:
                    last = f"{nid}: {type(error).__name__}: {error}"
                    continue
                if r.status_code == 200:
                    body: dict[str, Any] = r.json()
                    assert body["value"] == value, describe(r)
                    return body
                last = describe(r)
                if r.status_code != 503:
                    raise AssertionError(f"write of {key!r} refused: {last}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"no 200 for a write of {key!r} within {timeout:.0f} s; last: {last}")
            time.sleep(POLL_S)

    def write_many(self, node_id: str, items: list[tuple[str, str]], threads: int = 4) -> dict[str, int]:
        """PUT every (key, value) to ``node_id`` (the leader) from a few
        threads at once; every one must answer 200. key -> index."""
        results: dict[str, int] = {}
        errors: list[str] = []
        lock = threading.Lock()
        chunks = [items[i::threads] for i in range(threads)]

        def worker(chunk: list[tuple[str, str]]) -> None:
            with httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False) as client:
                for key, value in chunk:
                    try:
                        r = client.put(self.kv_url(node_id, key), json={"value": value})
                    except httpx.HTTPError as error:
                        with lock:
                            errors.append(f"{key}: {type(error).__name__}: {error}")
                        continue
                    with lock:
                        if r.status_code == 200:
                            results[key] = r.json()["index"]
                        else:
                            errors.append(describe(r))

        workers = [threading.Thread(target=worker, args=(chunk,), daemon=True) for chunk in chunks]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=120)
        assert not any(w.is_alive() for w in workers), "writer threads did not finish within 120 s"
        assert not errors, f"{len(errors)} of {len(items)} writes failed, e.g. {errors[:3]}"
        return results


class SSEReader(threading.Thread):
    """Reads ``GET /api/events`` in the background into a queue of (name, data)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.connected = threading.Event()
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=30.0), trust_env=False)

    def run(self) -> None:
        try:
            with self._client.stream("GET", self.url, headers={"Accept": "text/event-stream"}) as r:
                self.connected.set()
                name, data = "message", list[str]()
                for line in r.iter_lines():
                    if self._halt.is_set():
                        return
                    if line == "":
                        if data:
                            try:
                                payload = json.loads("\n".join(data))
                            except ValueError:
                                payload = "\n".join(data)
                            self.events.put((name, payload))
                        name, data = "message", []
                    elif line.startswith(":"):
                        continue
                    else:
                        field, _, value = line.partition(":")
                        value = value.removeprefix(" ")
                        if field == "event":
                            name = value
                        elif field == "data":
                            data.append(value)
        except BaseException as error:
            if not self._halt.is_set():
                self.error = error
        finally:
            self.connected.set()

    def drain(self) -> list[tuple[str, Any]]:
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def stop(self) -> None:
        """The stream carries a keep-alive comment every second, so the
        reading loop sees the flag soon; the client is closed after it."""
        self._halt.set()
        self.join(timeout=5)
        with contextlib.suppress(Exception):
            self._client.close()
        self.join(timeout=5)
