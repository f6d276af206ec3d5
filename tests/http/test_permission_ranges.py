"""A permission on a range needs an ``end`` after its ``key`` (or ``""``,
to the last key). An ``end`` at or before the key is a range of no key:
granted, it was stored, listed and answered ``changed: true`` while it let
the role do nothing (found by hand-fuzzing the auth API). etcd refuses it
likewise (``ErrInvalidAuthMgmt``)."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from tests.http.test_answers import both_paths, call
from tests.node.harness import Cluster


@pytest.mark.parametrize(
    ("key", "end", "status"),
    [
        ("b", "a", 400),
        ("a", "a", 400),
        ("a\U0010ffff", "a", 400),
        ("a", "a\x00", 200),
        ("a", "b", 200),
        ("a", "", 200),  # to the last key
        ("", "b", 200),  # from the first key
        ("", "", 200),  # every key
    ],
)
async def test_a_range_permission_needs_an_end_after_its_key(
    cluster: Cluster, autojump_clock: trio.testing.MockClock, key: str, end: str, status: int
) -> None:
    leader = await cluster.wait_for_leader(within=10.0)
    _, quart, _ = both_paths(leader)
    assert (await call(quart, "POST", "/api/auth/roles", b'{"name": "r"}'))[0] == 200
    grant = json.dumps({"access": "read", "key": key, "end": end}).encode()
    answered, _, body = await call(quart, "POST", "/api/auth/roles/r/permissions", grant)
    assert answered == status, body
    listed = json.loads((await call(quart, "GET", "/api/auth/roles/r"))[2])["permissions"]
    if status == 400:
        document = json.loads(body)
        assert document["code"] == "bad_request", document
        assert document["error"].startswith("end must sort after key"), document
        assert listed == []  # nothing changed
    else:
        assert listed == [{"access": "read", "key": key, "end": end}]
