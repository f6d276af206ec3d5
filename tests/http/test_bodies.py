"""A request body is JSON whatever its Content-Type says (curl's ``-d``
labels it a form), an empty one is ``{}``, and one that is not JSON gets
a 400 of ours (``error`` and ``code``, what to send), not Werkzeug's. The
lean routes hand such requests to Quart, so both paths answer alike."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from tests.http.test_answers import both_paths, call
from tests.node.harness import Cluster


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain", "application/json; charset=utf-8"],
)
async def test_a_json_body_is_taken_whatever_its_content_type(
    cluster: Cluster, autojump_clock: trio.testing.MockClock, content_type: str | None
) -> None:
    leader = await cluster.wait_for_leader(within=10.0)
    lean, quart, _ = both_paths(leader)
    headers = {"content-type": content_type} if content_type else {"content-type": ""}
    body = b'{"value": "v"}'
    first = await call(lean, "PUT", "/api/kv/k", body, headers | {"Idempotency-Key": "same"})
    second = await call(quart, "PUT", "/api/kv/k", body, headers | {"Idempotency-Key": "same"})
    assert first == second
    assert first[0] == 200 and json.loads(first[2])["value"] == "v"


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b"value=v", "application/x-www-form-urlencoded", "the request body is not JSON (Expecting value"),
        (b'{"value": "v"', "application/json", "the request body is not JSON ("),
        (b"", "application/json", "invalid request: Object missing required field `value`"),
        (b"\n", "text/plain", "the request body is not JSON ("),
        (b"null", "application/json", "invalid request: Expected `object`, got `null`"),
        (b'{"value": 1}', "text/plain", "invalid request: Expected `str`, got `int` - at `$.value`"),
        # Half a surrogate pair is no character: nothing could store it.
        (b'{"value": "\\ud800"}', "application/json", "the request body holds a \\u escape of half a UTF-16"),
        (b'{"value": "v", "\\udfff": 1}', "application/json", "the request body holds a \\u escape of"),
        # A misspelt field: "expcet" made a compare-and-set a plain write.
        (
            b'{"value": "v", "expcet": "old"}',
            "application/json",
            "invalid request: Object contains unknown field `expcet`",
        ),
    ],
)
async def test_a_body_that_is_not_the_request_gets_our_400_on_both_paths(
    cluster: Cluster, autojump_clock: trio.testing.MockClock, body: bytes, content_type: str, says: str
) -> None:
    leader = await cluster.wait_for_leader(within=10.0)
    lean, quart, _ = both_paths(leader)
    headers = {"content-type": content_type, "content-length": str(len(body))}
    first = await call(lean, "PUT", "/api/kv/k", body, headers)
    assert first == await call(quart, "PUT", "/api/kv/k", body, headers)
    status, sent_headers, answer = first
    assert status == 400 and sent_headers["content-type"] == "application/json"
    document = json.loads(answer)
    assert document["code"] == "bad_request", document
    assert document["error"].startswith(says), document
    assert 'send a JSON object such as {"value": "v"}' in document["error"]
    assert "browser" not in document["error"]
    assert (await call(quart, "GET", "/api/kv/k"))[0] == 404  # nothing changed


async def test_a_whitespace_body_is_not_an_empty_transaction(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Only a body of no bytes is ``{}``: a body of a newline is not JSON,
    so ``POST /api/txn`` refuses it rather than run an empty transaction
    (found by the schemathesis run)."""
    leader = await cluster.wait_for_leader(within=10.0)
    _, quart, _ = both_paths(leader)
    applied = leader.kv.revision
    status, _, body = await call(quart, "POST", "/api/txn", b"\n", {"content-type": "text/plain"})
    assert status == 400, body
    assert json.loads(body)["code"] == "bad_request"
    assert leader.kv.revision == applied  # nothing went through the log


async def test_a_compare_beyond_64_bits_is_refused_and_changes_nothing(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A revision beyond what the log's encoding holds is bad input, not
    an internal error (found by the schemathesis run: a 500)."""
    leader = await cluster.wait_for_leader(within=10.0)
    _, quart, _ = both_paths(leader)
    applied = leader.kv.revision
    for value in (2**63, 733693897812688119005184, -1):
        txn = {"compare": [{"key": "k", "target": "version", "op": ">", "value": value}]}
        status, _, body = await call(quart, "POST", "/api/txn", json.dumps(txn).encode())
        assert status == 400, body
        document = json.loads(body)
        assert document["code"] == "bad_request" and "an integer from 0 to" in document["error"], document
    txn = {"compare": [{"key": "k", "target": "version", "op": "<", "value": 2**63 - 1}]}
    assert (await call(quart, "POST", "/api/txn", json.dumps(txn).encode()))[0] == 200
    assert leader.kv.revision == applied + 1  # only the last one went through the log


async def test_unknown_routes_and_methods_say_what_there_is(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=10.0)
    lean, _, _ = both_paths(leader)
    status, _, body = await call(lean, "GET", "/api/nothing")
    assert (status, json.loads(body)) == (
        404,
        {"error": "no such endpoint: GET /api/nothing (the API is at /docs)", "code": "not_found"},
    )
    status, _, body = await call(lean, "POST", "/api/kv/k", b"{}")
    assert (status, json.loads(body)) == (
        405,
        {"error": "/api/kv/k does not take POST; it takes DELETE, GET, PUT", "code": "method_not_allowed"},
    )


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_a_write_to_the_range_route_is_no_redirect(
    cluster: Cluster, autojump_clock: trio.testing.MockClock, method: str
) -> None:
    """``/api/kv`` takes only GET, ``/api/kv/`` (the empty key) PUT and
    DELETE too: Werkzeug answered a PUT or a DELETE of ``/api/kv`` (``curl
    -X DELETE '.../api/kv?prefix=a'``) with its 308 to ``/api/kv/`` and an
    HTML page, no JSON and no redirect of the contract (found by
    hand-fuzzing the routes). It is the empty key's 400, nothing changed."""
    leader = await cluster.wait_for_leader(within=10.0)
    lean, quart, _ = both_paths(leader)
    applied = leader.kv.revision
    for path in ("/api/kv", "/api/kv/"):
        status, headers, body = await call(lean, method, path, b'{"value": "v"}')
        assert status == 400, (path, status, body[:200])
        assert headers["content-type"] == "application/json" and "location" not in headers
        assert json.loads(body) == {"error": "the key is empty", "code": "bad_request"}
    assert (await call(quart, "GET", "/api/kv"))[0] == 200  # still the range
    assert leader.kv.revision == applied


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/leadership/transfer", b'{"too": "n2"}', "too"),
        ("/api/members", b'{"id": "n9", "url": "http://n9:9001", "voter": true}', "voter"),
    ],
)
async def test_a_field_these_requests_do_not_have_is_refused_and_changes_nothing(
    cluster: Cluster, autojump_clock: trio.testing.MockClock, path: str, body: bytes, field: str
) -> None:
    """A misspelt ``to`` handed leadership to whichever voter was most
    caught up, and an unknown field of a member to add was dropped: both
    are requests nobody sent. As every coordination request, they name
    the field instead."""
    leader = await cluster.wait_for_leader(within=10.0)
    lean, _, _ = both_paths(leader)
    members = leader.membership
    headers = {"content-type": "application/json", "content-length": str(len(body))}
    status, _, answer = await call(lean, "POST", path, body, headers)
    assert status == 400, answer
    document = json.loads(answer)
    assert document["code"] == "bad_request", document
    assert f"unknown field `{field}`" in document["error"], document
    assert leader.is_leader and leader.membership == members


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("/api/leases", b'{"ttl": "10"}', "Expected `int`, got `str` - at `$.ttl`"),
        (
            "/api/auth/roles/readers/permissions",
            b'{"access": "read", "key": "a", "prefix": "true"}',
            "Expected `bool`, got `str` - at `$.prefix`",
        ),
    ],
)
async def test_a_json_body_is_read_with_its_own_types(
    cluster: Cluster, autojump_clock: trio.testing.MockClock, path: str, body: bytes, says: str
) -> None:
    """A string where a number belongs is not the number: quart-schema
    converts with the loose rules meant for query strings, and a TTL of
    "10" granted a lease. JSON says its types, as the lean PUT always
    read them."""
    leader = await cluster.wait_for_leader(within=10.0)
    lean, _, _ = both_paths(leader)
    applied = leader.kv.revision
    headers = {"content-type": "application/json", "content-length": str(len(body))}
    status, _, answer = await call(lean, "POST", path, body, headers)
    assert status == 400, answer
    document = json.loads(answer)
    assert document["code"] == "bad_request", document
    assert says in document["error"], document
    assert leader.kv.revision == applied  # nothing went through the log


async def test_an_empty_transfer_body_asks_for_the_most_caught_up_voter(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=10.0)
    lean, _, _ = both_paths(leader)
    status, _, body = await call(lean, "POST", "/api/leadership/transfer", headers={"content-type": ""})
    assert status == 200, body
    assert json.loads(body)["leader_id"] != leader.id


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/txn", b"[" * 100_000 + b"]" * 100_000),
        ("/api/txn", b'{"success": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"),
        ("/api/leases", b'{"ttl": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_001),
    ],
)
async def test_a_body_nested_too_deeply_is_a_400(
    cluster: Cluster, autojump_clock: trio.testing.MockClock, path: str, body: bytes
) -> None:
    """Python's JSON decoder recurses once per array or object it opens
    and raises RecursionError, no ValueError, past the interpreter's
    limit: a body of 5,000 brackets was a 500 with a traceback (found by
    hand, fuzzing /api/txn). It is bad input, refused as such."""
    leader = await cluster.wait_for_leader(within=10.0)
    _, quart, _ = both_paths(leader)
    applied = leader.kv.revision
    status, _, answer = await call(quart, "POST", path, body, {"content-type": "application/json"})
    assert status == 400, answer
    document = json.loads(answer)
    assert document["code"] == "bad_request", document
    assert document["error"].startswith("the request body nests too deeply"), document
    assert leader.kv.revision == applied  # nothing went through the log


async def test_a_put_nested_too_deeply_is_handed_over_and_refused(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The lean PUT decodes with msgspec, which raises RecursionError too
    (also inside a field it skips): a 3,000-deep unknown field in a PUT
    of a few KiB was a 500 with an empty body."""
    leader = await cluster.wait_for_leader(within=10.0)
    lean, quart, handed_over = both_paths(leader)
    body = b'{"value": "v", "x": ' + b"[" * 3_000 + b"]" * 3_000 + b"}"
    headers = {"content-type": "application/json", "content-length": str(len(body))}
    status, _, answer = await call(lean, "PUT", "/api/kv/k", body, headers)
    assert status == 400, answer
    document = json.loads(answer)
    assert document["code"] == "bad_request", document
    assert document["error"].startswith("the request body nests too deeply"), document
    assert handed_over == ["/api/kv/k"]
    assert (await call(quart, "GET", "/api/kv/k"))[0] == 404  # nothing changed
