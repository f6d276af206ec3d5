"""The receiving end of a peer stream: a connection that opened with
``GET /raft/stream`` and ``Upgrade: raft-stream`` (:mod:`raft_trio.asgi`
hands it over before Hypercorn parses anything), answered ``101 Switching
Protocols`` and then read as raw frames, fed to the stream's
:class:`~raft_trio.peer.wire.StreamInbox`, the messages of each arrival
stepped into the node at once. A frame is one socket read and our own
framing: received as a chunk of a streaming ``POST`` (h11's chunked
reader, Hypercorn's read loop, an ASGI queue and a second task) it cost a
node a third more CPU (``python -m bench.request_cost --kind stream``:
0.23 against 0.17 ms a frame), on every heartbeat and every append.

The stream ends when the sender closes it, when a frame is refused
(nothing of that frame is parsed), when no frame (not even a keep-alive)
came for :data:`STREAM_IDLE_S`, or when this node stops. The receiver says
nothing on the connection until then; then one line of JSON, why it ended
(``{"status": 400, "error": "..."}``, the status an HTTP answer would have
had), and closes it. A refused opening gets an ordinary HTTP answer.

A leader at rest reads its streams at its own heartbeat rounds instead of
as bytes come (:class:`LazyReads`).
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import trio

from ..core import Message
from .wire import STREAM_PROTOCOL, PeerRequestError, StreamInbox

#: A stream on which no frame arrived for this long is closed: its sender
#: sends a keep-alive every second (raft_trio.peer.stream.KEEPALIVE_S), so
#: it is gone, or cut off without its connection being closed (a network
#: partition that drops packets); it opens a new one when it can.
STREAM_IDLE_S = 5.0
#: Bytes asked of the connection at a time.
RECEIVE_BYTES = 64 * 1024
#: The most a parked stream's ``read_now`` takes in the ticker's turn,
#: which passes no checkpoint: at rest a follower sends only heartbeat
#: answers (tens of bytes a round), so only a peer flooding its stream
#: comes near it; what is beyond waits for the next round.
READ_NOW_MAX_BYTES = 4 * RECEIVE_BYTES
#: How long the reason a stream ended may take to write: a sender that
#: reads nothing (paused) does not hold the connection open.
REASON_WRITE_S = 1.0

SWITCHING_PROTOCOLS = (
    f"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {STREAM_PROTOCOL}\r\n\r\n"
).encode()


class StreamEnd(enum.Enum):
    """How a stream that was not refused ended: its status (as an HTTP
    answer would have it) and why."""

    ENDED = (204, "the sender ended the stream")
    CLOSING = (503, "this node is stopping")
    IDLE = (408, f"no frame for {STREAM_IDLE_S:g} s")
    #: Nobody hears this one (499: nginx's "the client closed the request").
    BROKEN = (499, "the connection broke (the sender was killed, or reset it)")


def refusal(status: int, message: str) -> bytes:
    """The HTTP answer refusing a stream's opening."""
    body = json.dumps({"error": message}, separators=(",", ":")).encode() + b"\n"
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def end_line(end: StreamEnd | PeerRequestError) -> bytes:
    """What the receiver writes once a stream ended, before closing it."""
    if isinstance(end, PeerRequestError):
        status, message = end.status, end.message
    else:
        status, message = end.value
    return json.dumps({"status": status, "error": message}, separators=(",", ":")).encode() + b"\n"


#: A non-blocking read: up to ``max_bytes`` the connection holds now, b""
#: once it ended, None when it holds nothing yet; raises
#: ``trio.BrokenResourceError`` when it broke.
ReadNow = Callable[[int], bytes | None]


def socket_read_now(connection: trio.abc.ReceiveStream) -> ReadNow | None:
    """A read(2) on a plain TCP connection's socket, which Trio keeps
    non-blocking; None over TLS (the record layer's state lives in the TLS
    stream: only ``receive_some`` reads it)."""
    if not isinstance(connection, trio.SocketStream):
        return None
    fd = connection.socket.fileno()

    def read_now(max_bytes: int) -> bytes | None:
        try:
            return os.read(fd, max_bytes)
        except BlockingIOError:
            return None
        except OSError as error:
            raise trio.BrokenResourceError(str(error)) from error

    return read_now


class LazyReads:
    """A leader at rest reads its peers' streams at its heartbeat rounds.

    At rest, a follower's only messages are its answers to heartbeats, and
    a leader at rest needs them for check-quorum alone, which counts
    rounds (``RaftCore.awaits_answers``). Read as they came, the two
    followers' answers woke the leader twice a heartbeat besides its
    ticker's round: on a machine where a wake-up costs 0.5-0.8 ms of CPU,
    two thirds of what a leader at rest spent. So while nothing awaits an
    answer, a stream's reader parks instead of waiting on its socket, and
    the ticker reads every parked stream without waiting, in its own
    turn, before it sends the next round; the answers count one round
    late. The moment something awaits answers (a proposal, a read index
    round, a transfer, a role change: each hands out a Ready, where the
    node calls :meth:`wake_if_awaited`), the readers go back to reading as
    bytes come. A message read late is a message the network delayed:
    safety never depends on timing, and one heartbeat round is far below
    every timeout.

    Once woken, the readers park again only after a ticker's round found
    nothing awaited (``resting``): between one client's writes, a few
    milliseconds apart, nothing is awaited either, and parking there
    cost every write a park and a wake of each reader, and under load
    each read a look at every follower's progress.
    """

    def __init__(self, awaited: Callable[[], bool]) -> None:
        self._awaited = awaited
        #: Readers parked now, in the order they parked.
        self._parked: dict[StreamReader, None] = {}
        #: Whether the readers may park: nothing was awaited at the last
        #: ticker's round, nor since (each wake looks again).
        self.resting = True

    def may_park(self) -> bool:
        return self.resting and not self._awaited()

    async def park(self, reader: StreamReader, woken: trio.Event) -> None:
        self._parked[reader] = None
        try:
            await woken.wait()
        finally:
            del self._parked[reader]

    def read_parked(self) -> None:
        """Reads and delivers what each parked stream holds now (from the
        ticker's turn); then, if answers are awaited now, wakes them all,
        else lets the readers park from now on."""
        for reader in list(self._parked):
            reader.read_now()
        self.resting = True
        self.wake_if_awaited()

    def wake_if_awaited(self) -> None:
        """If answers are awaited now: wakes every parked reader, and no
        reader parks until the next ticker's round finds none awaited."""
        if self.resting and self._awaited():
            self.resting = False
            for reader in list(self._parked):
                reader.wake()


class StreamReader:
    """Reads one stream into the node: each arrival's messages delivered
    at once, or, while :class:`LazyReads` lets it park, when the ticker
    reads it (``read_now``: a non-blocking read; without one, as TLS, it
    never parks)."""

    def __init__(
        self,
        inbox: StreamInbox,
        receive_some: Callable[[int], Awaitable[bytes | bytearray]],
        deliver: Callable[[list[Message]], None],
        *,
        read_now: ReadNow | None = None,
        lazy: LazyReads | None = None,
    ) -> None:
        self._inbox = inbox
        self._receive_some = receive_some
        self._deliver = deliver
        self._read_now = read_now
        self._lazy = lazy if read_now is not None else None
        self._ended: StreamEnd | PeerRequestError | None = None
        #: What delivering a message read in the ticker's turn raised: it
        #: is raised in this stream's own task, as it would have been had
        #: the stream been read eagerly, never in the ticker's.
        self._failure: Exception | None = None
        self._woken = trio.Event()

    async def run(self, data: bytes | bytearray) -> StreamEnd | PeerRequestError:
        """Reads until the stream ends (``data``: bytes read already);
        how it ended, or why it was refused."""
        while True:
            if data:
                self._take(data)
            if self._ended is not None:
                return self._ended
            lazy = self._lazy
            if lazy is not None and lazy.may_park():
                await lazy.park(self, self._woken)
                self._woken = trio.Event()
                if self._failure is not None:
                    raise self._failure
                data = b""
                continue
            try:
                data = await self._receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return StreamEnd.BROKEN
            if not data:
                self._take_end()

    def read_now(self) -> None:
        """Delivers what the connection holds now, up to
        ``READ_NOW_MAX_BYTES``, without waiting; a stream that ended
        meanwhile is woken to finish."""
        assert self._read_now is not None
        taken = 0
        while self._ended is None:
            if taken >= READ_NOW_MAX_BYTES:
                return  # the rest waits a round: this turn passes no checkpoint
            try:
                data = self._read_now(RECEIVE_BYTES)
            except trio.BrokenResourceError:
                self._ended = StreamEnd.BROKEN
                break
            if data is None:
                return
            if not data:
                self._take_end()
                break
            taken += len(data)
            try:
                self._take(data)
            except Exception as failure:  # re-raised in the stream's own task: see run
                self._failure = failure
                break
            if self._ended is None and len(data) < RECEIVE_BYTES:
                return  # all it held, most likely; the rest waits a round
        self.wake()

    def wake(self) -> None:
        self._woken.set()

    def _take(self, data: bytes | bytearray) -> None:
        try:
            messages = self._inbox.feed(data)
        except PeerRequestError as refused:
            self._ended = refused
            return
        if messages:
            self._deliver(messages)

    def _take_end(self) -> None:
        if self._inbox.pending_bytes:
            self._ended = PeerRequestError(400, "the peer stream ended inside a frame")
        else:
            self._ended = StreamEnd.ENDED


async def read_stream(
    inbox: StreamInbox,
    connection: trio.abc.ReceiveStream,
    rest: bytes,
    deliver: Callable[[list[Message]], None],
    closing: trio.Event,
    lazy: LazyReads | None = None,
    sleep: Callable[[float], Awaitable[None]] = trio.sleep,
) -> StreamEnd | PeerRequestError:
    """Read the stream (``rest``: bytes that came with its opening) until it
    ends; how it ended, or why it was refused. With ``lazy``, a leader at
    rest reads it at its heartbeat rounds (:class:`LazyReads`); ``sleep``
    is where the check for a silent stream waits (it may end a little late:
    raft_trio.wakeups)."""
    ended: StreamEnd | PeerRequestError = StreamEnd.CLOSING
    reader = StreamReader(
        inbox, connection.receive_some, deliver, read_now=socket_read_now(connection), lazy=lazy
    )
    async with trio.open_nursery() as nursery:

        async def watch_silence() -> None:
            """Ends a stream that went silent (checked every STREAM_IDLE_S,
            not timed per frame)."""
            nonlocal ended
            seen = -1
            while True:
                await sleep(STREAM_IDLE_S)
                if inbox.frames == seen:
                    ended = StreamEnd.IDLE
                    nursery.cancel_scope.cancel()
                    return
                seen = inbox.frames

        async def watch_closing() -> None:
            """Ends the stream when this node stops."""
            await closing.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch_silence)
        nursery.start_soon(watch_closing)
        ended = await reader.run(rest)
        nursery.cancel_scope.cancel()
    return ended


async def tell_end(connection: trio.abc.SendStream, end: StreamEnd | PeerRequestError) -> None:
    """Writes why the stream ended, unless the sender cannot take it now."""
    with trio.move_on_after(REASON_WRITE_S):
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await connection.send_all(end_line(end))
