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

Lines end at CR, LF or CRLF only (:class:`SseLines`), not at every line
boundary of ``str.splitlines`` as httpx's ``iter_lines`` has it: a node
writes U+2028, U+0085 and the like raw inside an event's JSON.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

#: A node's largest event is a watched change: a value of up to 1 MiB,
#: JSON-escaped (up to 6 bytes a character), and its previous value.
MAX_EVENT_BYTES = 16 << 20


_LINE_END = re.compile("\r\n|\r|\n")


class SseLines:
    """Text in chunks to lines without their ends, as an event stream's
    lines end: at CR, LF or CRLF, and nowhere else (a value holding
    U+2028 or a form feed is one line)."""

    def __init__(self) -> None:
        #: The start of a line yet to end, in pieces (joined once it ends:
        #: a long line comes in many chunks).
        self._pending: list[str] = []
        #: The last chunk ended with CR: an LF starting the next one is
        #: the rest of that line end, not an empty line.
        self._after_cr = False

    def feed(self, text: str) -> list[str]:
        """The lines ``text`` completes."""
        if not text:
            return []
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
        self._after_cr = text.endswith("\r")
        parts = _LINE_END.split(text)
        last = parts.pop()
        if parts:
            parts[0] = "".join((*self._pending, parts[0]))
            self._pending = []
        if last:
            self._pending.append(last)
        return parts

    def flush(self) -> list[str]:
        """The last line, if the text did not end with a line end."""
        pending, self._pending = "".join(self._pending), []
        return [pending] if pending else []


def sse_lines(chunks: Iterable[str]) -> Iterator[str]:
    """The lines of an event stream's text (``response.iter_text()``)."""
    lines = SseLines()
    for chunk in chunks:
        yield from lines.feed(chunk)
    yield from lines.flush()


async def asse_lines(chunks: AsyncIterable[str]) -> AsyncIterator[str]:
    """:func:`sse_lines` of an async stream (``response.aiter_text()``)."""
    lines = SseLines()
    async for chunk in chunks:
        for line in lines.feed(chunk):
            yield line
    for line in lines.flush():
        yield line


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
