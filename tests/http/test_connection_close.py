"""A connection closing while an answer is sent on it: Hypercorn 0.18
sends the EOF outside its send lock, so an answer sent in that moment met
``BusyResourceError`` and the node logged a traceback as it stopped
(raft_trio.asgi's server takes the lock for the EOF). And the same server
writes an answer of known length in one write, with a write(2) where
the kernel takes it whole."""

from __future__ import annotations

import pytest
import trio
from hypercorn.config import Config
from hypercorn.events import RawData
from hypercorn.trio.tcp_server import TCPServer

from raft_trio.asgi import _RecordingTCPServer


class SlowEofStream(trio.abc.HalfCloseableStream):
    """A stream whose ``send_eof`` takes a while, and which, like Trio's
    SocketStream, refuses a send while another send or EOF is under way."""

    def __init__(self) -> None:
        self.sending = False
        self.sent: list[bytes] = []
        self.closed = False

    def _enter(self) -> None:
        if self.sending:
            raise trio.BusyResourceError("another task is currently sending data on this stream")
        if self.closed:
            raise trio.ClosedResourceError
        self.sending = True

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._enter()
        try:
            await trio.lowlevel.checkpoint()
            self.sent.append(bytes(data))
        finally:
            self.sending = False

    async def send_eof(self) -> None:
        self._enter()
        try:
            await trio.sleep(0.01)
        finally:
            self.sending = False

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.sleep_forever()
        raise AssertionError

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()


class QuietProtocol:
    async def handle(self, event: object) -> None:
        pass


def server_on(server_class: type[TCPServer], stream: SlowEofStream) -> TCPServer:
    server = server_class(None, Config(), None, None, stream)  # type: ignore[arg-type]
    server.protocol = QuietProtocol()  # type: ignore[assignment]
    return server


async def close_while_answering(server: TCPServer) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server._close)
        await trio.sleep(0.001)  # the EOF is under way
        await server.protocol_send(RawData(b"HTTP/1.1 503 \r\n\r\n"))


async def test_hypercorn_alone_meets_a_busy_stream(autojump_clock: trio.testing.MockClock) -> None:
    """The failure this guards against, shown on Hypercorn's own server."""
    with pytest.RaisesGroup(trio.BusyResourceError, flatten_subgroups=True):
        await close_while_answering(server_on(TCPServer, SlowEofStream()))


async def test_an_answer_sent_while_closing_waits_its_turn(autojump_clock: trio.testing.MockClock) -> None:
    stream = SlowEofStream()
    await close_while_answering(server_on(_RecordingTCPServer, stream))
    assert stream.closed
    assert stream.sent == []  # the stream was closed first: the answer found it closed


async def test_a_send_that_never_ends_does_not_hold_up_the_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A peer that reads nothing holds the send lock forever: the close
    does not wait for it, and closing the stream ends that send."""
    stream = SlowEofStream()
    server = server_on(_RecordingTCPServer, stream)
    async with server.send_lock:
        with trio.fail_after(1):
            await server._close()
    assert stream.closed


async def test_an_answer_of_known_length_is_one_write(autojump_clock: trio.testing.MockClock) -> None:
    """Hypercorn wrote an answer's head, body and end (no bytes) each on
    its own; the node's server writes an answer with a Content-Length
    once, a head without one at once (a stream's), and the head of an
    answer that has no body (to HEAD) at its end."""
    stream = SlowEofStream()
    server = server_on(_RecordingTCPServer, stream)
    head = b"HTTP/1.1 200 \r\ncontent-length: 2\r\n\r\n"
    for data in (head, b"ok", b""):
        await server.protocol_send(RawData(data))
    assert stream.sent == [head + b"ok"]
    streaming = b"HTTP/1.1 200 \r\ntransfer-encoding: chunked\r\n\r\n"
    await server.protocol_send(RawData(streaming))
    assert stream.sent[-1] == streaming
    await server.protocol_send(RawData(b"2\r\nok\r\n"))
    await server.protocol_send(RawData(b"0\r\n\r\n"))
    assert stream.sent[-2:] == [b"2\r\nok\r\n", b"0\r\n\r\n"]
    await server.protocol_send(RawData(head))  # an answer to HEAD: no body follows
    assert stream.sent[-1] == b"0\r\n\r\n"
    await server.protocol_send(RawData(b""))
    assert stream.sent[-1] == head
    hypercorn_stream = SlowEofStream()
    for data in (head, b"ok", b""):
        await server_on(TCPServer, hypercorn_stream).protocol_send(RawData(data))
    assert hypercorn_stream.sent == [head, b"ok", b""]


def socket_server() -> tuple[TCPServer, trio.SocketStream]:
    """The node's server on one end of a connected socket pair, and the
    other end (the client's)."""
    ours, theirs = trio.socket.socketpair()
    return server_on(_RecordingTCPServer, trio.SocketStream(ours)), trio.SocketStream(theirs)  # type: ignore[arg-type]


async def read_exactly(stream: trio.SocketStream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.receive_some(65536)
        assert chunk, f"the connection ended after {len(data)} of {size} bytes"
        data += chunk
    return bytes(data)


async def test_an_answer_the_kernel_takes_whole_needs_no_trip_through_the_scheduler() -> None:
    server, client = socket_server()
    async with server.stream, client:
        answer = b"HTTP/1.1 200 \r\ncontent-length: 2\r\n\r\n"
        with trio.testing.assert_no_checkpoints():
            await server.protocol_send(RawData(answer))
            await server.protocol_send(RawData(b"ok"))
        assert await read_exactly(client, len(answer) + 2) == answer + b"ok"


async def test_what_the_kernel_does_not_take_goes_after_it_in_order() -> None:
    """An answer larger than the socket's buffer: the rest waits for the
    reader, holding the send lock; a second answer meanwhile waits its
    turn, and the client reads both whole, in order."""
    server, client = socket_server()
    big = bytes(range(256)) * (32 * 1024)  # 8 MiB
    second = b"2\r\nok\r\n"
    async with server.stream, client, trio.open_nursery() as nursery:
        nursery.start_soon(server.protocol_send, RawData(big))
        await trio.testing.wait_all_tasks_blocked()
        assert server.send_lock.locked()  # the kernel took part of it
        nursery.start_soon(server.protocol_send, RawData(second))
        received = await read_exactly(client, len(big) + len(second))
    assert received == big + second


async def test_an_answer_on_a_closed_connection_is_hypercorns_to_handle() -> None:
    server, client = socket_server()
    closed = []

    class Recording:
        async def handle(self, event: object) -> None:
            closed.append(event)

    server.protocol = Recording()  # type: ignore[assignment]
    await server.stream.aclose()
    await server.protocol_send(RawData(b"2\r\nok\r\n"))
    assert [type(event).__name__ for event in closed] == ["Closed"]
    await client.aclose()


async def test_a_streamed_answer_lets_the_loop_turn_between_its_chunks() -> None:
    """Chunks the kernel takes whole still pass the scheduler, one turn
    each: an app that sends its next chunk at once (a watch catching up
    on a long backlog) must not hold the loop, and the node's heartbeats,
    until its stream ends. An answer of known length needs no turn."""
    server, client = socket_server()
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            await trio.lowlevel.checkpoint()
            turns += 1

    head = b"HTTP/1.1 200 \r\ntransfer-encoding: chunked\r\n\r\n"
    chunk = b"5\r\nhello\r\n"
    async with server.stream, client, trio.open_nursery() as nursery:
        nursery.start_soon(count_turns)
        await trio.lowlevel.checkpoint()  # it runs, and counts from here
        before = turns
        await server.protocol_send(RawData(head))
        for _ in range(200):
            await server.protocol_send(RawData(chunk))
        assert turns - before >= 200
        received = await read_exactly(client, len(head) + 200 * len(chunk))
        nursery.cancel_scope.cancel()
    assert received == head + 200 * chunk


async def test_a_cancelled_task_writes_no_answer() -> None:
    """A node stopping on a fatal error cancels its requests, and
    Hypercorn, ending each, sends the 500 it makes of an app that never
    answered: through its own path the cancellation comes first and
    nothing is written (the client sees the connection end, never a 500);
    the one-write path must not write it either."""
    server, client = socket_server()
    answer = b"HTTP/1.1 500 \r\ncontent-length: 0\r\n\r\n"
    async with server.stream, client:
        with trio.CancelScope() as scope:
            scope.cancel()
            await server.protocol_send(RawData(answer))
            await server.protocol_send(RawData(b""))
        assert scope.cancelled_caught
        # The next answer, not cancelled, is the first thing the client
        # reads: had the 500 gone out, it would come first.
        later = b"HTTP/1.1 200 \r\ncontent-length: 2\r\n\r\n"
        await server.protocol_send(RawData(later))
        await server.protocol_send(RawData(b"ok"))
        assert await read_exactly(client, len(later) + 2) == later + b"ok"
