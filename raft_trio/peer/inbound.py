"""The receiving end of a peer stream: the body of ``POST /raft/stream`` as
ASGI delivers it (``http.request`` events with ``more_body``), fed to the
stream's :class:`~raft_trio.peer.wire.StreamInbox`, the messages of each
arrival stepped into the node at once.

The stream ends when the sender ends its body (answered 204), when a
frame is refused (answered 400 or 401 by the caller; the stream is closed
and nothing of that frame is parsed), when the sender goes away, or when
this node stops (answered 503), so that Hypercorn never waits for a peer's
stream at shutdown.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..core import Message
from .wire import PeerRequestError, StreamInbox


class StreamEnd(enum.Enum):
    ENDED = "the sender ended the stream"
    GONE = "the sender went away"
    CLOSING = "this node is stopping"


async def read_stream(
    inbox: StreamInbox,
    receive: Callable[[], Awaitable[Any]],
    deliver: Callable[[list[Message]], None],
    closing: trio.Event,
) -> StreamEnd | PeerRequestError:
    """Read the stream until it ends; how it ended, or why it was refused."""
    ended: StreamEnd | PeerRequestError = StreamEnd.CLOSING
    async with trio.open_nursery() as nursery:

        async def stop_when_closing() -> None:
            await closing.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(stop_when_closing)
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
