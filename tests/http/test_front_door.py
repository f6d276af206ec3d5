"""The node's ASGI entry (raft_trio.http.front) serves a plain key request
on the leader itself, past the layers that would not change it, and hands
every other request to the whole app as served; either way the request
gets the same bytes. Real apps over three in-memory nodes, on Trio's fake
clock."""

from __future__ import annotations

import json
from typing import Any

import httpx
import trio
import trio.testing

from raft_trio.asgi import CloseWhenBodyUnread, ShieldedSend
from raft_trio.http.app import create_app, front_door
from raft_trio.http.cors import MemberOrigins
from raft_trio.node import RaftNode
from raft_trio.node import metrics as node_metrics
from tests.http.test_answers import Sent, scope_of
from tests.http.test_answers import call as answers_call
from tests.node.harness import Cluster
from tests.security.auth_support import bearer, login, set_up_users


class Served:
    """A node's app as ``serve_app`` serves it, with the front door in
    front, and the requests the front door handed to the whole app."""

    def __init__(self, node: RaftNode) -> None:
        app = self.app = create_app(node)
        self.whole = ShieldedSend(CloseWhenBodyUnread(app))
        self.handed_over: list[tuple[str, str, bytes]] = []

        async def spy(scope: Any, receive: Any, send: Any) -> None:
            message = await receive()
            body = message.get("body", b"")
            self.handed_over.append((scope["method"], scope["path"], body))
            again = False

            async def replayed() -> Any:
                nonlocal again
                if not again:
                    again = True
                    return message
                return await receive()

            await self.whole(scope, replayed, send)

        self.front = front_door(app)(spy)


async def call(
    app: Any, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> Sent:
    """One request to an ASGI app: status, every header, body."""
    return await answers_call(app, method, path, body, headers, keep=None)


async def test_plain_key_requests_on_the_leader_are_served_in_front_alike(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=10.0)
    served = Served(leader)
    put = json.dumps({"value": "v1"}).encode()
    cas = json.dumps({"value": "v2", "expect": "not v1"}).encode()
    requests = [
        ("PUT", "/api/kv/k1", put, {"Idempotency-Key": "w-1"}),
        ("PUT", "/api/kv/k1", cas, {"Idempotency-Key": "c-1"}),
        ("GET", "/api/kv/k1", b"", {}),
        ("GET", "/api/kv/absent", b"", {}),
    ]
    statuses = []
    for method, path, body, headers in requests:
        first = await call(served.front, method, path, body, headers)
        # The whole app, given the same request (a write under the same
        # key again: its first outcome), answers the same bytes.
        assert first == await call(served.whole, method, path, body, headers), (method, path)
        statuses.append(first[0])
    assert statuses == [200, 409, 200, 404]
    assert served.handed_over == [], "the front door served every one of these itself"


async def test_what_another_layer_would_change_takes_the_whole_app(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=10.0)
    served = Served(leader)
    await call(served.front, "PUT", "/api/kv/k1", b'{"value": "v1"}')
    assert served.handed_over == []

    # A browser's request: the CORS layer adds its headers (the members'
    # URLs here are mem://, no origin a browser sends: take another).
    origin = "http://member.example:9001"
    cors = served.app.asgi_app
    assert isinstance(cors, MemberOrigins)
    cors.allowed = lambda: {origin}
    status, headers, _ = await call(served.front, "GET", "/api/kv/k1", headers={"Origin": origin})
    assert status == 200 and headers["access-control-allow-origin"] == origin
    # A GET with a body, answered before it is read: the answer says the
    # connection closes.
    status, headers, _ = await call(served.front, "GET", "/api/kv/k1", b"{}")
    assert status == 200 and headers["connection"] == "close"
    # A body the lean route does not take (a lone surrogate): read, then
    # handed over whole, and Quart answers it.
    odd = b'{"value": "\\ud800"}'
    status, _, answer = await call(served.front, "PUT", "/api/kv/k2", odd)
    assert status == 400 and json.loads(answer)["code"] == "bad_request"
    # Not a plain key request: Quart's.
    status, _, _ = await call(served.front, "GET", "/api/status")
    assert status == 200
    assert served.handed_over == [
        ("GET", "/api/kv/k1", b""),
        ("GET", "/api/kv/k1", b"{}"),
        ("PUT", "/api/kv/k2", odd),
        ("GET", "/api/status", b""),
    ]

    follower = next(h.node for h in cluster.hosts.values() if h.node is not leader)
    on_follower = Served(follower)
    status, headers, _ = await call(on_follower.front, "GET", "/api/kv/k1")
    assert status == 307 and headers["location"] == f"{leader.url}/api/kv/k1"
    assert on_follower.handed_over == [("GET", "/api/kv/k1", b"")]


async def test_the_gate_decides_in_front_and_refuses_the_whole_way(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=10.0)
    served = Served(leader)
    transport = httpx.ASGITransport(app=served.front)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        await set_up_users(client)
        alice, bob = await login(client, "alice"), await login(client, "bob")
    served.handed_over.clear()

    # (Plain ASGI calls from here: httpx's ASGI transport leaves a body
    # the app never read unclosed.)
    # Admitted in front: alice writes her prefix (the state machine checks
    # the write again as the user stamped on it), and bob reads it.
    body = b'{"value": "a"}'
    status, _, answer = await call(served.front, "PUT", "/api/kv/app1", body, bearer(alice))
    assert status == 200, answer
    status, _, answer = await call(served.front, "GET", "/api/kv/app1", headers=bearer(bob))
    assert status == 200 and json.loads(answer)["value"] == "a"
    assert served.handed_over == []

    # Refused: the whole way, answered and counted once.
    refused = node_metrics.CLIENT_REQUESTS_REFUSED.labels("403")
    before = refused._value.get()
    status, _, answer = await call(served.front, "PUT", "/api/kv/app1", b'{"value": "b"}', bearer(bob))
    assert status == 403 and "no write permission" in json.loads(answer)["error"]
    assert refused._value.get() == before + 1
    status, _, _ = await call(served.front, "GET", "/api/kv/app1")
    assert status == 401
    assert served.handed_over == [("PUT", "/api/kv/app1", b'{"value": "b"}'), ("GET", "/api/kv/app1", b"")]
    found = leader.kv.get("app1")
    assert found is not None and found.value == "a"


async def test_a_body_that_stops_coming_is_timed_out_alike(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A PUT whose body stops halfway is answered 408 once Quart's
    ``BODY_TIMEOUT`` ran out (docs/hostile.md), by the lean route too
    (which held the request, and its connection, for ever), with the
    same bytes and one ``Connection: close``, served in front or not."""
    leader = await cluster.wait_for_leader(within=10.0)
    served = Served(leader)

    async def stalled(app: Any, content_type: str) -> tuple[int, list[tuple[str, str]], bytes, float]:
        first = True

        async def receive() -> dict[str, Any]:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": b'{"val', "more_body": True}
            await trio.sleep_forever()
            raise AssertionError

        status = 0
        headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers.extend((k.decode().lower(), v.decode()) for k, v in message["headers"])
            else:
                chunks.append(message.get("body", b""))

        head = {"content-type": content_type, "content-length": "20"}
        start = trio.current_time()
        with trio.fail_after(300):
            await app(scope_of("PUT", "/api/kv/slow", head), receive, send)
        return status, headers, b"".join(chunks), trio.current_time() - start

    timeout = served.app.config["BODY_TIMEOUT"]
    quart = await stalled(served.whole, "application/json; charset=utf-8")  # the lean route hands over
    assert quart[0] == 408 and json.loads(quart[2])["error"]
    for app in (served.whole, served.front):  # the lean route behind every layer, or in front
        status, headers, body, waited = await stalled(app, "application/json")
        assert (status, body) == (408, quart[2])
        assert headers == quart[1]
        assert headers.count(("connection", "close")) == 1
        assert abs(waited - timeout) < 1
    assert served.handed_over == []
    assert leader.kv.get("slow") is None
