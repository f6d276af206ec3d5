"""The client API on one healthy 3-node cluster, shared by the tests of
this module (none of them stops a node): election, redirects, reads and
writes, compare-and-set, bad input, exactly-once retries."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from .cluster import (
    ELECTION_TIMEOUT_MAX_S,
    HTTP_TIMEOUT,
    Cluster,
    as_written,
    describe,
    json_of,
    kv_path,
    wait_until,
)

MIB = 1024 * 1024


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def assert_json_error(r: httpx.Response, statuses: tuple[int, ...]) -> None:
    assert r.status_code in statuses, describe(r)
    assert r.headers.get("content-type", "").startswith("application/json"), describe(r)
    body = json_of(r)
    assert isinstance(body, dict), describe(r)
    assert isinstance(body.get("error"), str), describe(r)
    assert body["error"], describe(r)


# -- 1. election ------------------------------------------------------------------


@pytest.mark.integration
def test_one_leader_everyone_agrees_on_leader_and_term(shared_cluster: Cluster) -> None:
    c = shared_cluster
    lid, term = c.wait_for_leader()
    assert term >= 1
    sts = c.statuses(["n1", "n2", "n3"])
    roles = {nid: st["role"] for nid, st in sts.items() if st is not None}
    assert sorted(roles.values()) == ["follower", "follower", "leader"], roles
    for nid, st in sts.items():
        assert st is not None, nid
        assert st["id"] == nid
        assert st["leader_id"] == lid, sts
        assert st["term"] == term, sts
        assert st["leader_url"].rstrip("/") == c[lid].url, st
        assert st["applied_index"] <= st["commit_index"] <= st["last_log_index"], st
        members = {m["id"]: (m["url"].rstrip("/"), m["voter"]) for m in st["members"]}
        assert members == {n.id: (n.url, True) for n in c.nodes.values()}, st["members"]

    # Heartbeats hold the leadership: over two maximum election timeouts
    # nobody starts an election.
    deadline = time.monotonic() + 2 * ELECTION_TIMEOUT_MAX_S
    while time.monotonic() < deadline:
        for nid, st in c.statuses(["n1", "n2", "n3"]).items():
            assert st is not None, nid
            assert (st["leader_id"], st["term"]) == (lid, term), f"{nid}: {st}"
        time.sleep(0.05)


# -- 2. redirects -------------------------------------------------------------------


@pytest.mark.integration
def test_follower_redirects_writes_and_reads_to_the_leader(shared_cluster: Cluster) -> None:
    c = shared_cluster
    leader = c.leader()
    follower = next(n for n in c.nodes.values() if n.id != leader.id)
    key = unique("dir/sub key/é")
    path = kv_path(key)

    # A write sent to a follower: 307 to the same request on the leader, nothing written.
    r = c.http.put(follower.url + path, json={"value": "v1"})
    assert r.status_code == 307, describe(r)
    assert r.headers["X-Raft-Leader"] == leader.id
    location = r.headers["Location"]
    assert location == leader.url + path, location
    assert c.http.get(leader.url + path).status_code == 404, "the redirected write was applied"

    # Following it (the body re-sent) works.
    r = c.http.put(location, json={"value": "v1"})
    assert r.status_code == 200, describe(r)
    body = r.json()
    assert (body["key"], body["value"]) == (key, "v1")
    index = body["index"]

    # A linearizable read on the follower redirects too, query string kept.
    r = c.http.get(follower.url + path, params={"consistency": "linearizable"})
    assert r.status_code == 307, describe(r)
    assert r.headers["X-Raft-Leader"] == leader.id
    assert r.headers["Location"] == leader.url + path + "?consistency=linearizable"
    r = c.http.get(r.headers["Location"])
    assert r.status_code == 200, describe(r)
    assert as_written(r.json()) == {"key": key, "value": "v1", "index": index}

    # A client that follows redirects does not notice.
    r = c.follow.put(follower.url + path, json={"value": "v2"})
    assert r.status_code == 200, describe(r)
    assert r.json()["value"] == "v2"
    assert r.json()["index"] > index
    r = c.follow.get(follower.url + path)
    assert r.status_code == 200 and r.json()["value"] == "v2", describe(r)

    # A stale read is answered by the follower itself once it has applied the write.
    def stale() -> tuple[bool, str]:
        r = c.get(follower.id, key, stale=True)
        return r.status_code == 200 and json_of(r).get("value") == "v2", describe(r)

    wait_until(stale, 5.0, f"the write to show in a stale read on {follower.id}")

    # A delete through the follower: 307, then 200 on the leader.
    r = c.http.delete(follower.url + path)
    assert r.status_code == 307, describe(r)
    assert r.headers["Location"] == leader.url + path
    r = c.http.delete(r.headers["Location"])
    assert r.status_code == 200, describe(r)
    assert r.json()["deleted"] is True
    r = c.http.get(leader.url + path)
    assert r.status_code == 404, describe(r)
    assert isinstance(json_of(r).get("error"), str)


# -- 3. compare-and-set --------------------------------------------------------------


@pytest.mark.integration
def test_compare_and_set(shared_cluster: Cluster) -> None:
    c = shared_cluster
    leader = c.leader()
    key = unique("cas")
    url = c.kv_url(leader.id, key)

    r = c.http.put(url, json={"value": "a", "expect": None})
    assert r.status_code == 200, describe(r)
    assert (r.json()["key"], r.json()["value"]) == (key, "a")
    first = r.json()["index"]

    for expect in (None, "wrong", ""):
        r = c.http.put(url, json={"value": "b", "expect": expect})
        assert r.status_code == 409, describe(r)
        body = r.json()
        assert isinstance(body["error"], str) and body["error"]
        assert body["current"] == "a", body
        assert isinstance(body["index"], int) and body["index"] >= first, body

    r = c.get(leader.id, key)
    assert as_written(r.json()) == {"key": key, "value": "a", "index": first}, (
        "a failed compare changed the key"
    )

    r = c.http.put(url, json={"value": "b", "expect": "a"})
    assert r.status_code == 200, describe(r)
    assert r.json()["value"] == "b" and r.json()["index"] > first
    assert c.get(leader.id, key).json()["value"] == "b"

    # Expecting a value of an absent key fails with current null.
    absent = unique("cas-absent")
    r = c.http.put(c.kv_url(leader.id, absent), json={"value": "x", "expect": "y"})
    assert r.status_code == 409, describe(r)
    assert r.json()["current"] is None
    assert c.get(leader.id, absent).status_code == 404

    # After a delete, expect null succeeds again.
    assert c.http.delete(url).status_code == 200
    r = c.http.put(url, json={"value": "c", "expect": None})
    assert r.status_code == 200, describe(r)

    # Racing compare-and-sets from one value: exactly one wins, the others
    # see the winner's value.
    race = unique("cas-race")
    assert c.http.put(c.kv_url(leader.id, race), json={"value": "start"}).status_code == 200
    answers: dict[int, httpx.Response] = {}

    def contend(i: int) -> None:
        with httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False) as client:
            answers[i] = client.put(c.kv_url(leader.id, race), json={"value": f"w{i}", "expect": "start"})

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(answers) == 8, "some compare-and-set requests did not return"
    winners = [i for i, r in answers.items() if r.status_code == 200]
    assert len(winners) == 1, {i: (r.status_code, r.text) for i, r in answers.items()}
    final = c.get(leader.id, race).json()
    assert final["value"] == f"w{winners[0]}"
    for i, r in answers.items():
        if i != winners[0]:
            assert r.status_code == 409, describe(r)
            assert r.json()["current"] == final["value"], describe(r)


# -- 9. bad input --------------------------------------------------------------------


@pytest.mark.integration
def test_bad_input_is_refused_and_changes_nothing(shared_cluster: Cluster) -> None:
    c = shared_cluster
    leader = c.leader()
    sentinel = unique("sentinel")
    written = c.http.put(c.kv_url(leader.id, sentinel), json={"value": "keep me"})
    assert written.status_code == 200, describe(written)
    sentinel_state = written.json()
    target = unique("target")
    target_url = c.kv_url(leader.id, target)
    before = c.status(leader.id)
    assert before is not None

    json_headers = {"Content-Type": "application/json"}
    cases: list[tuple[str, str, str, dict[str, Any]]] = [
        # (what, method, url, request arguments)
        ("malformed JSON", "PUT", target_url, {"content": b'{"value": "x"', "headers": json_headers}),
        ("not JSON at all", "PUT", target_url, {"content": b"value=x", "headers": json_headers}),
        ("empty body", "PUT", target_url, {"content": b"", "headers": json_headers}),
        ("invalid UTF-8", "PUT", target_url, {"content": b'{"value": "\xff\xfe"}', "headers": json_headers}),
        ("value is a number", "PUT", target_url, {"json": {"value": 5}}),
        ("value is null", "PUT", target_url, {"json": {"value": None}}),
        ("value is a boolean", "PUT", target_url, {"json": {"value": True}}),
        ("value is a list", "PUT", target_url, {"json": {"value": ["x"]}}),
        ("expect is a number", "PUT", target_url, {"json": {"value": "x", "expect": 5}}),
        ("body is a list", "PUT", target_url, {"json": ["x"]}),
        ("body is a string", "PUT", target_url, {"json": "x"}),
        ("missing value", "PUT", target_url, {"json": {}}),
        ("missing value, expect given", "PUT", target_url, {"json": {"expect": "a"}}),
        ("empty key (PUT)", "PUT", leader.url + "/api/kv/", {"json": {"value": "x"}}),
        ("empty key (GET)", "GET", leader.url + "/api/kv/", {}),
        ("empty key (DELETE)", "DELETE", leader.url + "/api/kv/", {}),
        ("1025-byte key", "PUT", c.kv_url(leader.id, "k" * 1025), {"json": {"value": "x"}}),
        ("1026-byte key of 513 characters", "PUT", c.kv_url(leader.id, "é" * 513), {"json": {"value": "x"}}),
        ("1025-byte key (GET)", "GET", c.kv_url(leader.id, "k" * 1025), {}),
        ("1025-byte key (DELETE)", "DELETE", c.kv_url(leader.id, "k" * 1025), {}),
        ("value of 1 MiB + 1 byte", "PUT", target_url, {"json": {"value": "x" * (MIB + 1)}}),
        (
            "value of 1 MiB + 2 bytes in 2-byte characters",
            "PUT",
            target_url,
            {"json": {"value": "é" * (MIB // 2 + 1)}},
        ),
        ("body over any limit (9 MiB)", "PUT", target_url, {"json": {"value": "x" * (9 * MIB)}}),
        (
            "empty Idempotency-Key",
            "PUT",
            target_url,
            {"json": {"value": "x"}, "headers": {"Idempotency-Key": ""}},
        ),
        (
            "257-character Idempotency-Key",
            "PUT",
            target_url,
            {"json": {"value": "x"}, "headers": {"Idempotency-Key": "i" * 257}},
        ),
        (
            "257-character Idempotency-Key on a delete of the sentinel",
            "DELETE",
            c.kv_url(leader.id, sentinel),
            {"headers": {"Idempotency-Key": "i" * 257}},
        ),
        ("unknown consistency", "GET", c.kv_url(leader.id, sentinel) + "?consistency=sometimes", {}),
    ]
    problems: list[str] = []
    for what, method, url, kwargs in cases:
        r = c.http.request(method, url, **kwargs)
        try:
            assert_json_error(r, (400, 413))
        except AssertionError:
            problems.append(f"{what}: {r.status_code} {r.headers.get('content-type')} {r.text[:200]!r}")
        # Nothing changed: the sentinel keeps its value and index, the target was not written.
        s = c.get(leader.id, sentinel)
        if s.status_code != 200 or s.json() != sentinel_state:
            problems.append(f"after {what}: the sentinel changed: {describe(s)}")
        t = c.get(leader.id, target)
        if t.status_code != 404:
            problems.append(f"after {what}: the target key was written: {describe(t)}")
        h = c.http.get(leader.url + "/healthz")
        if h.status_code != 200:
            problems.append(f"after {what}: /healthz {h.status_code}")
    assert not problems, "\n".join(problems)

    after = c.status(leader.id)
    assert after is not None
    if after["term"] == before["term"]:  # no election added a no-op entry meanwhile
        assert after["last_log_index"] == before["last_log_index"], "a refused request added a log entry"


@pytest.mark.integration
def test_the_limits_themselves_are_accepted(shared_cluster: Cluster) -> None:
    c = shared_cluster
    leader = c.leader()
    for key in ("k" * 1023 + "1", "é" * 512):  # 1024 bytes each
        r = c.put(leader.id, key, "at the key limit")
        assert r.status_code == 200, describe(r)
        assert c.get(leader.id, key).json()["value"] == "at the key limit"
    for value in ("x" * MIB, "é" * (MIB // 2)):  # 1 MiB each, as UTF-8
        key = unique("big")
        r = c.put(leader.id, key, value)
        assert r.status_code == 200, describe(r)
        got = c.get(leader.id, key)
        assert got.status_code == 200 and got.json()["value"] == value


# -- 10a. exactly-once retries on one leader ---------------------------------------------


@pytest.mark.integration
def test_idempotent_retry_is_applied_once(shared_cluster: Cluster) -> None:
    c = shared_cluster
    leader = c.leader()
    key = unique("once")
    headers = {"Idempotency-Key": "abc"}

    first = c.put(leader.id, key, "v", headers=headers)
    assert first.status_code == 200, describe(first)
    index = first.json()["index"]

    again = c.put(leader.id, key, "v", headers=headers)
    assert again.status_code == 200, describe(again)
    assert again.json() == first.json(), "the retry did not return the first answer"

    r = c.get(leader.id, key)
    assert as_written(r.json()) == {"key": key, "value": "v", "index": index}, (
        "the retry was applied a second time"
    )

    # A fresh token is a fresh write.
    fresh = c.put(leader.id, key, "v", headers={"Idempotency-Key": unique("tok")})
    assert fresh.status_code == 200 and fresh.json()["index"] > index, describe(fresh)
