"""Real node processes for the integration tests: the launcher's
:class:`~raft_trio.testing.processes.NodeCluster` with short timings, and
HTTP clients to ask the nodes and write to them, every wait bounded.

Starting, signalling, restarting and stopping the processes is
raft_trio.testing.processes's; what is here is what the tests say to the
nodes once they run.
"""

from __future__ import annotations

import contextlib
import json
import queue
import ssl
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from raft_trio.testing.processes import (
    ELECTION_S,
    FAST_ELECTION_MAX_S,
    FAST_TIMING,
    NodeCluster,
    NodeProcess,
    cli_command,
    free_ports,
    inherited_env,
)
from raft_trio.testing.waiting import POLL_S, wait_until

__all__ = [
    "CATCH_UP_S",
    "ELECTION_S",
    "ELECTION_TIMEOUT_MAX_S",
    "HTTP_TIMEOUT",
    "STATUS_TIMEOUT",
    "Cluster",
    "Node",
    "SSEReader",
    "as_written",
    "cli_command",
    "describe",
    "free_ports",
    "json_of",
    "kv_path",
    "wait_until",
]

#: Short timings, so that elections take well under a second.
NODE_ENV = {**FAST_TIMING, "LOGGING": "INFO"}
ELECTION_TIMEOUT_MAX_S = FAST_ELECTION_MAX_S
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

CATCH_UP_S = 15.0

HTTP_TIMEOUT = httpx.Timeout(10.0, connect=2.0)
STATUS_TIMEOUT = httpx.Timeout(1.0, connect=0.5)

#: A node of a cluster (the launcher's).
Node = NodeProcess


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


class Cluster(NodeCluster):
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
        """``env``: on top of this process's environment and the short
        timings. ``scheme`` and ``verify``: for nodes serving HTTPS (the
        env names their certificate), and the CA the test clients trust."""
        self.name = name
        full_env = inherited_env(drop=ENV_DROP, extra={**NODE_ENV, **(env or {})})
        super().__init__(root, size, full_env, scheme=scheme, verify=verify)
        self.http = httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False, verify=verify)
        self.follow = httpx.Client(
            timeout=HTTP_TIMEOUT, trust_env=False, follow_redirects=True, verify=verify
        )
        self._status_client = httpx.Client(timeout=STATUS_TIMEOUT, trust_env=False, verify=verify)

    def authenticate(self, auth: httpx.Auth) -> None:
        """Send ``auth`` with the test's own requests (status, key-value)
        from now on: the cluster turned auth on."""
        super().authenticate(auth)
        for client in (self.http, self.follow, self._status_client):
            client.auth = auth

    def close(self) -> None:
        """Kill every process of the cluster, whatever state it is in."""
        try:
            super().close()
        finally:
            self.http.close()
            self.follow.close()
            self._status_client.close()

    # -- status ---------------------------------------------------------------

    def status(self, node_id: str) -> dict[str, Any] | None:
        try:
            r = self._status_client.get(self.nodes[node_id].url + "/api/status")
        except httpx.HTTPError:
            return None
        body = json_of(r)
        return body if r.status_code == 200 and isinstance(body, dict) else None

    def statuses(self, ids: Iterable[str] | None = None) -> dict[str, dict[str, Any] | None]:
        return {nid: self.status(nid) for nid in (self.live_ids() if ids is None else ids)}

    def leader(self) -> NodeProcess:
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
