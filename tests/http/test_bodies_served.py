"""PUT bodies over real sockets: the node's app served by Hypercorn
(:func:`raft_trio.asgi.serve_app` with the front door) in front of the
in-memory cluster's leader, on Trio's real clock. The lean route stops
reading a body at its Content-Length and leaves Hypercorn's empty last
message unread (tests/http/test_body_reading.py); whatever path a request
takes, its connection stays open for the next one, and a body framed by
chunks is read by its chunks."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from raft_trio.asgi import serve_app
from raft_trio.http.app import create_app, front_door
from raft_trio.http.cors import MemberOrigins
from raft_trio.node import RaftNode
from tests.node.harness import Cluster

ORIGIN = "http://member.example:9001"
Answer = tuple[str, dict[str, str], bytes]


@pytest.fixture
async def leader() -> AsyncIterator[RaftNode]:
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery)
        await cluster.start()
        yield await cluster.wait_for_leader(within=10.0)
        for host in cluster.hosts.values():
            host.node.close()
        nursery.cancel_scope.cancel()


@pytest.fixture
async def port(leader: RaftNode, nursery: trio.Nursery) -> AsyncIterator[int]:
    app = create_app(leader)
    cors = app.asgi_app
    assert isinstance(cors, MemberOrigins)
    cors.allowed = lambda: {ORIGIN}
    shutdown = trio.Event()
    addresses = await nursery.start(
        functools.partial(serve_app, app, "127.0.0.1", 0, shutdown, front=front_door(app))
    )
    yield int(addresses[0].rsplit(":", 1)[1])
    shutdown.set()


def put(key: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"PUT /api/kv/{key} HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


class Connection:
    """One keep-alive connection, its answers read one by one."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def _more(self) -> None:
        chunk = await self.stream.receive_some(65536)
        if not chunk:
            raise AssertionError("the server closed the connection")
        self.buffer += chunk

    async def answer(self) -> Answer:
        with trio.fail_after(5):
            while b"\r\n\r\n" not in self.buffer:
                await self._more()
            head, _, _ = bytes(self.buffer).partition(b"\r\n\r\n")
            status, *lines = head.decode().split("\r\n")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines)
            }
            end = len(head) + 4 + int(headers.get("content-length", "0"))
            while len(self.buffer) < end:
                await self._more()
            body = bytes(self.buffer[len(head) + 4 : end])
            del self.buffer[:end]
            return status, headers, body

    async def request(self, data: bytes) -> Answer:
        await self.stream.send_all(data)
        return await self.answer()


@asynccontextmanager
async def connect(port: int) -> AsyncIterator[Connection]:
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        yield Connection(stream)


def value(answer: Answer) -> Any:
    return json.loads(answer[2])


async def test_writes_on_one_connection_keep_it_open(port: int) -> None:
    async with connect(port) as connection:
        for i in range(3):
            status, headers, _ = await connection.request(put("k", json.dumps({"value": f"v{i}"}).encode()))
            assert status == "HTTP/1.1 200 " and headers.get("connection") != "close"
        # Pipelined, and a body that comes in two pieces.
        await connection.stream.send_all(
            b"".join(put("k", json.dumps({"value": f"p{i}"}).encode()) for i in range(3))
        )
        for _ in range(3):
            assert (await connection.answer())[0] == "HTTP/1.1 200 "
        request = put("split", b'{"value":"split"}')
        await connection.stream.send_all(request[:-5])
        await trio.sleep(0.05)  # the rest in a later segment (if sooner, the test covers less)
        await connection.stream.send_all(request[-5:])
        status, headers, _ = await connection.answer()
        assert status == "HTTP/1.1 200 " and headers.get("connection") != "close"
        answer = await connection.request(b"GET /api/kv/split HTTP/1.1\r\nHost: h\r\n\r\n")
        assert value(answer)["value"] == "split"


async def test_a_browsers_write_through_the_whole_app_keeps_its_connection(port: int) -> None:
    async with connect(port) as connection:
        for _ in range(2):
            status, headers, _ = await connection.request(put("o", b'{"value":"o"}', f"Origin: {ORIGIN}\r\n"))
            assert status == "HTTP/1.1 200 "
            assert headers.get("connection") != "close", "the unread-body mark saw no end"


async def test_a_write_handed_to_quart_keeps_its_connection(port: int) -> None:
    async with connect(port) as connection:
        for body in (b'{"value": "\\ud800"}', b""):  # a lone surrogate; no body at all
            status, headers, _ = await connection.request(put("h", body))
            assert status == "HTTP/1.1 400 " and headers.get("connection") != "close"
        assert (await connection.request(put("h", b'{"value":"after"}')))[0] == "HTTP/1.1 200 "


async def test_a_chunked_body_is_read_by_its_chunks_whatever_its_content_length(port: int) -> None:
    """A Transfer-Encoding frames the body (h11 as RFC 9112 says), and the
    Content-Length header stays in the request: the whole chunked body
    is the request, not its first Content-Length bytes."""
    async with connect(port) as connection:
        first = b'{"value":"a"}'
        head = (
            "PUT /api/kv/te HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(first)}\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        chunks = f"{len(first):x}\r\n".encode() + first + b"\r\n7\r\ngarbage\r\n0\r\n\r\n"
        status, _, body = await connection.request(head + chunks)
        assert status == "HTTP/1.1 400 ", body
        status, _, _ = await connection.request(b"GET /api/kv/te HTTP/1.1\r\nHost: h\r\n\r\n")
        assert status == "HTTP/1.1 404 ", "a prefix of the chunked body was written"


async def test_an_answer_given_before_the_bodys_end_was_read_keeps_the_connection(port: int) -> None:
    """The lean route may answer (here a 400 for an Idempotency-Key over
    256 characters, given at once) before Hypercorn took the body's end
    from the socket; the connection still serves the next request."""
    for _ in range(20):
        async with connect(port) as connection:
            status, headers, _ = await connection.request(
                put("i", b'{"value":"x"}', "Idempotency-Key: " + "a" * 300 + "\r\n")
            )
            assert status == "HTTP/1.1 400 " and headers.get("connection") != "close"
            assert (await connection.request(put("i", b'{"value":"y"}')))[0] == "HTTP/1.1 200 "


async def test_a_chunked_body_over_the_lean_limit_is_served_whole(port: int) -> None:
    """A Content-Length under the lean routes' 64 KiB beside a
    Transfer-Encoding says nothing of the body's size: a chunked body
    of 70 KB (well under the API's 8 MiB) is Quart's to serve, not an
    empty 500 from the lean route giving up on it."""
    written = "x" * 70_000
    body = json.dumps({"value": written}).encode()
    head = (
        b"PUT /api/kv/big HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
        b"Content-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    async with connect(port) as connection:
        answer = await connection.request(head + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
        assert answer[0] == "HTTP/1.1 200 ", answer
        answer = await connection.request(b"GET /api/kv/big HTTP/1.1\r\nHost: h\r\n\r\n")
        assert value(answer)["value"] == written


async def test_a_repeated_idempotency_key_counts_by_its_first_on_both_paths(port: int) -> None:
    """Quart's handler takes the first of repeated ``Idempotency-Key``
    headers (Werkzeug's ``Headers.get``); the lean route takes the same
    one, so a retry answers the same remembered outcome on either path
    (taken by the second key, it would be another request under B)."""
    async with connect(port) as connection:
        firsts = []
        for key, token in (("first", "A"), ("second", "B")):
            answer = await connection.request(put(key, b'{"value":"x"}', f"Idempotency-Key: {token}\r\n"))
            assert answer[0] == "HTTP/1.1 200 "
            firsts.append(value(answer))
        both = "Idempotency-Key: A\r\nIdempotency-Key: B\r\n"
        lean = await connection.request(put("first", b'{"value":"x"}', both))
        # A Content-Type other than exactly application/json goes to Quart.
        quart = await connection.request(put("first", b'{"value":"x"}', both).replace(b"json", b"json; a=b"))
        assert value(lean) == value(quart) == firsts[0]


async def test_a_key_sent_again_with_another_request_is_a_400_on_both_paths(port: int) -> None:
    """An ``Idempotency-Key`` names one request: sent with another (a
    client that reuses its keys) it is refused, nothing is written, and
    neither the first request's answer is given as this one's; the
    request it was first sent with still gets its answer again."""
    async with connect(port) as connection:
        token = "Idempotency-Key: K\r\n"
        first = await connection.request(put("k", b'{"value":"a"}', token))
        assert first[0] == "HTTP/1.1 200 "
        for content_type in (b"json", b"json; a=b"):  # lean route, Quart
            status, _, answer = await connection.request(
                put("k", b'{"value":"b"}', token).replace(b"json", content_type)
            )
            assert status == "HTTP/1.1 400 ", (content_type, answer)
            refusal = json.loads(answer)
            assert refusal["code"] == "idempotency_key_reused" and "Idempotency-Key" in refusal["error"]
            status, _, answer = await connection.request(
                put("k", b'{"value":"a"}', token).replace(b"json", content_type)
            )
            assert (status, json.loads(answer)) == ("HTTP/1.1 200 ", value(first))
        read = value(await connection.request(b"GET /api/kv/k HTTP/1.1\r\nHost: h\r\n\r\n"))
        assert read["value"] == "a" and read["index"] == value(first)["index"]


async def test_json_nested_too_deep_is_a_400_on_both_paths(port: int) -> None:
    """Valid JSON nested deeper than the decoders recurse (msgspec and
    Python's json both raise RecursionError) is refused like any body
    the node cannot take: 400 with a JSON error, not a 500."""
    body = b'{"value":"a","x":' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    async with connect(port) as connection:
        for content_type in (b"json", b"json; charset=utf-8"):  # lean route, Quart
            status, headers, answer = await connection.request(
                put("deep", body).replace(b"json", content_type, 1)
            )
            assert status == "HTTP/1.1 400 ", (content_type, status, answer)
            assert json.loads(answer)["code"] == "bad_request"
            assert headers.get("connection") != "close"


async def test_a_huge_integer_is_json_on_both_paths(port: int) -> None:
    """An integer of 5,000 digits is valid JSON. Python's json refused it
    (more digits than it converts) and Quart answered 400 "not JSON"
    where the lean route's msgspec read it. Both paths now read it, as
    both read 1e999, and refuse the field it stands in, which no PUT has."""
    body = b'{"value":"a","x":' + b"9" * 5000 + b"}"
    async with connect(port) as connection:
        for content_type in (b"json", b"json; charset=utf-8"):  # lean route, Quart
            status, _, answer = await connection.request(put("huge", body).replace(b"json", content_type, 1))
            assert status == "HTTP/1.1 400 ", (content_type, answer)
            assert b"unknown field `x`" in answer, (content_type, answer)


async def test_a_body_not_utf8_is_refused_on_both_paths(port: int) -> None:
    """Quart decodes a body as UTF-8 before it parses it; msgspec skips a
    field the model lacks without looking at its bytes. A body with
    invalid UTF-8 there was written by the lean route and refused by
    Quart; both refuse it now, with Quart's 400."""
    body = b'{"value":"a","x":"\xff"}'
    async with connect(port) as connection:
        answers = []
        for content_type in (b"json", b"json; charset=utf-8"):  # lean route, Quart
            status, _, answer = await connection.request(put("bytes", body).replace(b"json", content_type, 1))
            answers.append((status, answer))
        assert answers[0] == answers[1]
        assert answers[0][0] == "HTTP/1.1 400 " and b"not valid UTF-8" in answers[0][1]
        status, _, _ = await connection.request(b"GET /api/kv/bytes HTTP/1.1\r\nHost: h\r\n\r\n")
        assert status == "HTTP/1.1 404 "


async def test_a_browsers_write_counts_its_first_content_type(port: int) -> None:
    """A request that says ``Origin`` must label its body JSON (415
    otherwise, docs/api.md); Quart reads the first of repeated
    Content-Type headers, and so does the lean route behind it, which
    took the last and wrote the key."""
    head = f"Origin: {ORIGIN}\r\nContent-Type: application/json\r\n"
    async with connect(port) as connection:
        request = put("ct", b'{"value":"v"}', head).replace(b"application/json", b"text/plain", 1)
        status, _, answer = await connection.request(request)
        assert status == "HTTP/1.1 415 ", answer
    async with connect(port) as connection:  # that one closed: its body was left unread
        status, _, _ = await connection.request(b"GET /api/kv/ct HTTP/1.1\r\nHost: h\r\n\r\n")
        assert status == "HTTP/1.1 404 "
