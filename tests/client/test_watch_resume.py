"""A watch moved off a node that was cut off loses nothing.

A node cut off from its peers ends its watches (etcd's require-leader
watches); the client opens the watch again on another node. A watch
"from the next change" that had delivered nothing yet carried neither a
start revision nor ``Last-Event-ID``, so the other node started at its
own next change and the changes made meanwhile were lost (a review's
finding). The client now resumes after the revision its first answer
carried (``X-Raft-Revision``). Three runtimes of the node harness, each
served over a real socket; real time, with the keep-alive shortened.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial

import httpx
import pytest
import trio
import trio.testing

from raft_trio.asgi import serve_app
from raft_trio.client import Client, NoEndpointAnswered, TrioClient
from raft_trio.client._watch import WatchCursor
from raft_trio.http import coordination
from raft_trio.http.app import create_app, front_door
from raft_trio.testing.waiting import wait_for
from tests.node.harness import ELECTION_MAX_S, Cluster


def test_a_watch_that_delivered_nothing_resumes_after_its_first_answers_revision() -> None:
    cursor = WatchCursor(prefix="jobs/")
    cursor.opened({"X-Raft-Revision": "41"})
    assert "start_revision=42" in cursor.target("/api")
    cursor.opened({"X-Raft-Revision": "50"})  # a later node's answer changes nothing
    assert "start_revision=42" in cursor.target("/api")
    asked = WatchCursor(prefix="jobs/", start_revision=7)
    asked.opened({"X-Raft-Revision": "41"})
    assert "start_revision=7" in asked.target("/api")


async def test_changes_made_while_the_watch_moves_off_a_cut_off_node_are_delivered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(coordination, "WATCH_KEEPALIVE_S", 0.3)
    got: list[str] = []
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery)
        await cluster.start()
        leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
        shutdown = trio.Event()
        urls = {}
        for node_id, host in cluster.hosts.items():
            app = create_app(host.node)
            serve = partial(serve_app, app, "127.0.0.1", 0, shutdown, "", front=front_door(app))
            urls[node_id] = (await nursery.start(serve))[0]
        cut = next(h for h in cluster.hosts.values() if h.node is not leader)
        with trio.fail_after(5):
            await wait_for(lambda: cut.node.out_of_touch() is None)
        order = [urls[cut.node.id], *(url for i, url in urls.items() if i != cut.node.id)]
        async with (
            TrioClient(order) as client,
            TrioClient(urls[leader.id]) as writer,
            trio.open_nursery() as watching,
        ):
            before = await writer.put("jobs/0", "before the watch")
            with trio.fail_after(5):
                await wait_for(lambda: cut.node.kv.revision >= before.index)

            async def watch() -> None:
                async with client.watch(prefix="jobs/") as changes:
                    async for event in changes:
                        got.append(event.change.key)  # noqa: PERF401 (as they come, not at the end)

            watching.start_soon(watch)
            with trio.fail_after(5):
                await wait_for(lambda: len(cut.node.watches) > 0)  # served by the node to be cut off
            cut.paused = True  # it hears nothing from the leader from now on
            await writer.put("jobs/1", "while the watch moves")
            others = [h.node for h in cluster.hosts.values() if h is not cut]
            with trio.fail_after(10):
                await wait_for(
                    lambda: not len(cut.node.watches) and any(len(n.watches) for n in others), poll=0.05
                )
            await writer.put("jobs/2", "after")
            with trio.fail_after(10):
                await wait_for(lambda: "jobs/2" in got, poll=0.05)
            watching.cancel_scope.cancel()
        assert got == ["jobs/1", "jobs/2"]
        shutdown.set()
        for host in cluster.hosts.values():
            host.node.close()
        nursery.cancel_scope.cancel()


def mock_client(answer: Callable[[httpx.Request], httpx.Response], timeout: float = 10.0) -> TrioClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return TrioClient(["http://a:1", "http://b:1", "http://c:1"], timeout=timeout, http=http)


CUT_OFF = b": ended: this node is out of touch (no leader is known); watch elsewhere\n\n"


async def test_a_watch_that_only_reaches_cut_off_nodes_gives_up_in_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Every node ends the watch at once: tries back off and the watch
    fails after the client's timeout, rather than asking ten times a
    second for ever (a review's finding)."""
    asked = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal asked
        asked += 1
        return httpx.Response(200, content=CUT_OFF, headers={"content-type": "text/event-stream"})

    async def watch_all(client: TrioClient) -> None:
        async with client.watch(prefix="jobs/") as changes:
            async for _ in changes:
                pass

    async with mock_client(answer, timeout=3.0) as client:
        with trio.fail_after(10), pytest.raises(NoEndpointAnswered):
            await watch_all(client)
    assert asked <= 3 * 8  # three endpoints a round, backing off to a second


async def test_a_start_taken_from_a_first_answer_gives_way_to_the_next_change_when_compacted() -> None:
    """The first node answered at revision 10 and ended; the next holds no
    history that old (410): the watch, asked from the next change, goes on
    from the next change instead of raising Compacted."""
    event = (
        b"id: 6000\nevent: put\ndata: "
        + json.dumps(
            {"key": "jobs/1", "value": "v", "create_revision": 6000, "mod_revision": 6000, "version": 1}
        ).encode()
        + b"\n\n"
    )

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a":
            return httpx.Response(200, content=b": watching\n\n", headers={"x-raft-revision": "10"})
        if "start_revision" in request.url.params:
            body = {"error": "compacted", "code": "compacted", "compact_revision": 5000}
            return httpx.Response(410, json=body)
        return httpx.Response(200, content=event, headers={"x-raft-revision": "5999"})

    async with mock_client(answer) as client, client.watch(prefix="jobs/") as changes:
        with trio.fail_after(10):
            first = await changes.__anext__()
    assert first.change.key == "jobs/1"


async def test_a_watch_that_gives_up_names_each_endpoint_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``raft-trio watch`` gave up with every round's tries listed, each
    endpoint ten times and more over; the last round names each once."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=CUT_OFF, headers={"content-type": "text/event-stream"})

    async def watch_all(client: TrioClient) -> None:
        async with client.watch(prefix="jobs/") as changes:
            async for _ in changes:
                pass

    async with mock_client(answer, timeout=3.0) as client:
        with trio.fail_after(10), pytest.raises(NoEndpointAnswered) as raised:
            await watch_all(client)
    ended = "stream ended"
    assert raised.value.tried == [("http://a:1", ended), ("http://b:1", ended), ("http://c:1", ended)]


def test_a_blocking_watch_that_gives_up_names_each_endpoint_once() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, content=b"<html>Not Found</html>")

    def first_change(client: Client) -> None:
        with client.watch(key="k") as changes:
            next(iter(changes))

    http = httpx.Client(transport=httpx.MockTransport(answer))
    client = Client(["http://a:1", "http://b:1"], timeout=0.5, http=http)
    with client, pytest.raises(NoEndpointAnswered) as raised:
        first_change(client)
    page = "HTTP 404 that is not a raft-trio node's answer"
    assert raised.value.tried == [("http://a:1", page), ("http://b:1", page)]
