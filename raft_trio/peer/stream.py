"""The stream of one node to one peer, after etcd's rafthttp: an ordered,
long-lived request whose body carries this node's messages to that peer as
they are sent. Answers come back on the peer's own stream to this node.

- The outbox is bounded (:data:`MAX_QUEUED` messages, :data:`MAX_QUEUED_BYTES`
  of entries); beyond it the oldest messages are dropped and the core is
  told the peer is unreachable (Raft retransmits what matters).
- One task keeps the stream open: ``GET {url}/raft/stream`` on a connection
  of its own, asking to switch to the ``raft-stream`` protocol; once the
  peer answered ``101 Switching Protocols`` the connection carries one frame
  (:mod:`raft_trio.peer.framing`) per wake-up, holding everything queued
  meanwhile: messages that queue while a write is in flight go out
  together. While that task waits with nothing to send, the messages the
  node sends together (a Ready's) go out as one frame written at once by
  the sender itself (:meth:`PeerStream.send`), without waking the task:
  what the connection does not take at once, the task writes. The peer
  writes nothing back but, at the end, why the stream ended
  (:mod:`raft_trio.peer.inbound`).
- The deadline: a frame the connection does not take within ``deadline``
  (plus the time its size needs at :data:`MIN_WRITE_RATE`) drops the
  stream, as does a connection not made within it. A paused peer (SIGSTOP)
  costs the kernel's socket buffers and the bounded outbox, nothing else,
  and never delays another peer's stream.
- When a stream ends or breaks, the core hears that the peer is
  unreachable, and a new one is opened after a backoff (doubling from
  :data:`MIN_BACKOFF_S` to :data:`MAX_BACKOFF_S`; back to the minimum
  after a stream that lived :data:`HEALTHY_STREAM_S`). When the peer's
  address refuses the connection (no process listens there: it crashed
  or stopped; a paused one still accepts), the node hears that too
  (``on_refused``): a follower need not wait out a random election
  timeout for a leader that is gone.
- A stream with nothing to carry for :data:`KEEPALIVE_S` carries an empty
  frame (etcd's link heartbeat): a peer that went away is noticed within
  two of them, before a message (a vote, say) is lost on its dead
  connection, and the peer closes a stream that stays silent for longer
  (:data:`raft_trio.peer.inbound.STREAM_IDLE_S`).
- The node's report of itself (its alarms, :class:`.wire.PeerReport`) is
  the first frame of each stream, and goes again before the next frame
  whenever it changed (:meth:`PeerStream.report_changed` sends it at once):
  peers hear of a member short of space without asking.
- Snapshots go in requests of their own (``POST /raft/messages``, the body
  written in chunks under the same deadline per chunk), from a second task:
  a large snapshot never holds up the heartbeats on the stream, as in
  etcd's snapshot sender. The core hears whether it arrived.
"""

from __future__ import annotations

import collections
import json
import logging
import math
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Protocol

import httpcore
import httpx
import trio

from ..core import AppendEntries, InstallSnapshot, Message
from ..wakeups import SharedWakeups
from .auth import MAC_OFF_LOOP_BYTES, PeerAuthenticator
from .framing import FrameWriter
from .wire import (
    MESSAGES_PATH,
    STREAM_PATH,
    PeerReport,
    batch_request,
    encode_batch,
    encode_report,
    stream_request,
)

log = logging.getLogger(__name__)

#: A request body: all of it, or its chunks as they are made (a stream).
Body = bytes | AsyncIterable[bytes]
#: Sends one ``POST``: (url, headers, body) -> the HTTP status of the
#: answer. Raises ``httpx.HTTPError`` (or ``OSError``) when the peer cannot
#: be reached or the connection breaks.
RequestFunction = Callable[[str, dict[str, str], Body], Awaitable[int]]


class Connection(Protocol):
    """A stream's connection once the peer switched protocols. Its methods
    raise ``trio.BrokenResourceError`` when the connection breaks."""

    async def send_all(self, data: bytes) -> None: ...

    def send_now(self, data: bytes) -> int:
        """Writes as much of ``data`` as the connection takes at once,
        without waiting, and says how many bytes that was: 0 when it would
        have to wait, or can write only through ``send_all`` (TLS)."""
        ...

    async def receive_some(self, max_bytes: int) -> bytes | bytearray: ...

    async def aclose(self) -> None: ...


#: Opens a stream: (url, headers) -> its connection once the peer answered
#: ``101 Switching Protocols``, or the HTTP status it answered instead.
#: Raises ``httpx.HTTPError`` (or ``OSError``) when the peer cannot be reached.
StreamOpener = Callable[[str, dict[str, str]], Awaitable[Connection | int]]

#: Bounds of one peer's outbox: a peer that does not drain costs at most
#: this much memory.
MAX_QUEUED = 4096
MAX_QUEUED_BYTES = 64 * 1024 * 1024
#: A frame takes what is queued up to about this size (a larger single
#: message goes alone).
FRAME_TARGET_BYTES = 4 * 1024 * 1024
#: A write of ``n`` bytes may take ``deadline + n / MIN_WRITE_RATE``
#: seconds: a peer that takes less than this many bytes a second is gone.
MIN_WRITE_RATE = 1024 * 1024
#: Waits between stream attempts.
MIN_BACKOFF_S = 0.05
MAX_BACKOFF_S = 0.5
HEALTHY_STREAM_S = 1.0
#: A stream idle this long carries an empty frame.
KEEPALIVE_S = 1.0
#: Chunks of a snapshot's request body.
SNAPSHOT_CHUNK_BYTES = 256 * 1024
#: How long a peer may take to answer a snapshot once it has all of it
#: (it decodes and installs it first).
SNAPSHOT_ANSWER_S = 20.0
#: The most a peer says on a stream (why it ended) before it closes it.
MAX_END_BYTES = 4096


class StreamMetrics(Protocol):
    """Where a stream reports what it did (``raft_trio.node.metrics``)."""

    def frame_sent(self, peer_id: str, messages: int, size: int) -> None: ...

    def stream_broken(self, peer_id: str) -> None: ...

    def messages_dropped(self, peer_id: str, count: int) -> None: ...


def estimated_size(message: Message) -> int:
    """Bytes a message takes, roughly: its entries' data dominates."""
    if isinstance(message, AppendEntries):
        return 64 + sum(32 + len(entry.data) for entry in message.entries)
    return 64


class PeerStream:
    """The outbox of one peer, the task that keeps a stream to it, and the
    task that sends it snapshots."""

    def __init__(
        self,
        node_id: str,
        peer_id: str,
        url: str,
        open_stream: StreamOpener,
        request: RequestFunction,
        deadline: float,
        on_unreachable: Callable[[str], None],
        on_snapshot_sent: Callable[[str, bool], None],
        metrics: StreamMetrics | None = None,
        auth: PeerAuthenticator | None = None,
        report: Callable[[], PeerReport] | None = None,
        wakeups: SharedWakeups | None = None,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.node_id = node_id
        #: Where the keep-alive check sleeps (it may run a little late).
        self._sleep = wakeups.sleep if wakeups is not None else trio.sleep
        self.peer_id = peer_id
        self.url = url.rstrip("/")
        self._open_stream = open_stream
        self._request = request
        self._deadline = deadline
        self._on_unreachable = on_unreachable
        self._on_refused = on_refused
        self._on_snapshot_sent = on_snapshot_sent
        self._metrics = metrics
        self._auth = auth
        self._queue: collections.deque[tuple[Message, int]] = collections.deque()
        self._queued_bytes = 0
        self._wake = trio.Event()
        self._snapshot: InstallSnapshot | None = None
        self._snapshot_wake = trio.Event()
        self._frames_sent = 0
        self._keepalive_due = False
        #: The connection and frame writer of a stream whose task waits for
        #: something to send (None while it writes, or there is no stream).
        self._parked: tuple[Connection, FrameWriter] | None = None
        #: What the connection did not take of a frame written at once.
        self._unsent = b""
        self._report = report
        #: The report the current stream last carried (None: none yet).
        self._report_sent: PeerReport | None = None
        self.cancel_scope = trio.CancelScope()
        #: Its task has ended (cancelled, or a retired stream's deadline).
        self.ended = False
        #: Messages dropped from a full outbox, streams opened: for tests.
        self.dropped = 0
        self.streams_opened = 0

    def send(self, messages: Iterable[Message]) -> None:
        """Queues ``messages`` and, while the stream's task waits with
        nothing to send, writes them at once from here, as one frame: at
        rest a heartbeat (or its answer) then costs no wake-up of that
        task, and under one client no hop through it. Whatever the
        connection does not take at once, the task writes (within the
        deadline, as any frame)."""
        for message in messages:
            self._put(message)
        self._flush()

    def _flush(self) -> None:
        """Writes what there is to send at once if the stream's task waits
        idle (see :meth:`send`), else wakes that task."""
        parked = self._parked
        if parked is None:
            self._wake.set()
            return
        connection, writer = parked
        while (frame := self._take_frame(writer)) is not None:
            try:
                sent = connection.send_now(frame)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                sent = 0  # the task's own write of it finds the connection broken
            if sent < len(frame):
                # The rest is the task's to write, before anything else:
                # until it has, the connection is not idle.
                self._unsent = frame[sent:]
                self._parked = None
                self._wake.set()
                return

    def retire(self) -> None:
        """End within the deadline, not at once: a removed member's stream
        still carries what it was last given, the leader's heartbeat that
        tells it that its removal committed (RaftCore._release_removed),
        and stays open while the peer reads it."""
        self.cancel_scope.deadline = min(self.cancel_scope.deadline, trio.current_time() + self._deadline)

    def _put(self, message: Message) -> None:
        if isinstance(message, InstallSnapshot):
            self._snapshot = message  # a newer one replaces one not yet sent
            self._snapshot_wake.set()
            return
        size = estimated_size(message)
        self._queue.append((message, size))
        self._queued_bytes += size
        if len(self._queue) > MAX_QUEUED or self._queued_bytes > MAX_QUEUED_BYTES:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        dropped = 0
        while len(self._queue) > 1 and (
            len(self._queue) > MAX_QUEUED or self._queued_bytes > MAX_QUEUED_BYTES
        ):
            _, size = self._queue.popleft()
            self._queued_bytes -= size
            dropped += 1
        self.dropped += dropped
        if self._metrics is not None:
            self._metrics.messages_dropped(self.peer_id, dropped)
        self._on_unreachable(self.peer_id)

    async def run(self) -> None:
        try:
            with self.cancel_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._send_snapshots, name=f"snapshots-{self.peer_id}")
                    nursery.start_soon(self._keepalives, name=f"keepalives-{self.peer_id}")
                    await self._keep_stream()
        finally:
            self.ended = True

    # -- the stream ------------------------------------------------------

    async def _keep_stream(self) -> None:
        backoff = MIN_BACKOFF_S
        while True:
            opened = trio.current_time()
            why = await self._stream_once()
            self._on_unreachable(self.peer_id)
            if self._metrics is not None:
                self._metrics.stream_broken(self.peer_id)
            lived = trio.current_time() - opened
            if lived >= HEALTHY_STREAM_S:
                # A stream that was up: worth a line (attempts to reopen it are not).
                log.info("stream to %s ended after %.1f s: %s", self.peer_id, lived, why)
                backoff = MIN_BACKOFF_S
            else:
                log.debug("stream to %s ended after %.3f s: %s", self.peer_id, lived, why)
            await trio.sleep(backoff)
            backoff = min(2 * backoff, MAX_BACKOFF_S)

    async def _stream_once(self) -> str:
        """One stream, from its opening until it ends or breaks; why it ended."""
        headers, writer = stream_request(self.node_id, self.peer_id, self._auth)
        self.streams_opened += 1
        self._report_sent = None
        self._unsent = b""  # a frame of the last stream, lost with it
        # A task woken just before the node stopped reaches this point with
        # its scope already cancelled and the client closed, and httpx checks
        # for a closed client before its first checkpoint: take the
        # cancellation here.
        await trio.lowlevel.checkpoint_if_cancelled()
        with trio.CancelScope(deadline=trio.current_time() + self._deadline) as scope:
            try:
                opened = await self._open_stream(self.url + STREAM_PATH, headers)
            except (httpx.HTTPError, httpx.InvalidURL, OSError, trio.BrokenResourceError) as error:
                # InvalidURL: a member's URL httpx refuses (one added before
                # URLs were checked) is a peer never reached, not a crash.
                if self._on_refused is not None and connection_refused(error):
                    self._on_refused(self.peer_id)
                return _describe(error)
            if isinstance(opened, int):
                if opened in (400, 401, 403, 404, 412, 413):
                    log.warning("stream to %s refused: HTTP %d", self.peer_id, opened)
                return f"answered HTTP {opened}"
            try:
                return await self._carry(opened, writer, scope)
            finally:
                with trio.CancelScope() as closing:
                    closing.cancel()  # at once, as trio.aclose_forcefully
                    await opened.aclose()
        return f"a write waited longer than its deadline ({self._deadline:g} s and 1 s a MiB)"

    async def _carry(self, connection: Connection, writer: FrameWriter, scope: trio.CancelScope) -> str:
        """Writes the stream's frames until the connection breaks or the
        peer ends the stream (it then says why); each write must finish
        within the deadline :meth:`next_frame` sets on ``scope``."""
        ended = ""
        async with trio.open_nursery() as nursery:

            async def listen() -> None:
                nonlocal ended
                ended = await self._peer_says(connection)
                nursery.cancel_scope.cancel()

            nursery.start_soon(listen)
            scope.deadline = math.inf
            try:
                while True:
                    frame = await self.next_frame(connection, writer, scope)
                    await connection.send_all(frame)
                    scope.deadline = math.inf
            except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                ended = _describe(error)
                nursery.cancel_scope.cancel()
        return ended

    async def _peer_says(self, connection: Connection) -> str:
        """Waits for the end of the stream from the peer's side: why it
        ended, in the peer's words when it said them."""
        said = bytearray()
        try:
            while data := await connection.receive_some(MAX_END_BYTES):
                said += data
                if len(said) > MAX_END_BYTES:
                    return "the peer said more than a stream's end"
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            return _describe(error)
        try:
            end = json.loads(said)
            status, why = int(end["status"]), str(end["error"])
        except (ValueError, KeyError, TypeError):
            return "the peer closed the connection"
        if status in (400, 401, 404):
            log.warning("stream to %s refused: %s (%d)", self.peer_id, why, status)
        return f"the peer ended it: {why} ({status})"

    async def _keepalives(self) -> None:
        """Once a keep-alive interval passed without a frame, send an empty
        one (at once, if the stream is idle): a task waking once a second,
        rather than a timer armed around every wait for a message."""
        seen = -1
        while True:
            await self._sleep(KEEPALIVE_S)
            if self._frames_sent == seen and not self._queue:
                self._keepalive_due = True
                self._flush()
                seen += 1  # the keep-alive itself
            else:
                seen = self._frames_sent

    def report_changed(self) -> None:
        """The node's report changed: send it now, not with the next frame."""
        self._flush()

    async def next_frame(self, connection: Connection, writer: FrameWriter, scope: trio.CancelScope) -> bytes:
        """The next frame of the stream (the rest of one :meth:`send` wrote
        in part, else :meth:`_take_frame`'s), once there is one; its write
        must finish within the deadline this sets on ``scope``. While it
        waits, :meth:`send` may write frames on ``connection`` itself."""
        while True:
            frame: bytes | None
            if self._unsent:
                frame, self._unsent = self._unsent, b""
            else:
                frame = self._take_frame(writer)
            if frame is not None:
                scope.deadline = trio.current_time() + self._deadline + len(frame) / MIN_WRITE_RATE
                return frame
            self._parked = (connection, writer)
            try:
                await self._wake.wait()
            finally:
                self._parked = None
            self._wake = trio.Event()

    def _take_frame(self, writer: FrameWriter) -> bytes | None:
        """The frame to send now, if any: the node's report if it changed
        since this stream last carried it (or the stream is new), else
        everything queued, else an empty frame when a keep-alive is due."""
        if self._report is not None:
            report = self._report()
            if report != self._report_sent:
                self._report_sent = report
                self._frames_sent += 1
                return writer.frame(encode_report(report))
        if not self._queue:
            if not self._keepalive_due:
                return None
            self._keepalive_due = False
            self._frames_sent += 1
            return writer.frame(b"")
        self._keepalive_due = False
        self._frames_sent += 1
        batch: list[Message] = []
        size = 0
        queue = self._queue
        while queue and (not batch or size + queue[0][1] <= FRAME_TARGET_BYTES):
            message, message_size = queue.popleft()
            batch.append(message)
            size += message_size
        self._queued_bytes -= size
        frame = writer.frame(encode_batch(batch))
        if self._metrics is not None:
            self._metrics.frame_sent(self.peer_id, len(batch), len(frame))
        return frame

    # -- snapshots -------------------------------------------------------

    async def _send_snapshots(self) -> None:
        while True:
            while self._snapshot is None:
                await self._snapshot_wake.wait()
                self._snapshot_wake = trio.Event()
            message, self._snapshot = self._snapshot, None
            sign = self._auth.sign if self._auth is not None else None
            batch: list[Message] = [message]
            request = (self.node_id, self.peer_id, batch, sign)
            if sign is not None and len(message.data) >= MAC_OFF_LOOP_BYTES:
                # The MAC over the whole body on a worker thread, as the
                # receiver checks it: a snapshot's would hold the loop.
                body, headers = await trio.to_thread.run_sync(batch_request, *request)
            else:
                body, headers = batch_request(*request)
            headers["Content-Length"] = str(len(body))  # not chunked: the peer may refuse it at once
            ok = False
            await trio.lowlevel.checkpoint_if_cancelled()
            with trio.CancelScope(deadline=trio.current_time() + self._deadline) as scope:
                try:
                    chunks = _Chunks(body, scope, self._deadline)
                    ok = await self._request(self.url + MESSAGES_PATH, headers, chunks) == 204
                except (httpx.HTTPError, httpx.InvalidURL, OSError) as error:
                    log.debug("snapshot to %s failed: %r", self.peer_id, error)
            log.info(
                "snapshot at index %d (%d bytes) %s %s",
                message.meta.index,
                len(body),
                "sent to" if ok else "not delivered to",
                self.peer_id,
            )
            self._on_snapshot_sent(self.peer_id, ok)
            if not ok:
                await trio.sleep(MIN_BACKOFF_S)


def connection_refused(error: BaseException) -> bool:
    """Whether ``error`` says that the address refused the connection
    (ECONNREFUSED: nothing listens on that port), at every address tried.
    httpx wraps the refusal in its own error, caused by httpcore's, which
    holds (as the exception it was raised while handling) Trio's OSError,
    caused by a group of one error per address tried: what counts is the
    error at the end of that chain (every one of the group's). Only that
    one link is followed through the exception being handled; anywhere
    else, an error raised while handling a refusal is not one. A timeout,
    an unreachable network or a reset makes it False."""
    if isinstance(error, ConnectionRefusedError):
        return True
    if isinstance(error, BaseExceptionGroup):
        return all(connection_refused(inner) for inner in error.exceptions)
    cause = error.__cause__
    if cause is None and isinstance(error, httpcore.ConnectError):
        cause = error.__context__
    return cause is not None and connection_refused(cause)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class _Chunks:
    """The body of one snapshot request, in chunks, each write under the
    deadline; once all is written, the answer has SNAPSHOT_ANSWER_S."""

    def __init__(self, body: bytes, scope: trio.CancelScope, deadline: float) -> None:
        self._body = body
        self._offset = 0
        self._scope = scope
        self._deadline = deadline

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        await trio.lowlevel.checkpoint()
        now = trio.current_time()
        if self._offset >= len(self._body):
            self._scope.deadline = now + SNAPSHOT_ANSWER_S
            raise StopAsyncIteration
        chunk = self._body[self._offset : self._offset + SNAPSHOT_CHUNK_BYTES]
        self._offset += len(chunk)
        self._scope.deadline = now + self._deadline + len(chunk) / MIN_WRITE_RATE
        return chunk
