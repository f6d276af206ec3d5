"""The coordination API against real node processes: revisions on every
answer, ranges, transactions, leases and watches, and their errors.

Watches are also checked under a leader's kill -9: a watcher that
reconnects to another node with ``Last-Event-ID`` gets every change once,
in order, and the changes it saw are exactly the final state."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
import pytest

from .cluster import HTTP_TIMEOUT, Cluster, describe, kv_path, wait_until

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Watch:
    """``GET /api/watch`` read into a list of (id, event, data), following
    nothing: the test chooses the node."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = {"Accept": "text/event-stream", **(headers or {})}
        self.events: list[tuple[int | None, str, Any]] = []
        self.comments: list[str] = []
        self.status: int | None = None
        self.response_headers: httpx.Headers | None = None
        self.body: Any = None
        self.ended = threading.Event()
        self.connected = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=30.0), trust_env=False)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._client.stream("GET", self.url, headers=self.headers) as r:
                self.status = r.status_code
                self.response_headers = r.headers
                if r.status_code != 200:
                    self.body = json.loads(r.read())
                    return
                self.connected.set()
                event_id: int | None = None
                name, data = "message", list[str]()
                for line in r.iter_lines():
                    if line == "":
                        if data:
                            with self._lock:
                                self.events.append((event_id, name, json.loads("\n".join(data))))
                        name, data = "message", []
                    elif line.startswith(":"):
                        self.comments.append(line)
                    else:
                        field, _, value = line.partition(":")
                        value = value.removeprefix(" ")
                        if field == "id":
                            event_id = int(value)
                        elif field == "event":
                            name = value
                        elif field == "data":
                            data.append(value)
        except httpx.HTTPError:
            pass
        finally:
            self.connected.set()
            self.ended.set()

    def seen(self) -> list[tuple[int | None, str, Any]]:
        with self._lock:
            return list(self.events)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[int | None, str, Any]]:
        return wait_until(
            lambda: (len(self.seen()) >= count, self.seen()), timeout, f"{count} events from {self.url}"
        )

    def close(self) -> None:
        self._client.close()
        self._thread.join(timeout=5)


def leader_url(c: Cluster) -> str:
    lid, _ = c.wait_for_leader()
    return c[lid].url


def follower_url(c: Cluster) -> str:
    lid, _ = c.wait_for_leader()
    return next(c[nid].url for nid in c.live_ids() if nid != lid)


# -- revisions ------------------------------------------------------------------


def test_every_key_answer_carries_revisions_and_the_revision_header(shared_cluster: Cluster) -> None:
    c = shared_cluster
    base = leader_url(c)
    key = unique("rev")
    first = c.http.put(base + kv_path(key), json={"value": "a"})
    second = c.http.put(base + kv_path(key), json={"value": "b"})
    assert first.status_code == second.status_code == 200, describe(second)
    one, two = first.json(), second.json()
    assert one["create_revision"] == one["mod_revision"] == one["index"]
    assert (two["create_revision"], two["version"], one["version"]) == (one["index"], 2, 1)
    assert two["mod_revision"] == two["index"] > one["index"]
    assert int(second.headers["X-Raft-Revision"]) >= two["index"]
    # The lean path (a plain GET) and Quart's (with a query) answer alike.
    lean = c.http.get(base + kv_path(key))
    quart = c.http.get(base + kv_path(key), params={"consistency": "linearizable"})
    assert lean.content == quart.content, (lean.text, quart.text)
    assert lean.json() == {**two, "value": "b"}
    for response in (lean, quart):
        assert int(response.headers["X-Raft-Revision"]) >= two["index"]
    # Every other answer about keys says it too: 404, 307, delete, range, txn.
    others = [
        c.http.get(base + kv_path(unique("absent"))),
        c.http.get(follower_url(c) + kv_path(key)),
        c.http.delete(base + kv_path(key)),
        c.http.get(base + "/api/kv", params={"prefix": key}),
        c.http.post(base + "/api/txn", json={"compare": [], "success": [{"get": {"key": key}}]}),
    ]
    assert [r.status_code for r in others] == [404, 307, 200, 200, 200]
    for response in others:
        assert response.headers["X-Raft-Revision"].isdigit(), describe(response)
    deleted = others[2].json()
    assert deleted["deleted"] is True and deleted["index"] > two["index"]


# -- ranges ---------------------------------------------------------------------


def test_ranges_are_in_key_order_in_pages(shared_cluster: Cluster) -> None:
    c = shared_cluster
    base = leader_url(c)
    prefix = unique("range") + "/"
    keys = [f"{prefix}{n:02}" for n in range(25)]
    for key in reversed(keys):
        assert c.http.put(base + kv_path(key), json={"value": key[-2:]}).status_code == 200
    seen: list[str] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"prefix": prefix, "limit": 10}
        if after is not None:
            params["after"] = after
        page = c.http.get(base + "/api/kv", params=params).json()
        assert page["count"] == len(keys) - len(seen)
        seen.extend(kv["key"] for kv in page["kvs"])
        assert all(kv["value"] == kv["key"][-2:] for kv in page["kvs"])
        if not page["more"]:
            break
        after = page["kvs"][-1]["key"]
    assert seen == keys
    interval = c.http.get(base + "/api/kv", params={"start": keys[3], "end": keys[6], "keys_only": "true"})
    assert [kv["key"] for kv in interval.json()["kvs"]] == keys[3:6]
    assert all("value" not in kv for kv in interval.json()["kvs"])
    counted = c.http.get(base + "/api/kv", params={"prefix": prefix, "count_only": "true"}).json()
    assert (counted["count"], counted["kvs"]) == (25, [])
    # A follower redirects a linearizable range and serves a stale one.
    assert c.http.get(follower_url(c) + "/api/kv", params={"prefix": prefix}).status_code == 307
    stale = wait_until(
        lambda: (
            (
                r := c.http.get(
                    follower_url(c) + "/api/kv", params={"prefix": prefix, "consistency": "stale"}
                )
            ).json()["count"]
            == 25,
            r.text,
        ),
        10,
        "the follower to apply the keys",
    )
    assert stale


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"prefix": "a", "start": "b"}, "not both"),
        ({"limit": "0"}, "limit must be"),
        ({"limit": "10001"}, "limit must be"),
        ({"limit": "ten"}, "invalid query string"),
        ({"keys_only": "true", "count_only": "true"}, "not both"),
        ({"consistency": "eventual"}, "invalid query string"),
        ({"prefixx": "a"}, "unknown field"),
    ],
)
def test_bad_range_requests_are_refused(
    shared_cluster: Cluster, params: dict[str, str], message: str
) -> None:
    r = shared_cluster.http.get(leader_url(shared_cluster) + "/api/kv", params=params)
    assert r.status_code == 400, describe(r)
    assert message in r.json()["error"], r.text


# -- transactions ---------------------------------------------------------------


def test_a_transaction_takes_one_branch_at_one_revision(shared_cluster: Cluster) -> None:
    c = shared_cluster
    base = leader_url(c)
    key, other = unique("txn"), unique("txn")
    assert c.http.put(base + kv_path(key), json={"value": "v1"}).status_code == 200
    body = {
        "compare": [{"key": key, "target": "value", "op": "=", "value": "v1"}],
        "success": [
            {"put": {"key": key, "value": "v2"}},
            {"put": {"key": other, "value": "o"}},
            {"get": {"key": key}},
            {"range": {"prefix": key}},
        ],
        "failure": [{"delete": {"key": key}}],
    }
    r = c.http.post(base + "/api/txn", json=body)
    assert r.status_code == 200, describe(r)
    answer = r.json()
    assert answer["succeeded"] is True
    revision = answer["revision"]
    put, put_other, got, ranged = answer["results"]
    assert (put["value"], put["mod_revision"], put["version"]) == ("v2", revision, 2)
    assert put_other["mod_revision"] == revision
    assert got["value"] == "v2" and got["mod_revision"] == revision
    assert [kv["key"] for kv in ranged["kvs"]] == [key] and ranged["revision"] == revision
    # The same compare fails now: the failure branch runs.
    again = c.http.post(base + "/api/txn", json=body).json()
    assert again["succeeded"] is False
    assert again["results"] == [{"key": key, "deleted": True, "index": again["revision"]}]
    assert c.http.get(base + kv_path(key)).status_code == 404


def test_a_transaction_naming_a_missing_lease_changes_nothing(shared_cluster: Cluster) -> None:
    c = shared_cluster
    base = leader_url(c)
    key = unique("txn-lease")
    assert c.http.put(base + kv_path(key), json={"value": "kept"}).status_code == 200
    r = c.http.post(
        base + "/api/txn",
        json={
            "success": [
                {"delete": {"key": key}},
                {"put": {"key": key + "x", "value": "v", "lease": "7fffffff"}},
            ]
        },
    )
    assert r.status_code == 404, describe(r)
    assert c.http.get(base + kv_path(key)).json()["value"] == "kept"
    assert c.http.get(base + kv_path(key + "x")).status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"compare": [{"key": "k", "target": "value", "op": "~", "value": "x"}]}, "invalid request"),
        ({"compare": [{"key": "k", "target": "colour", "op": "=", "value": "x"}]}, "invalid request"),
        ({"compare": [{"key": "k", "target": "version", "op": "=", "value": "one"}]}, "needs an integer"),
        ({"compare": [{"key": "k", "target": "value", "op": "=", "value": 1}]}, "needs a string"),
        ({"compare": [{"key": "k", "target": "exists", "op": ">", "value": True}]}, "with = or !="),
        ({"compare": [{"key": "", "target": "exists", "op": "=", "value": True}]}, "is empty"),
        (
            {"compare": [], "success": [{"put": {"key": "k", "value": "v"}, "get": {"key": "k"}}]},
            "exactly one",
        ),
        ({"compare": [], "success": [{}]}, "exactly one"),
        ({"success": [{"put": {"key": "k", "value": "v"}}, {"delete": {"key": "k"}}]}, "twice"),
        ({"success": [{"put": {"key": "k", "value": "v", "lease": "not-hex"}}]}, "not a lease id"),
        ({"success": [{"get": {"key": "k"}}] * 129}, "at most 128"),
        ({"compare": [], "succes": []}, "unknown field"),
        ({"success": [{"put": {"key": "k", "value": "v", "ttl": 3}}]}, "unknown field"),
        ({"success": [{"put": {"key": "k", "value": "x" * (1024 * 1024 + 1)}}]}, "at most 1048576"),
    ],
)
def test_bad_transactions_are_refused_and_change_nothing(
    shared_cluster: Cluster, body: dict[str, Any], message: str
) -> None:
    c = shared_cluster
    base = leader_url(c)
    before = c.http.get(base + "/api/kv", params={"count_only": "true"}).json()["count"]
    r = c.http.post(base + "/api/txn", json=body)
    # A value over 1 MiB is a 413, as for a single PUT.
    assert r.status_code == (413 if "1048576" in message else 400), describe(r)
    assert message in r.json()["error"], r.text
    assert c.http.get(base + "/api/kv", params={"count_only": "true"}).json()["count"] == before


def test_a_retried_transaction_with_an_idempotency_key_applies_once(shared_cluster: Cluster) -> None:
    c = shared_cluster
    base = leader_url(c)
    key = unique("txn-once")
    body = {
        "compare": [{"key": key, "target": "exists", "op": "=", "value": False}],
        "success": [{"put": {"key": key, "value": "first"}}],
        "failure": [{"get": {"key": key}}],
    }
    headers = {"Idempotency-Key": unique("token")}
    first = c.http.post(base + "/api/txn", json=body, headers=headers).json()
    again = c.http.post(base + "/api/txn", json=body, headers=headers).json()
    assert first == again and first["succeeded"] is True
    assert c.http.get(base + kv_path(key)).json()["version"] == 1


# -- leases ---------------------------------------------------------------------


def test_a_lease_keeps_its_keys_while_kept_alive_and_deletes_them_when_revoked(
    shared_cluster: Cluster,
) -> None:
    c = shared_cluster
    base = leader_url(c)
    granted = c.http.post(base + "/api/leases", json={"ttl": 1}).json()
    lease = granted["id"]
    assert len(lease) == 16 and granted["ttl"] >= 1
    key = unique("leased")
    put = c.http.put(base + kv_path(key), json={"value": "v", "lease": lease})
    assert put.status_code == 200 and put.json()["lease"] == lease, describe(put)
    info = c.http.get(base + f"/api/leases/{lease}").json()
    assert (
        info["keys"] == [key] and info["granted_ttl"] == granted["ttl"] and 0 <= info["ttl"] <= granted["ttl"]
    )
    for _ in range(3):
        time.sleep(granted["ttl"] / 2)
        alive = c.http.post(base + f"/api/leases/{lease}/keepalive")
        assert alive.status_code == 200 and alive.json() == {"id": lease, "ttl": granted["ttl"]}, describe(
            alive
        )
    # Spelled without its leading zeros, or in capitals, it is the same
    # lease, and the answers name it as the grant did.
    short = lease.lstrip("0").upper()
    alive = c.http.post(base + f"/api/leases/{short}/keepalive")
    assert alive.status_code == 200 and alive.json()["id"] == lease, describe(alive)
    assert c.http.get(base + f"/api/leases/{short}").json()["id"] == lease
    assert c.http.post(base + f"/api/leases/0x{short}/keepalive").status_code == 400
    assert c.http.get(base + kv_path(key)).status_code == 200
    # A follower sends keep-alives and queries to the leader.
    assert c.http.post(follower_url(c) + f"/api/leases/{lease}/keepalive").status_code == 307
    revoked = c.http.delete(base + f"/api/leases/{lease}")
    assert revoked.status_code == 200 and revoked.json()["keys"] == [key], describe(revoked)
    assert c.http.get(base + kv_path(key)).status_code == 404
    for answer in (
        c.http.post(base + f"/api/leases/{lease}/keepalive"),
        c.http.get(base + f"/api/leases/{lease}"),
        c.http.delete(base + f"/api/leases/{lease}"),
        c.http.put(base + kv_path(key), json={"value": "v", "lease": lease}),
    ):
        assert answer.status_code == 404, describe(answer)


def test_a_lease_left_alone_expires_with_its_keys_on_every_node(shared_cluster: Cluster) -> None:
    c = shared_cluster
    base = leader_url(c)
    lease = c.http.post(base + "/api/leases", json={"ttl": 1}).json()
    key = unique("expiring")
    assert c.http.put(base + kv_path(key), json={"value": "v", "lease": lease["id"]}).status_code == 200
    granted_at = time.monotonic()
    for nid in c.live_ids():
        url = c[nid].url + kv_path(key)
        wait_until(
            partial(stale_read_is_404, c, url),
            lease["ttl"] + 10,
            f"{nid} to delete the leased key",
        )
    assert time.monotonic() - granted_at >= lease["ttl"] - 0.2


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/api/leases", {"ttl": 0}, 400),
        ("POST", "/api/leases", {"ttl": "ten"}, 400),
        ("POST", "/api/leases", {"ttl": 10, "id": "x"}, 400),
        ("POST", "/api/leases/zz/keepalive", None, 400),
        ("GET", "/api/leases/0", None, 400),
        ("DELETE", "/api/leases/12345678901234567", None, 400),
    ],
)
def test_bad_lease_requests_are_refused(
    shared_cluster: Cluster, method: str, path: str, body: Any, status: int
) -> None:
    r = shared_cluster.http.request(method, leader_url(shared_cluster) + path, json=body)
    assert r.status_code == status, describe(r)
    assert r.json()["error"]


# -- watches --------------------------------------------------------------------


def test_a_watch_on_a_follower_sees_every_change_and_resumes_after_the_last_event_id(
    shared_cluster: Cluster,
) -> None:
    c = shared_cluster
    base, follower = leader_url(c), follower_url(c)
    prefix = unique("watch") + "/"
    start = c.http.put(base + kv_path(prefix + "a"), json={"value": "1"}).json()["index"]
    watch = Watch(f"{follower}/api/watch?prefix={prefix}&start_revision={start}&prev_value=true")
    try:
        assert watch.connected.wait(10) and watch.status == 200, watch.body
        assert watch.response_headers is not None and watch.response_headers["X-Raft-Role"] == "follower"
        c.http.put(base + kv_path(prefix + "a"), json={"value": "2"})
        c.http.put(base + kv_path(unique("elsewhere")), json={"value": "x"})
        c.http.post(
            base + "/api/txn",
            json={
                "success": [{"put": {"key": prefix + "b", "value": "1"}}, {"delete": {"key": prefix + "a"}}]
            },
        )
        events = watch.wait_for(4)
    finally:
        watch.close()
    assert [(name, data["key"]) for _, name, data in events] == [
        ("put", prefix + "a"),
        ("put", prefix + "a"),
        ("put", prefix + "b"),
        ("delete", prefix + "a"),
    ]
    ids = [event_id or 0 for event_id, _, _ in events]
    assert ids[0] == start and ids[1] < ids[2] == ids[3]
    assert [data.get("prev_value") for _, _, data in events] == [None, "1", None, "2"]
    assert any("served by follower" in comment for comment in watch.comments)
    # Resume on another node after the second event: the rest, once.
    resumed = Watch(f"{base}/api/watch?prefix={prefix}", headers={"Last-Event-ID": str(ids[1])})
    try:
        assert [(i, name) for i, name, _ in resumed.wait_for(2)] == [(i, name) for i, name, _ in events[2:]]
        c.http.put(base + kv_path(prefix + "c"), json={"value": "1"})
        assert resumed.wait_for(3)[2][2]["key"] == prefix + "c"
    finally:
        resumed.close()


def test_a_watch_from_a_revision_the_node_no_longer_holds_is_refused_with_the_oldest(
    make_cluster: Callable[..., Cluster],
) -> None:
    """A node's history starts after its latest snapshot when it starts:
    with snapshots every 20 entries, revision 1 is gone after a restart."""
    c = make_cluster("compacted", env={"RAFT_SNAPSHOT_ENTRIES": "20"})
    lid, _ = c.wait_for_leader()
    for n in range(50):
        c.write(f"k{n}", "v")
    follower = next(nid for nid in c.live_ids() if nid != lid)
    c[follower].stop()
    c[follower].start()
    c.wait_ready(follower)
    r = c.http.get(c[follower].url + "/api/watch", params={"start_revision": 1})
    assert r.status_code == 410, describe(r)
    oldest = r.json()["compact_revision"]
    assert 20 <= oldest <= 52 and "no longer kept" in r.json()["error"]
    watch = Watch(f"{c[follower].url}/api/watch?start_revision={oldest}")
    try:
        first = watch.wait_for(1)[0]
        assert first[0] is not None and first[0] >= oldest
    finally:
        watch.close()


def test_bad_watch_requests_are_refused(shared_cluster: Cluster) -> None:
    base = leader_url(shared_cluster)
    for params, headers in [
        ({"prefix": "a", "key": "b"}, {}),
        ({"start_revision": "0"}, {}),
        ({"start_revision": "x"}, {}),
        ({"prefix": "a"}, {"Last-Event-ID": "yesterday"}),
        ({"colour": "red"}, {}),
    ]:
        r = shared_cluster.http.get(base + "/api/watch", params=params, headers=headers)
        assert r.status_code == 400, describe(r)
        assert r.json()["error"]


def test_a_watcher_reconnecting_after_the_leaders_kill_sees_every_change_once(cluster: Cluster) -> None:
    """Writers keep writing while the leader is killed with SIGKILL; the
    watcher, on a follower, reconnects to a node that still serves with
    the last id it received. Its events are in revision order with no
    repeat, include every write acknowledged with 200, and replayed in
    order give exactly the final state a linearizable range read returns."""
    c = cluster
    lid, _ = c.wait_for_leader()
    prefix = "kill/"
    watched_node = next(nid for nid in c.live_ids() if nid != lid)
    events: list[tuple[int | None, str, Any]] = []
    acknowledged: dict[int, tuple[str, str]] = {}
    stop = threading.Event()

    def writer(number: int) -> None:
        with httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False, follow_redirects=True) as client:
            n = 0
            while not stop.is_set():
                key, value = f"{prefix}{number}-{n % 5}", f"w{number}-{n}"
                for nid in c.live_ids():
                    try:
                        r = client.put(c.kv_url(nid, key), json={"value": value})
                    except httpx.HTTPError:
                        continue
                    if r.status_code == 200:
                        acknowledged[r.json()["index"]] = (key, value)
                        break
                    if r.status_code == 503 and r.json().get("indeterminate"):
                        break  # fate unknown: not counted either way
                n += 1

    watch = Watch(f"{c[watched_node].url}/api/watch?prefix={prefix}&start_revision=1")
    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        c[lid].kill()
        c.wait_for_leader(ids=c.live_ids())
        time.sleep(1.5)
        # Reconnect to another live node with the last id, as a browser would.
        events.extend(watch.seen())
        watch.close()
        other = next(nid for nid in c.live_ids() if nid != watched_node)
        last_id = events[-1][0]
        watch = Watch(f"{c[other].url}/api/watch?prefix={prefix}", headers={"Last-Event-ID": str(last_id)})
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    page: dict[str, Any] = wait_until(
        lambda: _range_read(c, prefix), 10, "a linearizable range read of the final state"
    )
    last_change = max(kv["mod_revision"] for kv in page["kvs"])
    wait_until(
        lambda: (bool(watch.seen()) and (watch.seen()[-1][0] or 0) >= last_change, watch.seen()[-3:]),
        10,
        f"the watcher to reach revision {last_change}",
    )
    events.extend(watch.seen())
    watch.close()
    ids = [event_id or 0 for event_id, _, _ in events]
    assert all(event_id is not None for event_id, _, _ in events)
    assert ids == sorted(ids) and len(ids) == len(set(ids)), "out of order or repeated"
    by_revision = {event_id: (data["key"], data.get("value")) for event_id, _, data in events}
    for index, (key, value) in acknowledged.items():
        assert by_revision.get(index) == (key, value), f"acknowledged write at {index} not watched"
    state: dict[str, str] = {}
    for _, name, data in events:
        if name == "put":
            state[data["key"]] = data["value"]
        else:
            state.pop(data["key"], None)
    assert state == {kv["key"]: kv["value"] for kv in page["kvs"]}
    assert len(acknowledged) > 20, "too few writes to say anything"


def _range_read(c: Cluster, prefix: str) -> tuple[bool, Any]:
    for nid in c.live_ids():
        try:
            r = c.follow.get(c[nid].url + "/api/kv", params={"prefix": prefix, "limit": 10000})
        except httpx.HTTPError as error:
            return False, str(error)
        if r.status_code == 200:
            return True, r.json()
    return False, "no node answered 200"


def stale_read_is_404(c: Cluster, url: str) -> tuple[bool, int]:
    status = c.http.get(url, params={"consistency": "stale"}).status_code
    return status == 404, status
