"""A line-at-a-time parser of server-sent events (the WHATWG rules that
matter here), with no I/O: feed it the lines of a stream, get back whole
events. The client's watches and event streams, and the monitor, read
the nodes' streams with it.

Rules: ``event:`` names the event (default ``message``); ``data:`` lines
are joined with newlines; ``id:`` sets the last event id, which every
later event carries too (a watch resumes from it); a line starting with
``:`` is a comment (the node's ``: keep-alive``); a blank line dispatches
the event, if it had data. Memory is bounded: an event whose data grows
past ``max_bytes`` is dropped whole (and reported), so that a broken or
hostile node cannot make a reader buffer without end.
"""

from __future__ import annotations

import dataclasses

#: A node's largest event is a watched change: a value of up to 1 MiB,
#: JSON-escaped (up to 6 bytes a character), and its previous value.
MAX_EVENT_BYTES = 16 << 20


@dataclasses.dataclass(frozen=True)
class SseEvent:
    name: str
    data: str
    #: The last event id seen on the stream (None: none yet).
    id: str | None = None


@dataclasses.dataclass(frozen=True)
class SseComment:
    text: str


@dataclasses.dataclass(frozen=True)
class SseDropped:
    """An event that broke the size bound; its data is gone."""

    name: str
    size: int


class SseParser:
    def __init__(self, max_bytes: int = MAX_EVENT_BYTES) -> None:
        self.max_bytes = max_bytes
        self._name = ""
        self._data: list[str] = []
        self._size = 0
        self._overflow = False
        self._last_id: str | None = None

    def feed(self, line: str) -> SseEvent | SseComment | SseDropped | None:
        """One line without its line ending; returns what it completes."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return SseComment(line[1:].strip())
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._name = value
        elif field == "id":
            if "\0" not in value:
                self._last_id = value
        elif field == "data":
            self._size += len(value) + 1
            if self._size > self.max_bytes:
                self._overflow = True
                self._data.clear()
            elif not self._overflow:
                self._data.append(value)
        # retry and unknown fields carry nothing a reader here needs.
        return None

    def _dispatch(self) -> SseEvent | SseDropped | None:
        name, data, size, overflow = self._name or "message", self._data, self._size, self._overflow
        self._name, self._data, self._size, self._overflow = "", [], 0, False
        if overflow:
            return SseDropped(name, size)
        if not data:
            return None
        return SseEvent(name, "\n".join(data), self._last_id)
