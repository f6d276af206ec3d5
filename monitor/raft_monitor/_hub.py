"""Fan-out of the merged event stream to every open browser page.

Each page (``/events``) subscribes a bounded channel. Publishing never
blocks the watchers: a page that does not keep up has its channel closed,
and its browser reconnects and starts again from a fresh snapshot. Memory
stays bounded: ``buffer`` encoded events per page at most.
"""

from __future__ import annotations

import json
from typing import Any

from raft_trio.broadcast import Broadcast

#: Events a page may fall behind by (a few seconds of a busy cluster).
DEFAULT_BUFFER = 512


def encode_sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Hub(Broadcast[bytes]):
    def __init__(self, buffer: int = DEFAULT_BUFFER) -> None:
        super().__init__(buffer)

    def publish_event(self, name: str, data: dict[str, Any]) -> None:
        if len(self):
            self.publish(encode_sse(name, data))
