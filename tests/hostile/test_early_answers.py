"""An answer given before the request's body was read says
``Connection: close`` (``raft_trio.asgi.CloseWhenBodyUnread``): the
unread body makes the connection unusable, and a client that reused it
would see it closed under its next request."""

from __future__ import annotations

from typing import Any

import pytest

from raft_trio.asgi import CloseWhenBodyUnread


async def answer(headers: list[tuple[bytes, bytes]], reads: int) -> list[tuple[bytes, bytes]]:
    """The response headers of an app that calls ``receive`` ``reads``
    times before answering a request with ``headers`` and a 2-chunk body."""
    chunks = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return chunks.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        for _ in range(reads):
            await receive()
        await send({"type": "http.response.start", "status": 400, "headers": [(b"x-app", b"1")]})
        await send({"type": "http.response.body", "body": b"{}"})

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    await CloseWhenBodyUnread(app)(scope, receive, send)
    return list(sent[0]["headers"])


@pytest.mark.parametrize(
    "headers", [[(b"content-length", b"4")], [(b"transfer-encoding", b"chunked")]], ids=["length", "chunked"]
)
@pytest.mark.parametrize("reads", [0, 1])
async def test_an_answer_before_the_body_ends_closes_the_connection(
    headers: list[tuple[bytes, bytes]], reads: int
) -> None:
    assert await answer(headers, reads) == [(b"x-app", b"1"), (b"connection", b"close")]


async def test_an_answer_after_the_whole_body_keeps_the_connection() -> None:
    assert await answer([(b"content-length", b"4")], reads=2) == [(b"x-app", b"1")]


@pytest.mark.parametrize("headers", [[], [(b"content-length", b"0")]], ids=["no body", "empty body"])
async def test_a_request_without_a_body_keeps_the_connection(headers: list[tuple[bytes, bytes]]) -> None:
    assert await answer(headers, reads=0) == [(b"x-app", b"1")]
