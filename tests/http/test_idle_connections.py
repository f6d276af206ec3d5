"""Idle connections (``raft_trio.asgi._IdleTimer``, in place of Hypercorn's
timer that started a task after every answer): a keep-alive connection
idle for the keep-alive timeout is closed, one that keeps asking is not,
an answer that takes longer than the timeout is not cut, and a server
that stops closes its idle connections at once. Real sockets on
127.0.0.1."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from raft_trio import asgi
from raft_trio.asgi import serve_app

from ._lifespan import acknowledge_lifespan

TIMEOUT_S = 0.5


async def app(scope: Any, receive: Any, send: Any) -> None:
    """Answers ``ok``; ``/slow`` after twice the keep-alive timeout."""
    if scope["type"] == "lifespan":
        await acknowledge_lifespan(receive, send)
        return
    if scope["path"] == "/slow":
        await trio.sleep(2 * TIMEOUT_S)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class Server:
    def __init__(self, port: int, shutdown: trio.Event) -> None:
        self.port = port
        self.shutdown = shutdown

    async def connect(self) -> trio.SocketStream:
        return await trio.open_tcp_stream("127.0.0.1", self.port)


@pytest.fixture
async def server(nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Server]:
    monkeypatch.setattr(asgi, "KEEP_ALIVE_TIMEOUT_S", TIMEOUT_S)
    shutdown = trio.Event()
    addresses = await nursery.start(functools.partial(serve_app, app, "127.0.0.1", 0, shutdown))
    yield Server(int(addresses[0].rsplit(":", 1)[1]), shutdown)
    shutdown.set()


async def ask(stream: trio.SocketStream, path: str = "/") -> None:
    await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    data = b""
    with trio.fail_after(5):
        while not data.endswith(b"\r\n\r\nok"):
            chunk = await stream.receive_some(4096)
            assert chunk, f"closed after {data!r}"
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ")


async def closed_after(stream: trio.SocketStream) -> float:
    """Seconds until the server closes the connection."""
    started = trio.current_time()
    with trio.fail_after(10):
        assert await stream.receive_some(4096) == b""
    return trio.current_time() - started


async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(server: Server) -> None:
    async with await server.connect() as stream:
        await ask(stream)
        assert 0.8 * TIMEOUT_S <= await closed_after(stream) <= 4 * TIMEOUT_S


async def test_a_connection_that_keeps_asking_stays_open(server: Server) -> None:
    async with await server.connect() as stream:
        started = trio.current_time()
        while trio.current_time() - started < 3 * TIMEOUT_S:
            await ask(stream)
            await trio.sleep(TIMEOUT_S / 3)
        await ask(stream)


async def test_an_answer_slower_than_the_timeout_is_not_cut(server: Server) -> None:
    async with await server.connect() as stream:
        await ask(stream)
        await ask(stream, "/slow")
        await ask(stream)


async def test_a_stopping_server_closes_its_idle_connections_at_once(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(asgi, "KEEP_ALIVE_TIMEOUT_S", 60.0)
    shutdown = trio.Event()
    addresses = await nursery.start(functools.partial(serve_app, app, "127.0.0.1", 0, shutdown))
    async with await trio.open_tcp_stream("127.0.0.1", int(addresses[0].rsplit(":", 1)[1])) as stream:
        await ask(stream)
        shutdown.set()
        assert await closed_after(stream) < 5.0


async def test_an_answer_to_head_comes_whole_and_the_connection_goes_on(server: Server) -> None:
    """An answer to HEAD has a Content-Length and no body: its head is
    written when the answer ends (the server holds such a head until its
    body follows), and the next request on the connection is answered."""
    async with await server.connect() as stream:
        await stream.send_all(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
        data = b""
        with trio.fail_after(5):
            while b"\r\n\r\n" not in data:
                data += await stream.receive_some(4096)
        assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\n")
        await ask(stream)
