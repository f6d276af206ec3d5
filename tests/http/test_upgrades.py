"""Connections that switch protocols (``raft_trio.asgi``): a connection
whose first request asks for one of the server's upgrades goes to that
upgrade's handler with everything it sent; every other connection is
Hypercorn's, with every byte read meanwhile (pipelined requests, heads in
pieces, an upgrade nobody offers); a head that never completes is closed
within the keep-alive timeout, as Hypercorn closes it. Real sockets on
127.0.0.1."""

from __future__ import annotations

import functools
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from raft_trio import asgi
from raft_trio.asgi import UpgradeRequest, serve_app

from ._lifespan import acknowledge_lifespan


async def hello(scope: Any, receive: Any, send: Any) -> None:
    """An app that answers every request with its path and its Upgrade header."""
    if scope["type"] == "lifespan":
        await acknowledge_lifespan(receive, send)
        return
    upgrade = dict(scope["headers"]).get(b"upgrade", b"-")
    body = scope["path"].encode() + b" " + upgrade
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


class Echo:
    """The handler of the ``echo`` protocol: answers 101, then sends back
    in upper case every byte until the client's EOF."""

    def __init__(self) -> None:
        self.requests: list[UpgradeRequest] = []

    async def __call__(self, request: UpgradeRequest, connection: trio.abc.Stream) -> None:
        self.requests.append(request)
        await connection.send_all(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
        )
        if request.rest:
            await connection.send_all(request.rest.upper())
        while data := await connection.receive_some(4096):
            await connection.send_all(bytes(data).upper())


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[tuple[int, Echo]]:
    echo = Echo()
    shutdown = trio.Event()
    addresses = await nursery.start(
        functools.partial(serve_app, hello, "127.0.0.1", 0, shutdown, upgrades={"echo": echo})
    )
    port = int(addresses[0].rsplit(":", 1)[1])
    yield port, echo
    shutdown.set()


async def read_until(stream: trio.SocketStream, end: bytes, have: bytes = b"") -> bytes:
    data = have
    with trio.fail_after(5):
        while end not in data:
            chunk = await stream.receive_some(4096)
            assert chunk, f"closed after {data!r}"
            data += chunk
    return data


async def test_a_connection_asking_for_an_offered_protocol_goes_to_its_handler(
    server: tuple[int, Echo],
) -> None:
    port, echo = server
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        # The head and the first bytes of the new protocol in one segment.
        await stream.send_all(
            b"GET /x/stream?a=1 HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: ECHO\r\n"
            b"X-Who: n2\r\n\r\nfirst "
        )
        answer = await read_until(stream, b"FIRST ")
        assert answer.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        await stream.send_all(b"and more")
        assert await read_until(stream, b"AND MORE") == b"AND MORE"
        await stream.send_eof()
        with trio.fail_after(5):
            assert await stream.receive_some(4096) == b""  # the handler returned: closed
    (request,) = echo.requests
    assert (request.method, request.target, request.rest) == ("GET", "/x/stream?a=1", b"first ")
    assert request.headers["x-who"] == "n2" and request.headers["upgrade"] == "ECHO"
    assert request.client[0] == "127.0.0.1" and request.certificate is None


@pytest.mark.parametrize(
    "pieces",
    [
        # Two pipelined requests in one segment.
        [b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"],
        # A head in pieces, the second request later on the same connection.
        [b"GE", b"T /a HTTP/1.1\r\nHo", b"st: h\r\n", b"\r\n", b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"],
        # Asking for a protocol nobody offers: an ordinary request.
        [b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: other\r\n\r\n"],
    ],
)
async def test_every_other_connection_is_served_by_hypercorn_with_every_byte(
    server: tuple[int, Echo], pieces: list[bytes]
) -> None:
    port, echo = server
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        for piece in pieces:
            await stream.send_all(piece)
            await trio.sleep(0.01)
        answers = await read_until(stream, b"/a ")
        if b"GET /b" in b"".join(pieces):
            answers = await read_until(stream, b"/b -", answers)
            assert answers.count(b"HTTP/1.1 200 ") == 2
        else:
            assert answers.endswith(b"/a other")
    assert echo.requests == []


async def test_a_head_that_never_completes_is_closed_within_the_keep_alive_timeout(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(asgi, "KEEP_ALIVE_TIMEOUT_S", 0.5)
    shutdown = trio.Event()
    addresses = await nursery.start(
        functools.partial(serve_app, hello, "127.0.0.1", 0, shutdown, upgrades={"echo": Echo()})
    )
    stream = await trio.open_tcp_stream("127.0.0.1", int(addresses[0].rsplit(":", 1)[1]))
    async with stream:
        await stream.send_all(b"GET /a HTTP/1.1\r\nHost: h\r\n")  # and nothing more
        started = trio.current_time()
        with trio.fail_after(5):
            assert await stream.receive_some(4096) == b""
        assert trio.current_time() - started >= 0.4
    shutdown.set()


async def test_a_connection_reset_under_a_handlers_nursery_leaves_the_server_serving(
    nursery: trio.Nursery,
) -> None:
    """The client resets the connection (a killed process) while the
    handler reads it in a task of its own: the handler ends, the server
    goes on (the error reached the server wrapped in an exception group,
    and once stopped the node)."""
    ended = trio.Event()

    async def reading_in_a_nursery(request: UpgradeRequest, connection: trio.abc.Stream) -> None:
        await connection.send_all(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
        )
        try:
            async with trio.open_nursery() as tasks:
                tasks.start_soon(connection.receive_some, 4096)
        finally:
            ended.set()

    shutdown = trio.Event()
    addresses = await nursery.start(
        functools.partial(serve_app, hello, "127.0.0.1", 0, shutdown, upgrades={"echo": reading_in_a_nursery})
    )
    port = int(addresses[0].rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(b"GET /s HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
    await read_until(stream, b"\r\n\r\n")
    # Closed with a reset, not a FIN: SO_LINGER on, with a zero timeout.
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()
    with trio.fail_after(5):
        await ended.wait()
    again = await trio.open_tcp_stream("127.0.0.1", port)
    async with again:
        await again.send_all(b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (await read_until(again, b"/after -")).startswith(b"HTTP/1.1 200 ")
    shutdown.set()
