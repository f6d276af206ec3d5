"""The in-memory world of the runtime tests on Trio's fake clock: three
real ``RaftNode`` runtimes in one Trio run, an in-memory transport (a
paused peer takes no more of a stream and never answers a request, as with
SIGSTOP; each stream read by the node's own ``StreamReader``, lazily while
a leader is at rest) and an in-memory disk whose fsync can be made slow."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import trio

from raft_trio.core import Entry, HardState, Membership, MemoryStorage, Snapshot, SnapshotMeta
from raft_trio.node import RaftNode, Timing
from raft_trio.peer.inbound import StreamReader
from raft_trio.peer.stream import Body, Connection
from raft_trio.peer.wire import accept_batch, accept_stream
from raft_trio.testing.waiting import wait_for

TIMING = Timing()  # etcd's defaults: heartbeat 100 ms, election 1000-2000 ms
ELECTION_MAX_S = TIMING.election_max_ms / 1000


class MemoryNodeStorage(MemoryStorage):
    """The runtime's storage interface over MemoryStorage: the 'disk' half
    records nothing (there is no crash in these tests); the cache half
    applies the writes."""

    def write_to_disk(
        self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None
    ) -> None:
        pass

    def apply_to_cache(
        self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None
    ) -> None:
        if snapshot is not None:
            self.apply_snapshot(snapshot)
        if hard_state is not None:
            self.set_hard_state(hard_state)
        self.append(entries)

    def needs_snapshot(self, applied: int) -> bool:
        return False

    def compact_on_disk(self, snapshot: Snapshot) -> None:
        pass

    def compact_cache(self, snapshot: Snapshot) -> None:
        self.compact(snapshot)


#: Frames a paused host's connection takes before a write blocks: the
#: kernel's socket buffers of a stopped process (0: none, every write to a
#: paused host blocks at once).
STREAM_BUFFER_FRAMES = 64


class Gate:
    """Open or shut; a task waits until it is open."""

    def __init__(self) -> None:
        self._open = trio.Event()
        self._open.set()

    @property
    def shut(self) -> bool:
        return not self._open.is_set()

    def set_shut(self, shut: bool) -> None:
        if shut and not self.shut:
            self._open = trio.Event()
        elif not shut:
            self._open.set()

    async def wait_open(self) -> None:
        await self._open.wait()


class Host:
    """One node, its disk speed, and whether it is paused: a paused host
    reads nothing (a stream's frames wait in its buffer, then block) and
    answers nothing, until it resumes. A muted host's messages wait (in
    the connection, as in a socket's buffer) until it is unmuted; paused
    and muted, it is SIGSTOPped (:meth:`freeze`)."""

    def __init__(self, node: RaftNode) -> None:
        self.node = node
        self.fsync_seconds = 0.0
        #: How long a compaction's disk work takes (``compact_on_disk``).
        self.compaction_seconds = 0.0
        #: Each Ready's write: the runner it went to (the node's
        #: ``run_disk``, "thread", or ``run_short_write``, "short") and its
        #: number of entries.
        self.ready_writes: list[tuple[str, int]] = []
        self.buffer_frames = STREAM_BUFFER_FRAMES
        #: What it reads, and what it sends.
        self.reading = Gate()
        self.sending = Gate()

    @property
    def paused(self) -> bool:
        return self.reading.shut

    @paused.setter
    def paused(self, paused: bool) -> None:
        self.reading.set_shut(paused)

    @property
    def muted(self) -> bool:
        return self.sending.shut

    @muted.setter
    def muted(self, muted: bool) -> None:
        self.sending.set_shut(muted)

    def freeze(self) -> None:
        """SIGSTOP: it reads nothing, and nothing it sends arrives."""
        self.paused = self.muted = True

    def thaw(self) -> None:
        """SIGCONT."""
        self.paused = self.muted = False


class MemoryConnection:
    """A stream's connection in memory: each write one frame in a buffer
    of ``buffer_frames`` (then writes block), read by its peer's task
    (``reader`` cancels it when the connection closes). The peer never
    ends a stream from its side here."""

    def __init__(self, buffer_frames: int) -> None:
        self._written, self.buffered = trio.open_memory_channel[bytes](buffer_frames)
        self.reader = trio.CancelScope()
        self._closed = trio.Event()

    async def send_all(self, data: bytes) -> None:
        try:
            await self._written.send(data)
        except trio.ClosedResourceError as error:
            raise trio.BrokenResourceError("closed") from error

    def send_now(self, data: bytes) -> int:
        try:
            self._written.send_nowait(data)
        except trio.WouldBlock:
            return 0
        except trio.ClosedResourceError as error:
            raise trio.BrokenResourceError("closed") from error
        return len(data)

    async def receive_some(self, max_bytes: int) -> bytes:
        await self._closed.wait()
        return b""

    async def aclose(self) -> None:
        self._closed.set()
        self._written.close()
        self.reader.cancel()


class Cluster:
    def __init__(self, nursery: trio.Nursery, size: int = 3) -> None:
        self.nursery = nursery
        urls = {f"n{i}": f"mem://n{i}" for i in range(1, size + 1)}
        membership = Membership.of(urls)
        self.hosts: dict[str, Host] = {}
        for seed, (node_id, url) in enumerate(urls.items()):
            storage = MemoryNodeStorage(Snapshot(SnapshotMeta(0, 0, membership)))
            node = RaftNode(
                node_id,
                url,
                storage,
                TIMING,
                seed=seed,
                run_disk=self._disk(node_id, "thread"),
                run_short_write=self._disk(node_id, "short"),
                request=self._request,
                open_stream=self._open_stream,
            )
            self.hosts[node_id] = Host(node)

    def _disk(self, node_id: str, runner: str) -> Callable[..., Any]:
        async def run_disk(function: Callable[..., Any], *args: Any) -> Any:
            host = self.hosts[node_id]
            if function == host.node.storage.write_to_disk:
                _, entries, _ = args
                host.ready_writes.append((runner, len(entries)))
            compacting = function == host.node.storage.compact_on_disk
            await trio.sleep(host.compaction_seconds if compacting else host.fsync_seconds)
            return function(*args)

        return run_disk

    async def _request(self, url: str, headers: dict[str, str], body: Body) -> int:
        """A batch (a snapshot's comes in chunks) through the real checks
        of the wire format."""
        if not isinstance(body, bytes):
            body = b"".join([chunk async for chunk in body])
        target = self._target(url)
        headers = {name.lower(): value for name, value in headers.items()}
        await target.reading.wait_open()
        await self.hosts[headers["x-raft-from"]].sending.wait_open()
        target.node.step(await accept_batch(headers["x-raft-from"], headers, body, None))
        return 204

    async def _open_stream(self, url: str, headers: dict[str, str]) -> Connection:
        """A stream through the real checks of the wire format; its frames
        are stepped as they come, one at a time."""
        target = self._target(url)
        headers = {name.lower(): value for name, value in headers.items()}
        inbox = await accept_stream(headers["x-raft-from"], headers, None, target.node.peer_reported)
        connection = MemoryConnection(target.buffer_frames)
        sender = self.hosts[headers["x-raft-from"]]

        async def receive_some(max_bytes: int) -> bytes:
            try:
                frame = await connection.buffered.receive()
            except trio.EndOfChannel:
                return b""
            await target.reading.wait_open()
            await sender.sending.wait_open()
            return frame

        def read_now(max_bytes: int) -> bytes | None:
            """Every frame buffered now, as one read(2) takes what a socket holds."""
            if target.paused or sender.muted:
                return None
            frames: list[bytes] = []
            while True:
                try:
                    frames.append(connection.buffered.receive_nowait())
                except trio.WouldBlock:
                    break
                except trio.EndOfChannel:
                    if not frames:
                        return b""
                    break
            return b"".join(frames) if frames else None

        reader = StreamReader(
            inbox, receive_some, target.node.step, read_now=read_now, lazy=target.node.lazy_reads
        )

        async def read() -> None:
            with connection.reader:
                await reader.run(b"")

        self.nursery.start_soon(read, name=f"read-{headers['x-raft-from']}-on-{target.node.id}")
        return connection

    def _target(self, url: str) -> Host:
        """The host at ``url``; at an address no host has, the connection
        is refused, as at a real one."""
        host = self.hosts.get(url.removeprefix("mem://").split("/")[0])
        if host is None:
            raise ConnectionRefusedError(f"nothing listens at {url}")
        return host

    async def start(self) -> None:
        for host in self.hosts.values():
            await self.nursery.start(host.node.run)

    def leaders(self) -> list[RaftNode]:
        return [h.node for h in self.hosts.values() if not h.paused and h.node.is_leader]

    async def wait_for_leader(self, within: float) -> RaftNode:
        with trio.fail_after(within):
            await wait_for(lambda: len(self.leaders()) == 1)
        return self.leaders()[0]

    async def leader_gone_quiet(self) -> tuple[RaftNode, RaftNode]:
        """The leader, frozen (SIGSTOP) long enough for its followers to
        take it for quiet (``Timing.quiet_leader_s``), and one of them."""
        leader = await self.wait_for_leader(within=3 * ELECTION_MAX_S)
        self.hosts[leader.id].freeze()
        # Its last heartbeat is quiet_leader_s old at least.
        await trio.sleep(TIMING.quiet_leader_s + TIMING.heartbeat_ms / 1000)
        follower = next(h.node for i, h in self.hosts.items() if i != leader.id)
        return leader, follower

    def terms(self, exclude: str | None = None) -> dict[str, int]:
        return {i: h.node.term for i, h in self.hosts.items() if i != exclude}


class StepLog(trio.abc.Instrument):
    """Every task step while installed: (the task's name, when)."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps.append((task.name, trio.current_time()))

    def counts(self) -> collections.Counter[str]:
        return collections.Counter(name for name, _ in self.steps)


async def log_steps(seconds: float) -> StepLog:
    """Every task step of the next ``seconds``: what wakes a cluster."""
    log = StepLog()
    trio.lowlevel.add_instrument(log)
    try:
        await trio.sleep(seconds)
    finally:
        trio.lowlevel.remove_instrument(log)
    return log
