"""/docs on every node: CORS answers for the cluster's own origins only
(never ``null``, never credentials, never the peer endpoints), a
browser's body must say JSON, and ``/openapi.json`` reads as documents
do: whole-sentence summaries without reST markup, the package's version,
/metrics and /healthz listed."""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any

import pytest
import trio
import trio.testing

from raft_trio.http.app import create_app
from raft_trio.http.cors import MemberOrigins, origin_of
from tests.http.test_answers import both_paths, call, scope_of
from tests.node.harness import Cluster

MEMBERS = {"http://127.0.0.1:9001", "http://127.0.0.1:9002/", "https://Node-3.example:443"}


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://127.0.0.1:9001/", "http://127.0.0.1:9001"),
        ("https://Node-3.example:443", "https://node-3.example"),
        ("http://[::1]:9001", "http://[::1]:9001"),
        ("http://host:80/x", "http://host"),
        ("null", None),
        ("mem://n1", None),
    ],
)
def test_origins_are_written_as_browsers_write_them(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


async def through_cors(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bool]:
    """A request through MemberOrigins in front of an app that answers
    200: the status, the CORS headers (and Vary), and whether the app was
    reached."""
    reached = []
    status = 0
    seen: dict[str, str] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for name, value in message.get("headers", []):
                if name.startswith(b"access-control-") or name == b"vary":
                    seen[name.decode()] = value.decode()

    await MemberOrigins(app, lambda: MEMBERS)(scope_of(method, path, headers), receive, send)
    return status, seen, bool(reached)


PREFLIGHT = {"access-control-request-method": "PUT", "access-control-request-headers": "content-type"}


async def test_a_members_origin_gets_its_preflight_and_its_answers() -> None:
    status, headers, reached = await through_cors(
        "OPTIONS", "/api/kv/k", {"origin": "http://127.0.0.1:9002", **PREFLIGHT}
    )
    assert (status, reached) == (204, False)
    assert headers["access-control-allow-origin"] == "http://127.0.0.1:9002"
    assert "PUT" in headers["access-control-allow-methods"]
    assert "content-type" in headers["access-control-allow-headers"]
    assert "authorization" in headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in headers
    status, headers, reached = await through_cors("GET", "/api/kv/k", {"origin": "https://node-3.example"})
    assert (status, reached) == (200, True)
    assert headers["access-control-allow-origin"] == "https://node-3.example"
    assert "x-raft-revision" in headers["access-control-expose-headers"]
    assert headers["vary"] == "Origin" and "access-control-allow-credentials" not in headers


@pytest.mark.parametrize(
    ("origin", "path"),
    [
        ("http://evil.example", "/api/kv/k"),  # not a member
        ("null", "/api/kv/k"),  # after a redirect to another origin, or a sandboxed page
        ("http://127.0.0.1:9003", "/api/kv/k"),  # another port of a member's host
        ("http://127.0.0.1:9001/", "/api/kv/k"),  # not how a browser writes an origin
        ("http://127.0.0.1:9001", "/raft/stream"),  # the peers' endpoints
    ],
)
async def test_no_other_origin_gets_any_cors_header(origin: str, path: str) -> None:
    for method, extra in (("OPTIONS", PREFLIGHT), ("GET", {})):
        status, headers, reached = await through_cors(method, path, {"origin": origin, **extra})
        assert reached and status == 200  # the app answers as if CORS did not exist
        assert not any(name.startswith("access-control-") for name in headers), headers


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_a_browsers_body_must_say_json(
    cluster: Cluster, autojump_clock: trio.testing.MockClock, content_type: str
) -> None:
    """A page elsewhere can send a form's POST (or an empty one) without a
    preflight; such a request carries ``Origin`` and is refused (415),
    changing nothing, whatever its body holds."""
    leader = await cluster.wait_for_leader(within=10.0)
    lean, _, _ = both_paths(leader)
    txn = json.dumps({"success": [{"put": {"key": "csrf", "value": "x"}}]}).encode()
    for path, body in (("/api/txn", txn), ("/api/leadership/transfer", b"")):
        headers = {"origin": "http://evil.example", "content-type": content_type}
        if body:
            headers["content-length"] = str(len(body))
        status, _, answer = await call(lean, "POST", path, body, headers)
        assert status == 415, answer
        assert json.loads(answer) == {
            "error": "a request from a browser page must send its body as Content-Type: application/json",
            "code": "bad_request",
        }
    assert (await call(lean, "GET", "/api/kv/csrf"))[0] == 404
    assert leader.role_name == "leader"
    headers = {"origin": "http://evil.example", "content-type": "application/json"}
    assert (await call(lean, "POST", "/api/txn", txn, headers))[0] == 200  # curl, or a preflighted page


async def test_the_openapi_document_reads_as_a_document(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=10.0)
    client = create_app(leader).test_client()
    document = await (await client.get("/openapi.json")).get_json()
    assert document["info"]["version"] == importlib.metadata.version("raft-trio")
    assert {"/metrics", "/healthz", "/readyz", "/api/kv/{key}", "/api/watch"} <= set(document["paths"])
    for path, item in document["paths"].items():
        for method, operation in item.items():
            summary, description = operation["summary"], operation["description"]
            where = f"{method.upper()} {path}: {summary!r}"
            assert summary.endswith("."), where
            assert summary[0].isupper() or summary[0].isdigit(), where
            assert "`" not in summary and "``" not in description and "\n" not in summary, where
            assert description.startswith(summary.rstrip(".")[:20].split(" ")[0]), where
    # Every operation that takes input lists the 400 it answers to bad input.
    error_ref = {"$ref": "#/components/schemas/ErrorAnswer"}
    assert "ErrorAnswer" in document["components"]["schemas"]
    for path, method in [
        ("/api/leadership/transfer", "post"),
        ("/api/members", "post"),
        ("/api/kv/{key}", "delete"),
        ("/api/leases", "post"),
    ]:
        bad = document["paths"][path][method]["responses"]["400"]["content"]["application/json"]["schema"]
        assert bad == error_ref or bad.get("title") == "ErrorAnswer", (method, path, bad)
    assert "400" not in document["paths"]["/healthz"]["get"]["responses"]
    put = document["paths"]["/api/kv/{key}"]["put"]
    assert put["summary"] == (
        "Write a key (compare-and-set with expect, attached to a lease with lease); "
        "answers once the write is committed on a majority and applied."
    )
    assert "`expect`" in put["description"]
    page = await client.get("/docs")
    text = await page.get_data(as_text=True)
    assert page.status_code == 200 and '"status": "/api/status"' in text and "requestInterceptor" in text
