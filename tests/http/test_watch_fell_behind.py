"""A watcher that falls behind the history gets the documented ``error``
event with the oldest revision held, and its stream ends.

The stream built that event's answer with the request's target, read
from Quart's request context inside the streaming generator, where
there is none: the generator raised ``RuntimeError: Not within a request
context`` instead, the connection broke without the event, and a
browser's EventSource reconnected into a 410 it gives up on without
being told why (a review's finding)."""

from __future__ import annotations

import json
from typing import Any

import trio
import trio.testing

from raft_trio.http.app import create_app
from raft_trio.kv import Put, Written
from raft_trio.testing.waiting import wait_for
from tests.http.test_answers import scope_of
from tests.node.harness import ELECTION_MAX_S, Cluster


async def test_a_watcher_that_fell_behind_gets_an_error_event_and_its_stream_ends(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    app: Any = create_app(leader)  # called as the server calls it
    chunks: list[bytes] = []
    reader_resumes = trio.Event()
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        """A reader that stops reading after its first event."""
        body = message.get("body", b"")
        chunks.append(body)
        if body.startswith(b"id: "):
            await reader_resumes.wait()

    ended = trio.Event()

    async def watch() -> None:
        await app(scope_of("GET", "/api/watch", {}), receive, send)
        ended.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        with trio.fail_after(5):
            await wait_for(lambda: len(leader.watches) == 1)
            first = await leader.write(Put("k0", "v"))
            await wait_for(lambda: any(chunk.startswith(b"id: ") for chunk in chunks))
        history = leader.kv.history
        history.max_changes = 2
        for n in range(1, 6):
            await leader.write(Put(f"k{n}", "v"))
        # The changes the watcher needs next (after the first) are gone.
        assert isinstance(first, Written) and history.floor > first.index + 1
        reader_resumes.set()
        with trio.fail_after(5):
            await ended.wait()
    error = [chunk for chunk in chunks if chunk.startswith(b"event: error")]
    assert len(error) == 1, chunks
    data = json.loads(error[0].split(b"data: ", 1)[1])
    assert data["code"] == "compacted" and data["compact_revision"] == history.floor
    assert len(leader.watches) == 0
