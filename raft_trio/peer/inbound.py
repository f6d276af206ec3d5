"""The receiving end of a peer stream: a connection that opened with
``GET /raft/stream`` and ``Upgrade: raft-stream`` (:mod:`raft_trio.asgi`
hands it over before Hypercorn parses anything), answered ``101 Switching
Protocols`` and then read as raw frames, fed to the stream's
:class:`~raft_trio.peer.wire.StreamInbox`, the messages of each arrival
stepped into the node at once. A frame is one socket read and our own
framing: received as a chunk of a streaming ``POST`` (h11's chunked
reader, Hypercorn's read loop, an ASGI queue and a second task) it cost a
node a third more CPU (``python -m bench.request_cost --kind stream``:
0.23 against 0.17 ms a frame), on every heartbeat and every append.

The stream ends when the sender closes it, when a frame is refused
(nothing of that frame is parsed), when no frame (not even a keep-alive)
came for :data:`STREAM_IDLE_S`, or when this node stops. The receiver says
nothing on the connection until then; then one line of JSON, why it ended
(``{"status": 400, "error": "..."}``, the status an HTTP answer would have
had), and closes it. A refused opening gets an ordinary HTTP answer.
"""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import Callable
from http import HTTPStatus

import trio

from ..core import Message
from .wire import STREAM_PROTOCOL, PeerRequestError, StreamInbox

#: A stream on which no frame arrived for this long is closed: its sender
#: sends a keep-alive every second (raft_trio.peer.stream.KEEPALIVE_S), so
#: it is gone, or cut off without its connection being closed (a network
#: partition that drops packets); it opens a new one when it can.
STREAM_IDLE_S = 5.0
#: Bytes asked of the connection at a time.
RECEIVE_BYTES = 64 * 1024
#: How long the reason a stream ended may take to write: a sender that
#: reads nothing (paused) does not hold the connection open.
REASON_WRITE_S = 1.0

SWITCHING_PROTOCOLS = (
    f"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {STREAM_PROTOCOL}\r\n\r\n"
).encode()


class StreamEnd(enum.Enum):
    """How a stream that was not refused ended: its status (as an HTTP
    answer would have it) and why."""

    ENDED = (204, "the sender ended the stream")
    CLOSING = (503, "this node is stopping")
    IDLE = (408, f"no frame for {STREAM_IDLE_S:g} s")
    #: Nobody hears this one (499: nginx's "the client closed the request").
    BROKEN = (499, "the connection broke (the sender was killed, or reset it)")


def refusal(status: int, message: str) -> bytes:
    """The HTTP answer refusing a stream's opening."""
    body = json.dumps({"error": message}, separators=(",", ":")).encode() + b"\n"
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def end_line(end: StreamEnd | PeerRequestError) -> bytes:
    """What the receiver writes once a stream ended, before closing it."""
    if isinstance(end, PeerRequestError):
        status, message = end.status, end.message
    else:
        status, message = end.value
    return json.dumps({"status": status, "error": message}, separators=(",", ":")).encode() + b"\n"


async def read_stream(
    inbox: StreamInbox,
    connection: trio.abc.ReceiveStream,
    rest: bytes,
    deliver: Callable[[list[Message]], None],
    closing: trio.Event,
) -> StreamEnd | PeerRequestError:
    """Read the stream (``rest``: bytes that came with its opening) until it
    ends; how it ended, or why it was refused."""
    ended: StreamEnd | PeerRequestError = StreamEnd.CLOSING
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            """Ends the stream when this node stops or the stream goes
            silent (checked every STREAM_IDLE_S, not timed per frame)."""
            nonlocal ended
            seen = -1
            while not closing.is_set():
                with trio.move_on_after(STREAM_IDLE_S):
                    await closing.wait()
                if not closing.is_set() and inbox.frames == seen:
                    ended = StreamEnd.IDLE
                    break
                seen = inbox.frames
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch)
        ended = await _read(inbox, connection, rest, deliver)
        nursery.cancel_scope.cancel()
    return ended


async def _read(
    inbox: StreamInbox,
    connection: trio.abc.ReceiveStream,
    data: bytes | bytearray,
    deliver: Callable[[list[Message]], None],
) -> StreamEnd | PeerRequestError:
    while True:
        if data:
            try:
                messages = inbox.feed(data)
            except PeerRequestError as refused:
                return refused
            if messages:
                deliver(messages)
        try:
            data = await connection.receive_some(RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return StreamEnd.BROKEN
        if not data:
            if inbox.pending_bytes:
                return PeerRequestError(400, "the peer stream ended inside a frame")
            return StreamEnd.ENDED


async def tell_end(connection: trio.abc.SendStream, end: StreamEnd | PeerRequestError) -> None:
    """Writes why the stream ended, unless the sender cannot take it now."""
    with trio.move_on_after(REASON_WRITE_S):
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await connection.send_all(end_line(end))
