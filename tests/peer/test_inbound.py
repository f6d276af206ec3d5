"""The receiving end of a stream on Trio's fake clock: frames are stepped
as they arrive (the bytes that came with the opening first), keep-alives
keep a quiet stream open, a silent one is closed, a refused frame ends it,
a stopping node ends them all, and the line that ends a stream says why.
A leader at rest reads its streams lazily: on real sockets."""

from __future__ import annotations

import fcntl
import json
import socket
import struct
import termios
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from raft_trio.core import Heartbeat, Message
from raft_trio.peer import inbound
from raft_trio.peer.framing import FrameWriter
from raft_trio.peer.inbound import (
    STREAM_IDLE_S,
    LazyReads,
    StreamEnd,
    end_line,
    read_stream,
    refusal,
    socket_read_now,
)
from raft_trio.peer.wire import PeerReport, PeerRequestError, accept_stream, encode_batch, encode_report
from raft_trio.testing.waiting import wait_for


def heartbeat(seq: int) -> Heartbeat:
    return Heartbeat(term=1, src="n1", dst="n2", commit=0, seq=seq)


class Body:
    """The receiving end of a stream's connection, fed by the test."""

    def __init__(self, rest: bytes = b"") -> None:
        self.connection = trio.testing.MemoryReceiveStream()
        #: Bytes that came with the stream's opening.
        self.rest = rest

    def data(self, chunk: bytes, more: bool = True) -> None:
        self.connection.put_data(chunk)
        if not more:
            self.connection.put_eof()


async def run(
    body: Body, closing: trio.Event, script: Any
) -> tuple[StreamEnd | PeerRequestError, list[list[Message]], float]:
    inbox = await accept_stream("n1", {"x-raft-from": "n1"}, None)
    delivered: list[list[Message]] = []
    result: list[StreamEnd | PeerRequestError] = []
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            result.append(await read_stream(inbox, body.connection, body.rest, delivered.append, closing))

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


async def test_bytes_that_came_with_the_opening_are_read_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    writer = FrameWriter()
    first = writer.frame(encode_batch([heartbeat(1)]))
    second = writer.frame(encode_batch([heartbeat(2)]))
    body, closing = Body(rest=first + second[:5]), trio.Event()

    async def script() -> None:
        body.data(second[5:], more=False)

    ended, delivered, _ = await run(body, closing, script)
    assert ended is StreamEnd.ENDED
    assert delivered == [[heartbeat(1)], [heartbeat(2)]]


async def test_a_silent_stream_is_closed(autojump_clock: trio.testing.MockClock) -> None:
    body, closing, writer = Body(), trio.Event(), FrameWriter()

    async def script() -> None:
        body.data(writer.frame(encode_batch([heartbeat(1)])))

    ended, delivered, took = await run(body, closing, script)
    assert ended is StreamEnd.IDLE
    assert delivered == [[heartbeat(1)]]
    assert STREAM_IDLE_S <= took <= 2 * STREAM_IDLE_S


def test_the_line_that_ends_a_stream_says_why_with_the_status_an_answer_would_have() -> None:
    assert json.loads(end_line(StreamEnd.IDLE)) == {
        "status": 408,
        "error": f"no frame for {STREAM_IDLE_S:g} s",
    }
    assert json.loads(end_line(PeerRequestError(401, "bad MAC", "n1"))) == {"status": 401, "error": "bad MAC"}
    head, _, body = refusal(401, "bad signature").partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 Unauthorized\r\n") and b"Connection: close" in head
    assert json.loads(body) == {"error": "bad signature"}
    assert f"content-length: {len(body)}".encode() in head.lower()


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


class Reset(trio.abc.ReceiveStream):
    """A connection that gives ``data``, then is reset once ``reset`` is set."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reset = trio.Event()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.data:
            data, self.data = self.data, b""
            return data
        await self.reset.wait()
        raise trio.BrokenResourceError("Connection reset by peer")

    async def aclose(self) -> None:
        pass


async def test_a_connection_that_breaks_ends_the_stream_and_raises_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A sender killed mid-stream resets its connection: the stream ends
    like any other (raised out of the reader's nursery, a broken
    connection once took the whole node down)."""
    body, closing = Body(), trio.Event()
    connection = Reset(FrameWriter().frame(encode_batch([heartbeat(1)])))
    body.connection = connection  # type: ignore[assignment]

    async def script() -> None:
        await trio.sleep(0.1)
        connection.reset.set()

    ended, delivered, _ = await run(body, closing, script)
    assert ended is StreamEnd.BROKEN
    assert delivered == [[heartbeat(1)]]


async def test_reports_between_batches_reach_their_listener_and_a_malformed_one_ends_the_stream() -> None:
    """A report frame (a map) is the sender's alarms, told apart from a
    batch (an array) by its first byte; fields a newer sender adds are
    ignored; one of the wrong shape is refused like a malformed batch."""
    heard: list[tuple[str, PeerReport]] = []
    inbox = await accept_stream(
        "n1", {"x-raft-from": "n1"}, None, lambda sender, r: heard.append((sender, r))
    )
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


async def tcp_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    """Both ends of a real TCP connection on 127.0.0.1 (a socket's own
    non-blocking read is what a lazy reader uses)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    sender = await trio.open_tcp_stream("127.0.0.1", port)
    receiver = await listeners[0].accept()
    await listeners[0].aclose()
    return sender, receiver


async def test_a_parked_stream_is_read_only_when_the_ticker_asks_until_answers_are_awaited() -> None:
    """A leader at rest (nothing awaits an answer) reads its streams at its
    heartbeat rounds: a frame that arrived waits in the socket, with no
    task woken, until ``read_parked``; once answers are awaited the reader
    takes each frame as it comes again."""
    sender, receiver = await tcp_pair()
    writer, awaited = FrameWriter(), [False]
    lazy = LazyReads(lambda: awaited[0])
    inbox = await accept_stream("n1", {"x-raft-from": "n1"}, None)
    delivered: list[list[Message]] = []
    ended: list[StreamEnd | PeerRequestError] = []
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            ended.append(await read_stream(inbox, receiver, b"", delivered.append, trio.Event(), lazy))

        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        await sender.send_all(writer.frame(encode_batch([heartbeat(1)])))
        with trio.fail_after(5):
            await trio.lowlevel.wait_readable(receiver.socket)
        await trio.testing.wait_all_tasks_blocked()
        assert delivered == []  # in the socket, no reader woken
        lazy.read_parked()
        assert delivered == [[heartbeat(1)]]  # read in the caller's turn

        awaited[0] = True
        lazy.wake_if_awaited()
        await sender.send_all(writer.frame(encode_batch([heartbeat(2)])))
        with trio.fail_after(5):
            await wait_for(lambda: len(delivered) == 2)
        assert delivered[1] == [heartbeat(2)]

        awaited[0] = False
        lazy.read_parked()  # a ticker's round finds nothing awaited: readers park again
        await sender.send_all(writer.frame(encode_batch([heartbeat(3)])))  # read as it comes, then parks
        with trio.fail_after(5):
            await wait_for(lambda: len(delivered) == 3)
        await sender.aclose()
        with trio.fail_after(5):
            await trio.lowlevel.wait_readable(receiver.socket)
        await trio.testing.wait_all_tasks_blocked()
        assert not ended  # parked: the end, too, waits for the ticker
        lazy.read_parked()
    await receiver.aclose()
    assert ended == [StreamEnd.ENDED]
    assert delivered == [[heartbeat(1)], [heartbeat(2)], [heartbeat(3)]]


async def test_the_tickers_read_of_a_parked_stream_takes_a_bounded_amount_a_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``read_now`` runs in the ticker's turn and passes no checkpoint: a
    stream flooded with frames is read READ_NOW_MAX_BYTES a round, the
    rest in the next rounds (found by review: it read on as long as every
    read came back full). Here 4 KiB reads and 16 KiB a round."""
    monkeypatch.setattr(inbound, "RECEIVE_BYTES", 4096)
    monkeypatch.setattr(inbound, "READ_NOW_MAX_BYTES", 16384)
    sender, receiver = await tcp_pair()
    writer, lazy = FrameWriter(), LazyReads(lambda: False)
    inbox = await accept_stream("n1", {"x-raft-from": "n1"}, None)
    delivered: list[list[Message]] = []
    frames = b"".join(
        writer.frame(encode_batch([heartbeat(seq) for seq in range(k * 50, k * 50 + 50)])) for k in range(100)
    )
    assert 48_000 < len(frames) < 100_000  # more than three rounds, less than the socket holds
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_stream, inbox, receiver, b"", delivered.append, trio.Event(), lazy)
        await trio.testing.wait_all_tasks_blocked()
        await sender.send_all(frames)
        with trio.fail_after(5):
            await wait_for(lambda: _bytes_waiting(receiver) == len(frames))
        per_round = []
        while sum(map(len, delivered)) < 5000:
            before = sum(map(len, delivered))
            lazy.read_parked()
            per_round.append(sum(map(len, delivered)) - before)
            assert len(per_round) < 10, per_round
        # A round's 16 KiB, and the rest of a frame the last round began.
        frame_messages = 50 * (16384 / (len(frames) / 100) + 1)
        assert all(0 < n <= frame_messages for n in per_round[:-1]), per_round
        assert len(per_round) == -(-len(frames) // 16384), per_round
        await sender.aclose()
        nursery.cancel_scope.cancel()
    assert [batch for batch in delivered for m in batch if not isinstance(m, Heartbeat)] == []
    assert [m.seq for batch in delivered for m in batch if isinstance(m, Heartbeat)] == list(range(5000))
    await receiver.aclose()


def _bytes_waiting(stream: trio.SocketStream) -> int:
    """Bytes in ``stream``'s socket, unread (FIONREAD)."""
    (waiting,) = struct.unpack("i", fcntl.ioctl(stream.socket.fileno(), termios.FIONREAD, b"\0\0\0\0"))
    return int(waiting)


async def test_once_woken_a_reader_parks_again_only_after_a_tickers_round_at_rest() -> None:
    """Between one client's writes nothing is awaited for a few
    milliseconds: the readers keep reading as bytes come until the
    ticker's round finds the leader at rest, instead of parking after
    each write and being woken by the next."""
    sender, receiver = await tcp_pair()
    writer, awaited = FrameWriter(), [True]
    lazy = LazyReads(lambda: awaited[0])
    lazy.wake_if_awaited()  # a write: answers awaited
    inbox = await accept_stream("n1", {"x-raft-from": "n1"}, None)
    delivered: list[list[Message]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_stream, inbox, receiver, b"", delivered.append, trio.Event(), lazy)
        await trio.testing.wait_all_tasks_blocked()
        awaited[0] = False  # the write committed: nothing awaited now
        for seq in (1, 2, 3):
            await sender.send_all(writer.frame(encode_batch([heartbeat(seq)])))
            with trio.fail_after(5):
                await wait_for(lambda: len(delivered) == seq)  # noqa: B023 (awaited at once)
        lazy.read_parked()  # the ticker's round: at rest, so the readers park
        await sender.send_all(writer.frame(encode_batch([heartbeat(4)])))
        with trio.fail_after(5):
            await wait_for(lambda: len(delivered) == 4)
        await sender.send_all(writer.frame(encode_batch([heartbeat(5)])))
        with trio.fail_after(5):
            await trio.lowlevel.wait_readable(receiver.socket)
        await trio.testing.wait_all_tasks_blocked()
        assert len(delivered) == 4, "parked after its first read since the round"
        lazy.read_parked()
        assert delivered[4] == [heartbeat(5)]
        nursery.cancel_scope.cancel()
    await sender.aclose()
    await receiver.aclose()


async def test_a_refused_frame_read_in_the_tickers_turn_ends_the_stream_in_that_turn() -> None:
    """A parked stream whose next frame is refused ends when the ticker
    reads it, not a round later: its reader is woken to return."""
    sender, receiver = await tcp_pair()
    lazy = LazyReads(lambda: False)
    inbox = await accept_stream("n1", {"x-raft-from": "n1"}, None)
    ended: list[StreamEnd | PeerRequestError] = []
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            ended.append(await read_stream(inbox, receiver, b"", lambda m: None, trio.Event(), lazy))

        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        await sender.send_all(b"\xff" * 64)  # no frame of ours looks like this
        with trio.fail_after(5):
            await trio.lowlevel.wait_readable(receiver.socket)
        lazy.read_parked()
        await trio.testing.wait_all_tasks_blocked()
        assert len(ended) == 1 and isinstance(ended[0], PeerRequestError)
    await sender.aclose()
    await receiver.aclose()


async def test_what_delivering_raises_in_the_tickers_turn_is_raised_in_the_streams_own_task() -> None:
    """The ticker reads parked streams for the node; a message whose
    delivery raises fails its stream's task, as it would read eagerly,
    and never the ticker that read it."""
    sender, receiver = await tcp_pair()
    lazy = LazyReads(lambda: False)
    inbox = await accept_stream("n1", {"x-raft-from": "n1"}, None)

    def deliver(messages: list[Message]) -> None:
        raise RuntimeError("the node refused it")

    ticker_went_on = False
    with pytest.RaisesGroup(
        pytest.RaisesExc(RuntimeError, match="the node refused it"), flatten_subgroups=True
    ):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_stream, inbox, receiver, b"", deliver, trio.Event(), lazy)
            await trio.testing.wait_all_tasks_blocked()
            await sender.send_all(FrameWriter().frame(encode_batch([heartbeat(1)])))
            with trio.fail_after(5):
                await trio.lowlevel.wait_readable(receiver.socket)
            lazy.read_parked()  # the ticker's turn
            ticker_went_on = True
    assert ticker_went_on
    await sender.aclose()
    await receiver.aclose()


async def test_a_socket_read_now_takes_what_is_there_and_never_waits() -> None:
    sender, receiver = await tcp_pair()
    read_now = socket_read_now(receiver)
    assert read_now is not None
    assert read_now(1024) is None  # nothing yet
    await sender.send_all(b"abc")
    with trio.fail_after(5):
        await trio.lowlevel.wait_readable(receiver.socket)
    assert read_now(1024) == b"abc"
    # A peer that resets its connection (killed): broken, as receive_some says.
    sender.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await sender.aclose()
    with trio.fail_after(5):
        await trio.lowlevel.wait_readable(receiver.socket)
    with pytest.raises(trio.BrokenResourceError):
        read_now(1024)
    assert socket_read_now(trio.testing.MemoryReceiveStream()) is None  # TLS, or not a socket
    await receiver.aclose()
