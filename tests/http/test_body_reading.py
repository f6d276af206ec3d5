"""How the lean routes read a request body from Hypercorn's Trio worker,
which hands the app a memory channel's ``receive`` and a body as two
messages: its bytes (``more_body``) and an empty end. A body whose
announced length came whole is taken without a turn of the event loop
and without waiting for the end; a request handed over after that gets
its body whole and never the end's empty message. Through a layer's own
``receive`` the body is read to its end, which the layer must see.
tests/http/test_bodies_served.py checks the same over real sockets."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from raft_trio.http.lean import Body, read_body, replay

BODY = b'{"value":"v"}'
DATA = {"type": "http.request", "body": BODY, "more_body": True}
END = {"type": "http.request", "body": b"", "more_body": False}
GONE = {"type": "http.disconnect"}


def queued(*messages: dict[str, Any]) -> Any:
    """A ``receive`` as Hypercorn gives it, with ``messages`` queued."""
    send, receive = trio.open_memory_channel[dict[str, Any]](10)
    for message in messages:
        send.send_nowait(message)
    return receive.receive


async def test_a_body_of_its_announced_length_is_read_without_a_turn() -> None:
    receive = queued(DATA, END)
    with trio.testing.assert_no_checkpoints():
        body = await read_body(receive, 1024, len(BODY))
    assert body == Body(BODY, end_unread=True)
    assert await receive() == END  # left for whoever reads on


async def test_without_a_length_the_body_is_read_to_its_end() -> None:
    receive = queued(DATA, END, GONE)
    assert await read_body(receive, 1024) == Body(BODY, end_unread=False)
    assert await receive() == GONE


async def test_a_body_in_pieces_is_read_until_its_length() -> None:
    receive = queued(
        {"type": "http.request", "body": BODY[:5], "more_body": True},
        {"type": "http.request", "body": BODY[5:], "more_body": True},
        END,
    )
    assert await read_body(receive, 1024, len(BODY)) == Body(BODY, end_unread=True)


async def test_through_a_layers_receive_the_body_is_read_to_its_end() -> None:
    receive = queued(DATA, END, GONE)

    async def layer() -> Any:
        return await receive()

    assert await read_body(layer, 1024, len(BODY)) == Body(BODY, end_unread=False)
    assert await receive() == GONE


async def test_a_cancelled_request_reads_nothing_more() -> None:
    receive = queued(DATA, END)
    with trio.CancelScope() as scope:
        scope.cancel()
        await read_body(receive, 1024, len(BODY))
        raise AssertionError("read a body in a cancelled task")
    assert await receive() == DATA


async def test_a_body_not_queued_yet_is_awaited() -> None:
    send, receive = trio.open_memory_channel[dict[str, Any]](10)
    async with trio.open_nursery() as nursery:

        async def later() -> None:
            await trio.testing.wait_all_tasks_blocked()
            await send.send(DATA)

        nursery.start_soon(later)
        assert await read_body(receive.receive, 1024, len(BODY)) == Body(BODY, end_unread=True)


async def test_a_body_over_the_limit_or_a_client_gone_is_none() -> None:
    assert await read_body(queued(DATA, END), len(BODY) - 1, len(BODY)) is None
    assert await read_body(queued(GONE), 1024, len(BODY)) is None


async def test_a_replayed_body_passes_over_its_unread_end() -> None:
    receive = queued(END, GONE)
    again = replay(Body(BODY, end_unread=True), receive)
    assert await again() == {"type": "http.request", "body": BODY, "more_body": False}
    assert await again() == GONE


async def test_a_replay_passes_on_what_came_after_the_length() -> None:
    again = replay(Body(BODY[:5], end_unread=True), queued(DATA | {"body": BODY[5:], "more_body": False}))
    assert await again() == {"type": "http.request", "body": BODY, "more_body": False}


async def test_a_replay_tells_a_client_gone_before_the_end() -> None:
    again = replay(Body(BODY, end_unread=True), queued(GONE))
    assert await again() == GONE


async def test_a_body_read_to_its_end_is_replayed_as_it_was() -> None:
    receive = queued(GONE)
    again = replay(Body(BODY, end_unread=False), receive)
    assert await again() == {"type": "http.request", "body": BODY, "more_body": False}
    assert await again() == GONE
