"""``member_statuses`` (what ``raft-trio status`` prints) asks every
member at once in both clients, so a paused member costs its timeout
once, not once for each member. Each transport below answers a member's
``/status`` only once every member has been asked: a client that asks
one after another never gets there."""

from __future__ import annotations

import threading

import httpx
import msgspec
import pytest
import trio

from raft_trio import schema
from raft_trio.client import Client, TrioClient

URLS = ["http://a:9001", "http://b:9001", "http://c:9001"]
MEMBERS = [schema.Member(f"n{i}", url) for i, url in enumerate(URLS, 1)]


def answer(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/api/members":
        return httpx.Response(200, content=msgspec.json.encode(schema.MembersAnswer(MEMBERS)))
    member = next(m for m in MEMBERS if m.url.endswith(request.url.netloc.decode()))
    status = schema.Status(member.id, "follower", 1, "n1", URLS[0], 5, 5, 5, MEMBERS)
    return httpx.Response(200, content=msgspec.json.encode(status))


def test_the_blocking_client_asks_every_member_at_once() -> None:
    everyone_asked = threading.Barrier(len(MEMBERS), timeout=5)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/status":
            everyone_asked.wait()
        return answer(request)

    with httpx.Client(transport=httpx.MockTransport(handler)) as http, Client(URLS, http=http) as client:
        found = client.member_statuses(timeout=10)
    assert [(entry.member.id, entry.status and entry.status.id, entry.error) for entry in found] == [
        ("n1", "n1", None),
        ("n2", "n2", None),
        ("n3", "n3", None),
    ]


async def test_the_trio_client_asks_every_member_at_once(autojump_clock: trio.testing.MockClock) -> None:
    asked: list[str] = []
    everyone_asked = trio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/status":
            asked.append(request.url.host)
            if len(asked) == len(MEMBERS):
                everyone_asked.set()
            await everyone_asked.wait()
        return answer(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, TrioClient(URLS, http=http) as client:
        found = await client.member_statuses(timeout=10)
    assert [entry.error for entry in found] == [None, None, None]
    assert sorted(asked) == ["a", "b", "c"]


def test_what_is_not_a_member_failing_is_raised_by_the_blocking_client() -> None:
    """An error of the caller's own (here the transport's, as a client
    closed under the call raises) is not a member unreachable: raised,
    as the Trio twin raises it."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/status":
            raise RuntimeError("the client was closed")
        return answer(request)

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as http,
        Client(URLS, http=http) as client,
        pytest.raises(RuntimeError, match="closed"),
    ):
        client.member_statuses(timeout=10)
