"""One member of the floor: the least that any replicated write on this
stack must do, with none of Raft's own work.

``bench/floor.py`` starts three of these and drives the first with the same
wrk load as a raft-trio leader. What a write costs here is what the stack
and the topology cost, and nothing of ours: no log, no terms, no Raft step,
no state machine, no message encoding, no authentication. Each member runs
the node's own front door (:func:`raft_trio.asgi.serve_app`, the same
Hypercorn configuration on Trio, :func:`raft_trio.server.tune_process`)
and takes its peers' connections on the same port, switched by an
``Upgrade`` as raft-trio's peer streams are (:mod:`raft_trio.peer.inbound`).

- The first member (the "leader") answers ``PUT``: it numbers the body
  and hands it to its disk task, which writes what came since its last
  write, as frames (a length, the number, the body) written together, to
  each other member's connection, then appends it to its own file; the
  request is answered ``200`` once its own append is on disk and one
  other member said the same of it: a majority of three.
- The others append every frame that arrives to their own file and, once
  it is on disk, write the highest number they hold to the leader on a
  connection of their own (as raft-trio's answers travel on the peer's own
  stream).
- The disk: what arrived while the last write ran goes in one append and
  one ``fdatasync`` (a length and a CRC32 before each body, as an
  append-only log such as etcd's WAL), through the node's own
  :class:`raft_trio.node.disk.DiskWriter`: a single one on the loop while
  the disk is quick, larger batches on its writer thread.
- A send that the connection does not take at once is finished by a task
  of the connection's own; a frame is never written in two tasks at once.

``GET /metrics`` answers two counters in Prometheus' text format, the
bench's fsyncs per write and commit index.

Usage: ``python bench/floor_node.py DATA_FILE PORT [PEER_PORT ...]``: with
peer ports, this member leads and those members follow; without them, it
follows. Runs until killed.
"""

from __future__ import annotations

import os
import struct
import sys
import zlib
from functools import partial
from typing import Any

import trio

from raft_trio.asgi import UpgradeRequest, serve_app
from raft_trio.node.disk import DiskWriter
from raft_trio.server import tune_process

PROTOCOL = "floor"
SWITCHING = f"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {PROTOCOL}\r\n\r\n".encode()
#: A frame's length (of what follows it), then the write's number.
LENGTH = struct.Struct("!I")
NUMBER = struct.Struct("!Q")
#: A record on disk: the body's length and CRC32, then the body.
RECORD = struct.Struct("!II")
BODY = b'{"revision":1}\n'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
RECEIVE_BYTES = 64 * 1024


class Link:
    """One ordered connection to a peer: a send writes at once when nothing
    waits before it, and what the connection does not take goes out, with
    whatever queues meanwhile, from the link's own task."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._fd = stream.socket.fileno()
        self._backlog: list[bytes] = []
        self._wake = trio.Event()

    def send(self, data: bytes) -> None:
        if self._backlog:
            self._backlog.append(data)
            return
        try:
            sent = os.write(self._fd, data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self._backlog.append(data[sent:])
            self._wake.set()

    async def flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._backlog:
                data = b"".join(self._backlog)
                self._backlog.clear()
                await self._stream.send_all(data)


async def connect(port: int, own_port: int) -> Link:
    """A connection to the member on ``port``, switched to the floor's
    protocol, its target naming this member's port."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    head = f"GET /floor/{own_port} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: {PROTOCOL}\r\n\r\n"
    await stream.send_all(head.encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = await stream.receive_some(1024)
        if not chunk:
            raise OSError(f"port {port} closed the connection before switching protocols")
        answer += chunk
    if not answer.startswith(b"HTTP/1.1 101"):
        raise OSError(f"port {port} refused to switch: {answer[:80]!r}")
    return Link(stream)


class LogFile:
    """An append-only file: one append and one ``fdatasync`` a batch."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.fsyncs = 0

    def append(self, bodies: list[bytes]) -> None:
        os.write(self._fd, b"".join(RECORD.pack(len(b), zlib.crc32(b)) + b for b in bodies))
        os.fdatasync(self._fd)
        self.fsyncs += 1


class Member:
    """What the leader and the followers share: the disk, fed in batches."""

    def __init__(self, path: str) -> None:
        self.log = LogFile(path)
        self.disk = DiskWriter("floor-disk")
        self.pending: list[bytes] = []
        self.pending_last = 0
        self.durable = 0
        self._wake = trio.Event()
        self.committed = 0

    def queue(self, number: int, body: bytes) -> None:
        self.pending.append(body)
        self.pending_last = number
        self._wake.set()

    async def write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            batch, last = self.pending, self.pending_last
            self.pending = []
            self.before_write(batch, last)
            if len(batch) == 1:
                await self.disk.short(self.log.append, batch)
            else:
                await self.disk(self.log.append, batch)
            self.durable = last
            self.on_durable()

    def before_write(self, batch: list[bytes], last: int) -> None:
        """What goes out before a batch's own write (the leader's frames)."""

    def on_durable(self) -> None:
        raise NotImplementedError

    def links_up(self) -> int:
        """Connections to peers open."""
        raise NotImplementedError

    async def metrics(self, send: Any) -> None:
        text = (
            f"floor_fsyncs_total {self.log.fsyncs}\nfloor_commit_index {self.committed}\n"
            f"floor_links {self.links_up()}\n"
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(text)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": text})


async def read_body(receive: Any) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def lifespan(receive: Any, send: Any) -> None:
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


class Leader(Member):
    def __init__(self, path: str, peer_ports: list[int]) -> None:
        super().__init__(path)
        self.peer_ports = peer_ports
        self.links: list[Link] = []
        self.next_number = 0
        #: The highest number each follower said it holds on disk.
        self.acks = [0] * len(peer_ports)
        self.waiters: dict[int, trio.Event] = {}

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        if scope["method"] != "PUT":
            await read_body(receive)
            return await self.metrics(send)
        body = await read_body(receive)
        self.next_number = number = self.next_number + 1
        self.queue(number, body)
        done = self.waiters[number] = trio.Event()
        await done.wait()
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": BODY})

    def before_write(self, batch: list[bytes], last: int) -> None:
        """The batch to every follower, during this member's own write (as
        a Raft leader sends its appends before its fsync)."""
        first = last - len(batch) + 1
        frames = b"".join(
            LENGTH.pack(NUMBER.size + len(body)) + NUMBER.pack(number) + body
            for number, body in enumerate(batch, first)
        )
        for link in self.links:
            link.send(frames)

    def on_durable(self) -> None:
        self.advance()

    def links_up(self) -> int:
        return len(self.links)

    def advance(self) -> None:
        """Commit up to what this member and one other hold on disk."""
        quorum = min(self.durable, max(self.acks))
        while self.committed < quorum:
            self.committed += 1
            self.waiters.pop(self.committed).set()

    async def take_acks(self, request: UpgradeRequest, stream: trio.abc.Stream) -> None:
        await stream.send_all(SWITCHING)
        follower = self.peer_ports.index(int(request.target.rsplit("/", 1)[1]))
        buffer = request.rest
        while True:
            whole = len(buffer) - len(buffer) % NUMBER.size
            if whole:
                self.acks[follower] = NUMBER.unpack_from(buffer, whole - NUMBER.size)[0]
                buffer = buffer[whole:]
                self.advance()
            chunk = await stream.receive_some(RECEIVE_BYTES)
            if not chunk:
                return
            buffer += chunk


class Follower(Member):
    def __init__(self, path: str, port: int) -> None:
        super().__init__(path)
        self.port = port
        self.to_leader: Link | None = None

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        await read_body(receive)
        await self.metrics(send)

    def links_up(self) -> int:
        return int(self.to_leader is not None)

    def on_durable(self) -> None:
        self.committed = self.durable
        if self.to_leader is not None:
            self.to_leader.send(NUMBER.pack(self.durable))

    async def take_frames(self, request: UpgradeRequest, stream: trio.abc.Stream) -> None:
        """The leader's frames; answered on a connection to the leader's port."""
        await stream.send_all(SWITCHING)
        leader_port = int(request.target.rsplit("/", 1)[1])
        async with trio.open_nursery() as nursery:
            link = await connect(leader_port, self.port)
            nursery.start_soon(link.flush_forever)
            self.to_leader = link
            buffer = request.rest
            while True:
                offset = 0
                while len(buffer) - offset >= LENGTH.size:
                    (length,) = LENGTH.unpack_from(buffer, offset)
                    end = offset + LENGTH.size + length
                    if end > len(buffer):
                        break
                    (number,) = NUMBER.unpack_from(buffer, offset + LENGTH.size)
                    self.queue(number, buffer[offset + LENGTH.size + NUMBER.size : end])
                    offset = end
                buffer = buffer[offset:]
                chunk = await stream.receive_some(RECEIVE_BYTES)
                if not chunk:
                    nursery.cancel_scope.cancel()
                    return
                buffer += chunk


async def main(path: str, port: int, peer_ports: list[int]) -> None:
    member: Leader | Follower
    async with trio.open_nursery() as nursery:
        if peer_ports:
            member = leader = Leader(path, peer_ports)
            upgrades = {PROTOCOL: leader.take_acks}
        else:
            member = follower = Follower(path, port)
            upgrades = {PROTOCOL: follower.take_frames}
        nursery.start_soon(member.write_forever)
        await nursery.start(
            partial(serve_app, member.app, "127.0.0.1", port, trio.Event(), upgrades=upgrades)
        )
        if peer_ports:
            for peer_port in peer_ports:
                while True:
                    try:
                        link = await connect(peer_port, port)
                        break
                    except OSError:
                        await trio.sleep(0.05)
                leader.links.append(link)
                nursery.start_soon(link.flush_forever)
        print(f"floor member on 127.0.0.1:{port}", flush=True)


if __name__ == "__main__":
    tune_process()  # a node's process-wide settings
    trio.run(main, sys.argv[1], int(sys.argv[2]), [int(p) for p in sys.argv[3:]])
