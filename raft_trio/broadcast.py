"""Fan-out of a stream of items to any number of subscribers (event
streams of a node, the monitor's pages).

Publishing never blocks: each subscriber has a bounded channel, and one
that falls ``buffer`` items behind has its channel closed (its client
reconnects and starts from a fresh snapshot). Memory stays bounded by
``buffer`` items per subscriber.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class Broadcast(Generic[T]):
    def __init__(self, buffer: int) -> None:
        self.buffer = buffer
        self.closed = False
        self._subscribers: set[trio.MemorySendChannel[T]] = set()

    def __len__(self) -> int:
        return len(self._subscribers)

    def publish(self, item: T) -> None:
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(item)
            except trio.WouldBlock:
                channel.close()
                self._subscribers.discard(channel)
            except trio.ClosedResourceError:
                self._subscribers.discard(channel)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[trio.MemoryReceiveChannel[T]]:
        send, receive = trio.open_memory_channel[T](self.buffer)
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
        """End every subscriber's stream (at shutdown)."""
        self.closed = True
        for channel in self._subscribers:
            channel.close()
        self._subscribers.clear()
