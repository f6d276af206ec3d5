"""Fan-out of the merged event stream to every open browser page.

Each page (``/events``) subscribes a bounded channel. Publishing never
blocks the watchers: a page that does not keep up has its channel closed,
and its browser reconnects and starts again from a fresh snapshot. Memory
stays bounded: ``buffer`` encoded events per page at most.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import trio

#: Events a page may fall behind by (a few seconds of a busy cluster).
DEFAULT_BUFFER = 512


def encode_sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Hub:
    def __init__(self, buffer: int = DEFAULT_BUFFER) -> None:
        self.buffer = buffer
        self.closed = False
        self._subscribers: set[trio.MemorySendChannel[bytes]] = set()

    def __len__(self) -> int:
        return len(self._subscribers)

    def publish(self, name: str, data: dict[str, Any]) -> None:
        if not self._subscribers:
            return
        chunk = encode_sse(name, data)
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(chunk)
            except trio.WouldBlock:
                channel.close()
                self._subscribers.discard(channel)
            except trio.ClosedResourceError:
                self._subscribers.discard(channel)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[trio.MemoryReceiveChannel[bytes]]:
        send, receive = trio.open_memory_channel[bytes](self.buffer)
        if self.closed:
            send.close()
        else:
            self._subscribers.add(send)
        try:
            yield receive
        finally:
            self._subscribers.discard(send)
            send.close()
            receive.close()

    def close(self) -> None:
        """End every page's stream (at shutdown, before the server stops)."""
        self.closed = True
        for channel in self._subscribers:
            channel.close()
        self._subscribers.clear()
