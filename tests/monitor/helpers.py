"""Shared pieces of the monitor tests: node documents as a node sends them,
and a fake cluster (:class:`FakeNodes`) standing behind the watcher's
``NodeClient`` seam, for tests on Trio's fake clock."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import trio

from raft_monitor import NodeUnavailable, Report, parse_event
from raft_trio import schema
from raft_trio.client.sse import SseComment, SseDropped, SseEvent, SseParser

SseItem = SseEvent | SseComment | SseDropped

URLS = {f"n{i}": f"http://10.0.0.{i}:9001" for i in range(1, 6)}


def members(*ids: str, learners: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [{"id": i, "url": URLS[i], "voter": i not in learners} for i in ids]


def doc(
    node_id: str,
    role: str = "follower",
    term: int = 1,
    leader_id: str | None = "n1",
    commit: int = 0,
    applied: int | None = None,
    with_members: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": node_id,
        "role": role,
        "term": term,
        "leader_id": leader_id,
        "commit_index": commit,
        "applied_index": commit if applied is None else applied,
    }
    if with_members is not None:
        data["members"] = members(*with_members)
    return data


def as_status(data: dict[str, Any]) -> schema.Status:
    """An event's data as the node's ``/api/status`` would hold it."""
    defaults = {"leader_url": None, "last_log_index": data["commit_index"], "members": []}
    return msgspec.convert({**defaults, **data}, schema.Status)


def node_status(node_id: str, **kwargs: Any) -> schema.Status:
    """A node's ``/api/status`` (``doc``'s fields)."""
    return as_status(doc(node_id, **kwargs))


def report(name: str = "role", **kwargs: Any) -> Report:
    return parse_event(name, json.dumps(doc(**kwargs)))


def sse_lines(name: str, data: dict[str, Any] | str) -> list[str]:
    text = data if isinstance(data, str) else json.dumps(data)
    return [f"event: {name}", f"data: {text}", ""]


class FakeNode:
    """A node as the watcher sees it: ``up`` (streams, answers status and
    sends a keep-alive after each second without events, as the real node
    does), ``paused`` (accepts, never answers) or ``down`` (refuses)."""

    def __init__(self, node_id: str, status: dict[str, Any], keepalive: bool = True) -> None:
        self.id = node_id
        self.status = status
        self.state = "up"
        self.keepalive = keepalive
        self.connects = 0
        self._streams: set[trio.MemorySendChannel[str]] = set()
        self._resumed = trio.Event()

    def emit(self, name: str, data: dict[str, Any] | str) -> None:
        """An event on every open stream (the status document follows it)."""
        if isinstance(data, dict):
            self.status = {**self.status, **data}
        for channel in list(self._streams):
            for line in sse_lines(name, data):
                channel.send_nowait(line)

    def pause(self) -> None:
        self.state = "paused"
        self._resumed = trio.Event()

    def resume(self) -> None:
        self.state = "up"
        self._resumed.set()

    def kill(self) -> None:
        self.state = "down"
        for channel in list(self._streams):
            channel.close()
        self._streams.clear()

    async def _gate(self) -> None:
        if self.state == "down":
            raise NodeUnavailable("connection refused")
        while self.state == "paused":
            await self._resumed.wait()

    @contextlib.asynccontextmanager
    async def stream(self) -> AsyncIterator[AsyncIterator[SseItem]]:
        await self._gate()
        self.connects += 1
        send, receive = trio.open_memory_channel[str](1000)
        self._streams.add(send)
        for line in sse_lines("status", self.status):
            send.send_nowait(line)

        async def lines() -> AsyncIterator[str]:
            while True:
                with trio.move_on_after(1.0) as quiet:
                    try:
                        line = await receive.receive()
                    except trio.EndOfChannel:
                        return
                while self.state == "paused":
                    await self._resumed.wait()
                if quiet.cancelled_caught:
                    if self.keepalive:
                        yield ": keep-alive"
                        yield ""
                    continue
                yield line

        async def items() -> AsyncIterator[SseItem]:
            parser = SseParser()
            async for line in lines():
                if (item := parser.feed(line)) is not None:
                    yield item

        try:
            yield items()
        finally:
            self._streams.discard(send)
            send.close()


class FakeNodes:
    """The watcher's ``NodeClient`` over a dict of fake nodes, by URL."""

    def __init__(self) -> None:
        self.by_url: dict[str, FakeNode] = {}
        #: How many times the watcher asked a node's ``/api/status``.
        self.status_calls = 0

    def add(self, node_id: str, status: dict[str, Any], keepalive: bool = True) -> FakeNode:
        node = FakeNode(node_id, status, keepalive)
        self.by_url[URLS[node_id]] = node
        return node

    def stream(self, url: str) -> contextlib.AbstractAsyncContextManager[AsyncIterator[SseItem]]:
        node = self.by_url.get(url)
        if node is None:
            raise NodeUnavailable("cannot connect")
        return node.stream()

    async def status(self, url: str) -> schema.Status:
        self.status_calls += 1
        node = self.by_url.get(url)
        if node is None:
            raise NodeUnavailable("cannot connect")
        await node._gate()
        return as_status(node.status)
