"""The receiving end of a peer stream: the body of ``POST /raft/stream`` as
ASGI delivers it (``http.request`` events with ``more_body``), fed to the
stream's :class:`~raft_trio.peer.wire.StreamInbox`, the messages of each
arrival stepped into the node at once.

The stream ends when the sender ends its body (answered 204), when a
frame is refused (answered 400 or 401 by the caller; the stream is closed
and nothing of that frame is parsed), when the sender goes away, when no
frame (not even a keep-alive) came for :data:`STREAM_IDLE_S` (answered
408), or when this node stops (answered 503), so that Hypercorn never
waits for a peer's stream at shutdown.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..core import Message
from .wire import PeerRequestError, StreamInbox

#: A stream on which no frame arrived for this long is closed: its sender
#: sends a keep-alive every second (raft_trio.peer.stream.KEEPALIVE_S), so
#: it is gone, or cut off without its connection being closed (a network
#: partition that drops packets); it opens a new one when it can.
STREAM_IDLE_S = 5.0


class StreamEnd(enum.Enum):
    ENDED = "the sender ended the stream"
    GONE = "the sender went away"
    CLOSING = "this node is stopping"
    IDLE = f"no frame for {STREAM_IDLE_S:g} s"


async def read_stream(
    inbox: StreamInbox,
    receive: Callable[[], Awaitable[Any]],
    deliver: Callable[[list[Message]], None],
    closing: trio.Event,
) -> StreamEnd | PeerRequestError:
    """Read the stream until it ends; how it ended, or why it was refused."""
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
        ended = await _read(inbox, receive, deliver)
        nursery.cancel_scope.cancel()
    return ended


async def _read(
    inbox: StreamInbox, receive: Callable[[], Awaitable[Any]], deliver: Callable[[list[Message]], None]
) -> StreamEnd | PeerRequestError:
    while True:
        event = await receive()
        if event["type"] != "http.request":
            return StreamEnd.GONE  # http.disconnect
        data = event.get("body", b"")
        if data:
            try:
                messages = inbox.feed(data)
            except PeerRequestError as refused:
                return refused
            if messages:
                deliver(messages)
        if not event.get("more_body", False):
            if inbox.pending_bytes:
                return PeerRequestError(400, "the peer stream ended inside a frame")
            return StreamEnd.ENDED
