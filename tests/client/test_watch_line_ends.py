"""A watched key or value holding a character that ``str.splitlines``
takes for a line end (U+2028, U+2029, U+0085) is delivered whole.

Server-sent events end lines only at CR, LF or CRLF (the WHATWG rules).
The node's JSON escapes the control characters below U+0020 but writes
U+0085, U+2028 and U+2029 raw, as JSON allows. httpx's ``iter_lines``
splits at every ``splitlines`` boundary, so both clients cut such an
event in two and the watch failed with "a malformed put event".
"""

from __future__ import annotations

import httpx
import trio

from raft_trio.client import Client, TrioClient
from raft_trio.client.sse import sse_lines
from raft_trio.http.coordination import change_event
from raft_trio.kv import Change

#: Every character ``str.splitlines`` ends a line at but CR and LF.
SPLITLINES_ONLY = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
VALUE = "a" + "|".join(SPLITLINES_ONLY) + "z"
KEY = "k\u2028ey"


def answer(request: httpx.Request) -> httpx.Response:
    """A node's watch answer: the change as the node encodes it."""
    body = b": watching\n\n" + change_event(Change(7, "put", KEY, VALUE, 7, 1, "old\u2029"), True)
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


async def test_the_trio_client_delivers_a_value_with_unicode_line_separators() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    async with TrioClient(["http://a:1"], http=http) as client, client.watch(prefix="") as changes:
        with trio.fail_after(10):
            event = await changes.__anext__()
    assert (event.change.key, event.change.value, event.change.prev_value) == (KEY, VALUE, "old\u2029")


def test_the_blocking_client_delivers_a_value_with_unicode_line_separators() -> None:
    http = httpx.Client(transport=httpx.MockTransport(answer))
    with Client(["http://a:1"], http=http) as client, client.watch(prefix="") as changes:
        event = next(iter(changes))
    assert (event.change.key, event.change.value, event.change.prev_value) == (KEY, VALUE, "old\u2029")


def test_lines_end_only_at_cr_lf_or_crlf_across_chunks() -> None:
    chunks = ["a\u2028b\r", "\nc\rd", "\n\x85e", "\r", "f\n", "tail"]
    assert list(sse_lines(chunks)) == ["a\u2028b", "c", "d", "\x85e", "f", "tail"]
