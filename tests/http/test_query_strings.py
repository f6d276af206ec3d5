"""A query string that is not the route's gets a 400 that speaks of the
query string: it named the JSON body to send, also to a GET that sends
none (found by hand-fuzzing /api/kv and /api/watch)."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from tests.http.test_answers import both_paths, call
from tests.node.harness import Cluster


@pytest.mark.parametrize(
    ("path", "query", "says"),
    [
        ("/api/kv", b"limit=ten", "invalid query string: Expected `int`, got `str` - at `$.limit`"),
        ("/api/kv", b"limit=1&limit=2", "invalid query string: Expected `int`, got `array` - at `$.limit`"),
        ("/api/kv", b"revision=5", "invalid query string: Object contains unknown field `revision`"),
        ("/api/watch", b"prev_value=yes", "invalid query string: Expected `bool`, got `str`"),
    ],
)
async def test_a_bad_query_string_is_named_as_such(
    cluster: Cluster, autojump_clock: trio.testing.MockClock, path: str, query: bytes, says: str
) -> None:
    leader = await cluster.wait_for_leader(within=10.0)
    _, quart, _ = both_paths(leader)
    status, _, body = await call(quart, "GET", path, query=query)
    assert status == 400, body
    document = json.loads(body)
    assert document["code"] == "bad_request", document
    assert document["error"].startswith(says), document
    assert "JSON object" not in document["error"], document
    assert document["error"].endswith("(see /docs)"), document


@pytest.mark.parametrize("start", ["0", "-1", "9223372036854775808", "99999999999999999999999"])
async def test_a_watch_from_no_revision_there_can_be_is_refused(
    cluster: Cluster, autojump_clock: trio.testing.MockClock, start: str
) -> None:
    """Revisions are 1 to etcd's int64 (the log's MessagePack ends at 64
    bits, and ``Last-Event-ID`` is held to it): a ``start_revision`` past
    it opened a watch that waited, with keep-alives, for a revision no
    cluster reaches."""
    leader = await cluster.wait_for_leader(within=10.0)
    _, quart, _ = both_paths(leader)
    status, body = 0, b""
    with trio.move_on_after(30):
        status, _, body = await call(quart, "GET", "/api/watch", query=b"start_revision=" + start.encode())
    assert status == 400, "a watch opened"
    document = json.loads(body)
    assert document["code"] == "bad_request", document
    assert "start_revision" in document["error"], document
