"""One peer's stream on Trio's fake clock, through a fake peer: frames
carry what queued meanwhile, a write past its deadline drops the stream,
broken streams (or streams the peer ends) reopen with backoff and tell the
core, the outbox is bounded, and snapshots travel beside the stream, never
on it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable

import pytest
import trio
import trio.testing

from raft_trio.core import Entry, Heartbeat, InstallSnapshot, Membership, Message, SnapshotMeta
from raft_trio.core._messages import AppendEntries
from raft_trio.peer import stream as stream_module
from raft_trio.peer.auth import PeerAuthenticator
from raft_trio.peer.inbound import StreamEnd, end_line
from raft_trio.peer.stream import MIN_BACKOFF_S, Body, PeerStream
from raft_trio.peer.wire import (
    MESSAGES_PATH,
    STREAM_PATH,
    STREAM_PROTOCOL,
    PeerReport,
    PeerRequestError,
    StreamInbox,
    accept_batch,
    accept_stream,
)
from raft_trio.testing.waiting import LoopTurns, wait_for

DEADLINE = 0.2


def heartbeat(seq: int) -> Heartbeat:
    return Heartbeat(term=1, src="n1", dst="n2", commit=0, seq=seq)


class FakeConnection:
    """The sender's end of a stream's connection to a :class:`FakePeer`:
    each write is read at once, unless the peer is stalled (then it blocks,
    as on a full socket buffer); the peer says nothing until :meth:`end`."""

    def __init__(self, peer: FakePeer, inbox: StreamInbox) -> None:
        self._peer = peer
        self._inbox = inbox
        self._said = bytearray()
        self._news = trio.Event()
        self.closed = False
        #: The most bytes a write at once takes (None: all of them).
        self.takes_at_once: int | None = None
        #: Writes made at once (send_now), and by the stream's task.
        self.written_at_once = 0
        self.written_by_task = 0

    async def send_all(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        if self.closed:
            raise trio.ClosedResourceError
        if self._peer.stalled:
            await trio.sleep_forever()
        self.written_by_task += 1
        self._deliver(data)

    def send_now(self, data: bytes) -> int:
        if self.closed:
            raise trio.BrokenResourceError("closed")
        if self._peer.stalled:
            return 0
        taken = data[: self.takes_at_once] if self.takes_at_once is not None else data
        self.written_at_once += 1
        self._deliver(taken)
        return len(taken)

    def _deliver(self, data: bytes) -> None:
        """The peer reads ``data``: a write is one frame, or a piece of one."""
        before = self._inbox.frames
        messages = self._inbox.feed(data)
        if self._inbox.frames > before:
            self._peer.frames.append(messages)

    async def receive_some(self, max_bytes: int) -> bytes:
        while not self._said and not self.closed:
            await self._news.wait()
            self._news = trio.Event()
        said, self._said = bytes(self._said[:max_bytes]), self._said[max_bytes:]
        return said

    def end(self, line: bytes) -> None:
        """The peer writes ``line`` and closes its end."""
        self._said += line
        self.closed = True
        self._news.set()

    async def aclose(self) -> None:
        self.closed = True
        self._news.set()


class FakePeer:
    """Takes streams and requests like a node would; ``stalled`` makes it
    stop reading (a paused process with full socket buffers); ``down``
    makes every connection fail."""

    def __init__(self, auth: PeerAuthenticator | None = None) -> None:
        #: Checks the signatures of streams and requests (None: no secret).
        self.auth = auth
        self.frames: list[list[Message]] = []
        #: (stream number, report) for each report frame.
        self.reports: list[tuple[int, PeerReport]] = []
        self.snapshots: list[InstallSnapshot] = []
        self.stream_attempts: list[float] = []
        self.connections: list[FakeConnection] = []
        self.stalled = False
        self.down = False
        #: What a connection to a peer that is down fails with.
        self.down_error: type[OSError] = OSError
        self.snapshot_started = trio.Event()

    async def open_stream(self, url: str, headers: dict[str, str]) -> FakeConnection:
        assert url.endswith(STREAM_PATH)
        lower = {k.lower(): v for k, v in headers.items()}
        assert lower["upgrade"] == STREAM_PROTOCOL and lower["connection"] == "Upgrade"
        self.stream_attempts.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        if self.down:
            raise self.down_error("the peer is down")
        number = len(self.stream_attempts)
        inbox = await accept_stream(
            lower["x-raft-from"], lower, self.auth, lambda _, report: self.reports.append((number, report))
        )
        self.connections.append(FakeConnection(self, inbox))
        return self.connections[-1]

    async def request(self, url: str, headers: dict[str, str], body: Body) -> int:
        lower = {k.lower(): v for k, v in headers.items()}
        assert url.endswith(MESSAGES_PATH)
        assert isinstance(body, AsyncIterable)
        self.snapshot_started.set()
        data = b"".join([chunk async for chunk in body])
        (message,) = await accept_batch(lower["x-raft-from"], lower, data, self.auth)
        assert isinstance(message, InstallSnapshot)
        self.snapshots.append(message)
        return 204


class Core:
    """What the stream tells the core."""

    def __init__(self) -> None:
        self.unreachable: list[float] = []
        self.refused: list[float] = []
        self.snapshots: list[bool] = []

    def on_unreachable(self, peer_id: str) -> None:
        self.unreachable.append(trio.current_time())

    def on_refused(self, peer_id: str) -> None:
        self.refused.append(trio.current_time())

    def on_snapshot_sent(self, peer_id: str, ok: bool) -> None:
        self.snapshots.append(ok)


def make(
    peer: FakePeer,
    core: Core,
    report: Callable[[], PeerReport] | None = None,
    auth: PeerAuthenticator | None = None,
) -> PeerStream:
    return PeerStream(
        "n1",
        "n2",
        "mem://n2",
        peer.open_stream,
        peer.request,
        DEADLINE,
        core.on_unreachable,
        core.on_snapshot_sent,
        auth=auth,
        report=report,
        on_refused=core.on_refused,
    )


@contextlib.asynccontextmanager
async def idle_stream() -> AsyncIterator[tuple[FakePeer, Core, PeerStream]]:
    """A stream open to a fake peer, its task waiting with nothing to send."""
    peer, core = FakePeer(), Core()
    stream = make(peer, core)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.run)
        await wait_for(lambda: stream.streams_opened == 1, poll=0.001)
        await trio.sleep(0.01)
        yield peer, core, stream
        nursery.cancel_scope.cancel()


async def test_messages_queued_while_a_write_is_in_flight_go_out_in_one_frame(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with idle_stream() as (peer, core, stream):
        # The connection takes nothing at once: the stream's task writes.
        connection = peer.connections[0]
        connection.takes_at_once = 0
        stream.send([heartbeat(1)])
        for seq in (2, 3, 4):  # while that write is in flight
            stream.send([heartbeat(seq)])
        await trio.sleep(0.01)
    assert peer.frames == [[heartbeat(1)], [heartbeat(2), heartbeat(3), heartbeat(4)]]
    assert connection.written_by_task == 2
    assert core.unreachable == []
    assert stream.streams_opened == 1


async def test_messages_sent_to_an_idle_stream_are_written_at_once_as_one_frame(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with idle_stream() as (peer, core, stream):
        connection = peer.connections[0]
        stream.send([heartbeat(1), heartbeat(2)])
        # Written before anything else ran: no wake-up of the stream's task.
        assert peer.frames == [[heartbeat(1), heartbeat(2)]]
        stream.send([heartbeat(3)])
        assert peer.frames[-1] == [heartbeat(3)]
        await trio.sleep(0.01)
    assert (connection.written_at_once, connection.written_by_task) == (2, 0)
    assert core.unreachable == []


async def test_what_the_connection_does_not_take_at_once_the_task_writes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with idle_stream() as (peer, core, stream):
        connection = peer.connections[0]
        connection.takes_at_once = 7
        stream.send([heartbeat(1), heartbeat(2)])
        assert peer.frames == []  # a piece of the frame
        # Sent meanwhile: queued behind the rest of that frame.
        stream.send([heartbeat(3)])
        await trio.sleep(0.01)
        assert peer.frames == [[heartbeat(1), heartbeat(2)], [heartbeat(3)]]
        assert connection.written_by_task == 2
        # Idle again: written at once again.
        connection.takes_at_once = None
        stream.send([heartbeat(4)])
        assert peer.frames[-1] == [heartbeat(4)]
    assert core.unreachable == []
    assert stream.streams_opened == 1


async def test_a_connection_that_breaks_under_a_write_at_once_is_reopened(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with idle_stream() as (peer, core, stream):
        peer.connections[0].closed = True
        stream.send([heartbeat(1)])
        with trio.fail_after(1):
            await wait_for(lambda: bool(core.unreachable), poll=0.001)
            await wait_for(lambda: stream.streams_opened == 2, poll=0.001)
        await trio.sleep(0.01)
        stream.send([heartbeat(2)])
        assert peer.frames == [[heartbeat(2)]]  # the first went with its stream


async def test_a_stream_that_takes_no_frame_within_the_deadline_is_dropped_and_reopened(
    autojump_clock: trio.testing.MockClock,
) -> None:
    peer, core = FakePeer(), Core()
    stream = make(peer, core)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.run)
        stream.send([heartbeat(1)])
        await trio.sleep(0.01)
        peer.stalled = True
        written_at = trio.current_time()
        stream.send([heartbeat(2)])
        with trio.fail_after(1):
            await wait_for(lambda: bool(core.unreachable), poll=0.001)
        # Dropped when the write had waited out its deadline (and the time
        # its few bytes need at the minimum rate), not before.
        assert DEADLINE <= core.unreachable[0] - written_at <= DEADLINE + 0.01
        peer.stalled = False
        stream.send([heartbeat(3)])
        with trio.fail_after(1):
            await wait_for(lambda: [heartbeat(3)] in peer.frames, poll=0.001)
        nursery.cancel_scope.cancel()
    assert stream.streams_opened == 2
    assert peer.stream_attempts[1] - core.unreachable[0] == pytest.approx(MIN_BACKOFF_S)


async def test_a_peer_that_is_down_is_retried_with_backoff_and_reported_each_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    peer, core = FakePeer(), Core()
    peer.down = True
    stream = make(peer, core)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.run)
        await trio.sleep(3.0)
        nursery.cancel_scope.cancel()
    gaps = [b - a for a, b in zip(peer.stream_attempts, peer.stream_attempts[1:], strict=False)]
    assert gaps[:5] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.5])
    assert all(gap == pytest.approx(stream_module.MAX_BACKOFF_S) for gap in gaps[4:])
    assert len(core.unreachable) == len(peer.stream_attempts)


@pytest.mark.parametrize("refused", [True, False])
async def test_a_peer_whose_address_refuses_is_reported_refused_each_time(
    autojump_clock: trio.testing.MockClock, refused: bool
) -> None:
    """A connection refused (nothing listens: the peer crashed) is news the
    node hears on every attempt; any other failure to connect is not."""
    peer, core = FakePeer(), Core()
    peer.down = True
    peer.down_error = ConnectionRefusedError if refused else TimeoutError
    stream = make(peer, core)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.run)
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    assert len(peer.stream_attempts) >= 4
    assert core.refused == (peer.stream_attempts if refused else [])
    assert len(core.unreachable) == len(peer.stream_attempts)


async def test_a_stream_with_nothing_to_carry_carries_keepalives(
    autojump_clock: trio.testing.MockClock,
) -> None:
    peer, core = FakePeer(), Core()
    stream = make(peer, core)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.run)
        stream.send([heartbeat(1)])
        await trio.sleep(10.5)  # off the keep-alive ticks
        nursery.cancel_scope.cancel()
    assert peer.frames[0] == [heartbeat(1)]
    keepalives = peer.frames[1:]
    assert keepalives == [[]] * len(keepalives)
    # One per keep-alive interval once the stream is quiet (the first
    # interval still saw the heartbeat): at 2, 3, ... 10 s.
    assert len(keepalives) == 9
    assert stream_module.KEEPALIVE_S == 1.0
    assert stream.streams_opened == 1


async def test_the_outbox_of_a_peer_that_takes_nothing_is_bounded(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "MAX_QUEUED", 10)
    peer, core = FakePeer(), Core()
    peer.down = True
    stream = make(peer, core)
    for seq in range(25):
        stream.send([heartbeat(seq)])
    assert stream.dropped == 15
    assert len(core.unreachable) == 15
    big = AppendEntries(1, "n1", "n2", 0, 0, (Entry(1, 1, data=b"x" * 1000),), 0)
    monkeypatch.setattr(stream_module, "MAX_QUEUED_BYTES", 5000)
    for _ in range(10):
        stream.send([big])
    assert stream._queued_bytes <= 5000
    # The newest messages are kept.
    assert [m for m, _ in stream._queue][-1] is big


async def test_a_snapshot_goes_beside_a_stalled_stream_not_on_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    peer, core = FakePeer(), Core()
    stream = make(peer, core)
    snapshot = InstallSnapshot(
        1, "n1", "n2", SnapshotMeta(7, 1, Membership.of({"n1": "u1", "n2": "u2"})), b"s" * 1_000_000
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.run)
        stream.send([heartbeat(1)])
        await trio.sleep(0.01)
        peer.stalled = True
        stream.send([heartbeat(2)])  # held up on the stream
        stream.send([snapshot])
        with trio.fail_after(1):
            await wait_for(lambda: bool(core.snapshots), poll=0.001)
        nursery.cancel_scope.cancel()
    assert core.snapshots == [True]
    assert peer.snapshots == [snapshot]
    assert all(not isinstance(m, InstallSnapshot) for frame in peer.frames for m in frame)


async def test_a_large_snapshot_is_signed_while_the_event_loop_runs() -> None:
    """With a secret, the MAC over a snapshot's whole body is computed on a
    worker thread (0.39 s for 256 MiB): on the loop it would hold up the
    node's heartbeats to every peer for as long. A task that only yields
    keeps running while the body is signed, and the peer takes the
    signature."""
    secret = b"0123456789abcdef-cluster"
    peer, core = FakePeer(PeerAuthenticator(secret, "n2")), Core()
    stream = make(peer, core, auth=PeerAuthenticator(secret, "n1"))
    meta = SnapshotMeta(7, 1, Membership.of({"n1": "u1", "n2": "u2"}))
    snapshot = InstallSnapshot(1, "n1", "n2", meta, b"s" * (32 << 20))
    turns = LoopTurns()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.run)
        await wait_for(lambda: stream.streams_opened == 1, poll=0.001)
        stream.send([snapshot])
        nursery.start_soon(turns.run)
        await peer.snapshot_started.wait()  # signed: the request begins
        turns.stop()
        with trio.fail_after(30):
            await wait_for(lambda: bool(core.snapshots), poll=0.001)
        nursery.cancel_scope.cancel()
    assert core.snapshots == [True]
    assert peer.snapshots == [snapshot]
    assert turns.count > 50  # on the loop, signing 32 MiB would have left it a turn or two


async def test_a_snapshot_write_that_stalls_fails_and_the_core_hears_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The peer takes the first chunk, then not a byte more: the request is
    given up once the next chunk has waited its deadline (plus the time
    its size needs at the minimum rate)."""
    core = Core()

    async def stalled(url: str, headers: dict[str, str], body: Body) -> int:
        assert isinstance(body, AsyncIterable)
        if url.endswith(MESSAGES_PATH):
            async for _ in body:
                await trio.sleep_forever()
        await trio.sleep_forever()
        return 204

    stream = PeerStream(
        "n1",
        "n2",
        "mem://n2",
        FakePeer().open_stream,
        stalled,
        DEADLINE,
        core.on_unreachable,
        core.on_snapshot_sent,
    )
    data = b"s" * (3 * stream_module.SNAPSHOT_CHUNK_BYTES)
    snapshot = InstallSnapshot(1, "n1", "n2", SnapshotMeta(7, 1, Membership.of({"n1": "u"})), data)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.run)
        stream.send([snapshot])
        started = trio.current_time()
        with trio.fail_after(5):
            await wait_for(lambda: bool(core.snapshots), poll=0.001)
        nursery.cancel_scope.cancel()
    assert core.snapshots == [False]
    chunk_s = stream_module.SNAPSHOT_CHUNK_BYTES / stream_module.MIN_WRITE_RATE
    assert trio.current_time() - started == pytest.approx(DEADLINE + chunk_s, abs=0.01)


async def test_each_stream_opens_with_the_nodes_report_and_carries_every_change(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A peer hears the node's alarms as the first frame of every stream
    (so one that reconnects learns what changed meanwhile), before the next
    frame once they change, and at once when told (``report_changed``)."""
    peer, core = FakePeer(), Core()
    alarms: list[tuple[str, ...]] = [()]
    stream = make(peer, core, report=lambda: PeerReport(alarms[0]))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.run)
        await trio.sleep(0.01)
        assert peer.reports == [(1, PeerReport(()))], "the first frame of a stream is the report"
        alarms[0] = ("NOSPACE",)
        stream.send([heartbeat(1)])
        await trio.sleep(0.01)
        assert peer.reports[1:] == [(1, PeerReport(("NOSPACE",)))]
        assert peer.frames[-1] == [heartbeat(1)], "the report went first, then the message"
        alarms[0] = ()
        stream.report_changed()
        await trio.sleep(0.001)
        assert peer.reports[2:] == [(1, PeerReport(()))]
        # Nothing changed: no report with the next frame.
        stream.send([heartbeat(2)])
        await trio.sleep(0.01)
        assert len(peer.reports) == 3
        # The stream breaks; the alarm is raised before a new one opens.
        peer.stalled = True
        stream.send([heartbeat(3)])
        await wait_for(lambda: bool(core.unreachable), poll=0.001)
        peer.stalled = False
        alarms[0] = ("NOSPACE",)
        await wait_for(lambda: len(peer.stream_attempts) == 2, poll=0.001)
        await trio.sleep(0.01)
        assert peer.reports[3:] == [(2, PeerReport(("NOSPACE",)))]
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("end", "logged"),
    [
        (StreamEnd.IDLE, None),
        (PeerRequestError(401, "frame 3 failed its MAC", "n1"), "refused: frame 3 failed its MAC (401)"),
    ],
)
async def test_a_stream_the_peer_ends_is_reopened_and_its_reason_heard(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    end: StreamEnd | PeerRequestError,
    logged: str | None,
) -> None:
    """The peer closes a stream with one line saying why: the core hears
    the peer unreachable, a refusal is logged in the peer's words, and a
    new stream opens after the backoff and carries on."""
    peer, core = FakePeer(), Core()
    stream = make(peer, core)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.run)
        stream.send([heartbeat(1)])
        await wait_for(lambda: bool(peer.connections), poll=0.001)
        peer.connections[0].end(end_line(end))
        with trio.fail_after(1):
            await wait_for(lambda: len(peer.connections) == 2, poll=0.001)
        stream.send([heartbeat(2)])
        await wait_for(lambda: [heartbeat(2)] in peer.frames, poll=0.001)
        nursery.cancel_scope.cancel()
    assert len(core.unreachable) == 1
    assert peer.stream_attempts[1] - core.unreachable[0] == pytest.approx(MIN_BACKOFF_S)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if logged is None:
        assert warnings == []
    else:
        assert warnings == [f"stream to n2 {logged}"]
