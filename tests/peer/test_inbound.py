"""The receiving end of a stream on Trio's fake clock: frames are stepped
as they arrive, keep-alives keep a quiet stream open, a silent one is
closed, a refused frame ends it, and a stopping node ends them all."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from raft_trio.core import Heartbeat, Message
from raft_trio.peer.framing import FrameWriter
from raft_trio.peer.inbound import STREAM_IDLE_S, StreamEnd, read_stream
from raft_trio.peer.wire import PeerReport, PeerRequestError, accept_stream, encode_batch, encode_report


def heartbeat(seq: int) -> Heartbeat:
    return Heartbeat(term=1, src="n1", dst="n2", commit=0, seq=seq)


class Body:
    """An ASGI ``receive`` fed by the test."""

    def __init__(self) -> None:
        self.send, self.events = trio.open_memory_channel[dict[str, Any]](100)

    async def receive(self) -> dict[str, Any]:
        return await self.events.receive()

    def data(self, chunk: bytes, more: bool = True) -> None:
        self.send.send_nowait({"type": "http.request", "body": chunk, "more_body": more})


async def run(
    body: Body, closing: trio.Event, script: Any
) -> tuple[StreamEnd | PeerRequestError, list[list[Message]], float]:
    inbox = accept_stream("n1", {"x-raft-from": "n1"}, None)
    delivered: list[list[Message]] = []
    result: list[StreamEnd | PeerRequestError] = []
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            result.append(await read_stream(inbox, body.receive, delivered.append, closing))

        started = trio.current_time()
        nursery.start_soon(reader)
        await script()
    return result[0], delivered, trio.current_time() - started


async def test_frames_are_delivered_and_keepalives_keep_a_quiet_stream_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    body, closing, writer = Body(), trio.Event(), FrameWriter()

    async def script() -> None:
        body.data(writer.frame(encode_batch([heartbeat(1)])))
        for _ in range(12):  # 12 s of keep-alives only
            await trio.sleep(1.0)
            body.data(writer.frame(b""))
        body.data(writer.frame(encode_batch([heartbeat(2)])), more=False)

    ended, delivered, took = await run(body, closing, script)
    assert ended is StreamEnd.ENDED
    assert delivered == [[heartbeat(1)], [heartbeat(2)]]
    assert took == pytest.approx(12.0)


async def test_a_silent_stream_is_closed(autojump_clock: trio.testing.MockClock) -> None:
    body, closing, writer = Body(), trio.Event(), FrameWriter()

    async def script() -> None:
        body.data(writer.frame(encode_batch([heartbeat(1)])))

    ended, delivered, took = await run(body, closing, script)
    assert ended is StreamEnd.IDLE
    assert delivered == [[heartbeat(1)]]
    assert STREAM_IDLE_S <= took <= 2 * STREAM_IDLE_S


async def test_a_stopping_node_ends_its_streams(autojump_clock: trio.testing.MockClock) -> None:
    body, closing = Body(), trio.Event()

    async def script() -> None:
        await trio.sleep(0.5)
        closing.set()

    ended, _, took = await run(body, closing, script)
    assert ended is StreamEnd.CLOSING
    assert took == pytest.approx(0.5)


async def test_a_refused_frame_ends_the_stream_and_nothing_after_it_is_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    body, closing, writer = Body(), trio.Event(), FrameWriter()

    async def script() -> None:
        body.data(writer.frame(b"\xc1 not msgpack") + writer.frame(encode_batch([heartbeat(2)])))

    ended, delivered, _ = await run(body, closing, script)
    assert isinstance(ended, PeerRequestError) and ended.status == 400
    assert delivered == []


async def test_a_stream_that_ends_inside_a_frame_is_refused(autojump_clock: trio.testing.MockClock) -> None:
    body, closing, writer = Body(), trio.Event(), FrameWriter()

    async def script() -> None:
        body.data(writer.frame(encode_batch([heartbeat(1)]))[:-1], more=False)

    ended, _, _ = await run(body, closing, script)
    assert isinstance(ended, PeerRequestError) and "inside a frame" in ended.message


def test_reports_between_batches_reach_their_listener_and_a_malformed_one_ends_the_stream() -> None:
    """A report frame (a map) is the sender's alarms, told apart from a
    batch (an array) by its first byte; fields a newer sender adds are
    ignored; one of the wrong shape is refused like a malformed batch."""
    heard: list[tuple[str, PeerReport]] = []
    inbox = accept_stream("n1", {"x-raft-from": "n1"}, None, lambda sender, r: heard.append((sender, r)))
    writer = FrameWriter()
    newer = msgspec.msgpack.encode({"alarms": ["NOSPACE"], "added_later": 7})
    data = (
        writer.frame(encode_report(PeerReport(("NOSPACE",))))
        + writer.frame(encode_batch([heartbeat(1)]))
        + writer.frame(newer)
        + writer.frame(encode_report(PeerReport()))
    )
    # Any split of the bytes gives the same: frames complete across feeds.
    messages = [m for i in range(0, len(data), 7) for m in inbox.feed(data[i : i + 7])]
    assert messages == [heartbeat(1)]
    assert heard == [("n1", PeerReport(("NOSPACE",))), ("n1", PeerReport(("NOSPACE",))), ("n1", PeerReport())]
    with pytest.raises(PeerRequestError) as refused:
        inbox.feed(writer.frame(msgspec.msgpack.encode({"alarms": 3})))
    assert refused.value.status == 400 and "malformed peer report" in refused.value.message
