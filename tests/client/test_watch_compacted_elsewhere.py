"""A watch that one node cannot resume (410: it holds no history that old)
goes on at another node that can, and fails with ``Compacted`` only when
no node that answers holds it.

A node's history starts at its latest snapshot when it restarts, and at
the snapshot it installed when it fell behind; the other nodes usually
still hold the changes a watch needs ("from any node: revisions are the
same everywhere"). The clients raised ``Compacted`` at the first node
that answered 410, so a watch moved off a failed node onto one that had
just restarted or caught up by snapshot ended, although the rest of the
cluster could have served it."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
import trio

from raft_trio.client import Client, Compacted, TrioClient

URLS = ["http://a:1", "http://b:1", "http://c:1"]
STREAM = {"content-type": "text/event-stream"}


def event(key: str, revision: int) -> bytes:
    data = {"key": key, "value": "v", "create_revision": revision, "mod_revision": revision, "version": 1}
    return f"id: {revision}\nevent: put\ndata: {json.dumps(data)}\n\n".encode()


def gone(oldest: int) -> httpx.Response:
    body = {"error": "no longer kept", "code": "compacted", "compact_revision": oldest}
    return httpx.Response(410, json=body)


def cluster(asked: list[str]) -> Callable[[httpx.Request], httpx.Response]:
    """``a`` serves revision 5 and stops; ``b`` restarted from a snapshot
    at 100 (410); ``c`` holds the history and serves revision 6."""

    def answer(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        asked.append(f"{host} {request.headers.get('last-event-id')}")
        if host == "a":
            if "last-event-id" in request.headers:
                return httpx.Response(503, json={"error": "stopping", "code": "unavailable"})
            return httpx.Response(200, content=event("jobs/1", 5), headers=STREAM)
        if host == "b":
            return gone(101)
        return httpx.Response(200, content=event("jobs/1", 5) + event("jobs/2", 6), headers=STREAM)

    return answer


async def test_the_trio_client_resumes_at_a_node_that_holds_the_history() -> None:
    asked: list[str] = []
    http = httpx.AsyncClient(transport=httpx.MockTransport(cluster(asked)))
    async with (
        TrioClient(URLS, http=http) as client,
        client.watch(prefix="jobs/", start_revision=5) as changes,
    ):
        with trio.fail_after(10):
            got = [(await changes.__anext__()).revision, (await changes.__anext__()).revision]
    assert got == [5, 6]
    assert asked[:3] == ["a None", "b 4", "c 4"]


def test_the_blocking_client_resumes_at_a_node_that_holds_the_history() -> None:
    asked: list[str] = []
    http = httpx.Client(transport=httpx.MockTransport(cluster(asked)))
    with Client(URLS, http=http) as client, client.watch(prefix="jobs/", start_revision=5) as changes:
        iterator = iter(changes)
        got = [next(iterator).revision, next(iterator).revision]
    assert got == [5, 6]
    assert asked[:3] == ["a None", "b 4", "c 4"]


async def test_compacted_once_no_node_that_answers_holds_the_history() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        if request.url.host == "c":
            raise httpx.ConnectError("refused")
        return gone(101 if request.url.host == "a" else 90)

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    async with TrioClient(URLS, http=http) as client:
        with trio.fail_after(10), pytest.raises(Compacted) as raised:
            async with client.watch(prefix="jobs/", start_revision=5) as changes:
                await changes.__anext__()
    assert asked == ["a", "b", "c"]  # one round, each once
    assert raised.value.compact_revision in (90, 101)


async def test_a_node_that_drops_the_watch_mid_stream_hands_it_to_another() -> None:
    """A follower that installs a snapshot tells its watchers the history
    is gone (an ``error`` event); the leader may still hold it."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a":
            error = json.dumps({"error": "no longer kept", "code": "compacted", "compact_revision": 50})
            body = event("jobs/1", 5) + f"event: error\ndata: {error}\n\n".encode()
            return httpx.Response(200, content=body, headers=STREAM)
        return httpx.Response(200, content=event("jobs/2", 6), headers=STREAM)

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    async with (
        TrioClient(URLS, http=http) as client,
        client.watch(prefix="jobs/", start_revision=5) as changes,
    ):
        with trio.fail_after(10):
            got = [(await changes.__anext__()).revision, (await changes.__anext__()).revision]
    assert got == [5, 6]


async def test_a_410_does_not_end_a_watch_that_another_node_served_in_the_round() -> None:
    """``a`` is behind (410), ``b`` serves then its connection breaks,
    ``c`` is behind too: ``b`` holds the history, so the watch goes on
    there in the next round rather than fail."""
    served_by_b = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal served_by_b
        if request.url.host != "b":
            return gone(101)
        served_by_b += 1
        if served_by_b == 1:
            return httpx.Response(200, content=b": keep-alive\n\n", headers=STREAM)
        return httpx.Response(200, content=event("jobs/1", 5), headers=STREAM)

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    async with (
        TrioClient(URLS, http=http) as client,
        client.watch(prefix="jobs/", start_revision=5) as changes,
    ):
        with trio.fail_after(10):
            assert (await changes.__anext__()).revision == 5
