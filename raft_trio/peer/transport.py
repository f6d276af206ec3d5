"""Peer messages over HTTP: one stream per peer, following the membership.

The ancestor lost leaders because it pinged peers one after another, so one
paused peer delayed everyone. Here each peer has its own outbox and its own
long-lived stream (:class:`.stream.PeerStream`), each write
under its own deadline: a slow or paused peer costs the leader that peer's
bounded outbox and nothing else.

Messages are one-way, as in etcd: answers travel back as messages of their
own on the peer's stream to this node. A lost message is something Raft
tolerates; the core is told (``on_unreachable``) when a stream breaks, so it
stops pipelining to that peer, and (``on_refused``) when a peer's address
refuses connections, so that a follower whose leader is gone campaigns
without waiting out a random timeout. The wire format is :mod:`.wire`; a node
reaches a peer only at the URL the membership gives for it.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections.abc import Callable, Iterable

import httpcore
import httpx
import trio

from ..core import Message
from ..wakeups import SharedWakeups
from .auth import PeerAuthenticator
from .stream import Body, Connection, PeerStream, RequestFunction, StreamMetrics, StreamOpener
from .wire import CLUSTER_HEADER, PeerReport

log = logging.getLogger(__name__)

#: How long bytes sent to a peer may go unacknowledged by its kernel before
#: the connection is given up. A peer whose address vanished (a container
#: restarted with a new one) sends no reset: without this, a stream to its
#: old address took every frame into the socket buffer for the kernel's
#: quarter of an hour of retransmits, and its votes were lost while
#: everyone else had moved on (a podman stop-and-start left three
#: pre-candidates that never heard each other). A paused peer still
#: acknowledges (its kernel runs): that case stays the per-peer deadline's.
UNACKNOWLEDGED_S = 5.0


def socket_options() -> list[tuple[int, int, int]]:
    """The peer connections' socket options: TCP_USER_TIMEOUT where the
    platform has it (Linux)."""
    if not hasattr(socket, "TCP_USER_TIMEOUT"):
        return []
    return [(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(UNACKNOWLEDGED_S * 1000))]


def httpx_request(transport: httpx.AsyncBaseTransport) -> RequestFunction:
    """Posts through an httpx transport (its connection pool) directly:
    ``AsyncClient.post`` spends about 0.2 ms of CPU a request on what peers
    never use (redirects, cookies, auth, event hooks, merging defaults)."""

    async def request(url: str, headers: dict[str, str], body: Body) -> int:
        response = await transport.handle_async_request(
            httpx.Request("POST", url, content=body, headers=headers)
        )
        try:
            # Read to the end even when empty: an unfinished response is
            # not put back into the pool, and every request would connect anew.
            content = await response.aread()
        finally:
            await response.aclose()
        if response.status_code not in (204, 503):
            text = content[:200].decode("utf-8", "replace")
            log.warning("%s answered %s: %s", url, response.status_code, text)
        return response.status_code

    return request


class _UpgradedConnection:
    """A stream's connection after the peer's ``101``, as httpcore hands it
    over, with httpcore's errors as Trio's."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._stream: httpcore.AsyncNetworkStream = response.extensions["network_stream"]
        plain = self._stream.get_extra_info("ssl_object") is None
        self._fd: int | None = self._stream.get_extra_info("socket").fileno() if plain else None

    async def send_all(self, data: bytes) -> None:
        try:
            await self._stream.write(data)
        except httpcore.NetworkError as error:
            raise trio.BrokenResourceError(str(error)) from error

    def send_now(self, data: bytes) -> int:
        """A write(2) on the socket, which Trio keeps non-blocking: what the
        kernel takes at once. Over TLS nothing (the record layer's state
        lives in the TLS stream: only ``send_all`` writes)."""
        if self._fd is None:
            return 0
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            return 0
        except OSError as error:
            raise trio.BrokenResourceError(str(error)) from error

    async def receive_some(self, max_bytes: int) -> bytes:
        try:
            return await self._stream.read(max_bytes)
        except httpcore.NetworkError as error:
            raise trio.BrokenResourceError(str(error)) from error

    async def aclose(self) -> None:
        # Closing the response closes its connection and lets the pool forget it.
        await self._response.aclose()


def httpx_open_stream(transport: httpx.AsyncBaseTransport) -> StreamOpener:
    """Opens streams through an httpx transport: ``GET`` asking to switch
    protocols, then the connection httpcore hands over after a ``101``.
    The transport must be the streams' own: a connection that served an
    ordinary request first would be reused, and a stream opens only as
    its connection's first request."""

    async def open_stream(url: str, headers: dict[str, str]) -> Connection | int:
        response = await transport.handle_async_request(httpx.Request("GET", url, headers=headers))
        if response.status_code == 101:
            return _UpgradedConnection(response)
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        if response.status_code != 503:  # starting or stopping: not worth a line
            text = content[:200].decode("utf-8", "replace")
            log.warning("%s answered %s: %s", url, response.status_code, text)
        return response.status_code

    return open_stream


class Transport:
    """The set of peer streams, following the membership."""

    def __init__(
        self,
        node_id: str,
        nursery: trio.Nursery,
        deadline: float,
        on_unreachable: Callable[[str], None],
        on_snapshot_sent: Callable[[str, bool], None],
        metrics: StreamMetrics | None = None,
        request: RequestFunction | None = None,
        open_stream: StreamOpener | None = None,
        *,
        auth: PeerAuthenticator | None = None,
        verify: ssl.SSLContext | bool = True,
        report: Callable[[], PeerReport] | None = None,
        wakeups: SharedWakeups | None = None,
        on_refused: Callable[[str], None] | None = None,
        cluster_id: str | None = None,
    ) -> None:
        self.node_id = node_id
        self._nursery = nursery
        self._wakeups = wakeups
        self._deadline = deadline
        self._on_unreachable = on_unreachable
        self._on_refused = on_refused
        self._on_snapshot_sent = on_snapshot_sent
        self._metrics = metrics
        self._auth = auth
        self._report = report
        #: Connection pools: one for requests (snapshots), one for streams.
        self._pools: list[httpx.AsyncHTTPTransport] = []

        def pool() -> httpx.AsyncHTTPTransport:
            self._pools.append(
                httpx.AsyncHTTPTransport(
                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
                    socket_options=socket_options(),
                    trust_env=False,
                    verify=verify,
                )
            )
            return self._pools[-1]

        self._request = request if request is not None else httpx_request(pool())
        self._open_stream = open_stream if open_stream is not None else httpx_open_stream(pool())
        if cluster_id is not None:
            self._request, self._open_stream = naming_cluster(cluster_id, self._request, self._open_stream)
        self.senders: dict[str, PeerStream] = {}
        #: Streams to removed members, ending within their deadline: what is
        #: sent to such a member meanwhile (a leader's last heartbeat) still
        #: goes (PeerStream.retire).
        self._retiring: dict[str, PeerStream] = {}

    def set_peers(self, peers: dict[str, str]) -> None:
        """Start streams to new peers (or peers whose URL changed) and stop
        those to peers no longer in the membership."""
        for peer_id, sender in list(self._retiring.items()):
            if peer_id in peers:
                # Added again: what its removed self was last sent (the
                # heartbeat whose commit index is that server's) is not for
                # the member it is now, maybe a new one with an empty disk
                # at the same URL, whose core would find a commit beyond
                # its log.
                sender.cancel_scope.cancel()
                del self._retiring[peer_id]
            elif sender.ended:
                del self._retiring[peer_id]
        for peer_id, sender in list(self.senders.items()):
            wanted = peers.get(peer_id, "").rstrip("/")
            if wanted != sender.url:
                if wanted:
                    sender.cancel_scope.cancel()  # it moved: a new stream follows
                else:
                    sender.retire()  # removed: what it is sent until it ends still goes
                    self._retiring[peer_id] = sender
                del self.senders[peer_id]
        for peer_id, url in peers.items():
            if peer_id == self.node_id or peer_id in self.senders:
                continue
            sender = PeerStream(
                self.node_id,
                peer_id,
                url,
                self._open_stream,
                self._request,
                self._deadline,
                self._on_unreachable,
                self._on_snapshot_sent,
                self._metrics,
                self._auth,
                self._report,
                self._wakeups,
                self._on_refused,
            )
            self.senders[peer_id] = sender
            self._nursery.start_soon(sender.run, name=f"stream-{peer_id}")

    def report_changed(self) -> None:
        """This node's report (its alarms) changed: every stream carries
        the new one next."""
        for sender in self.senders.values():
            sender.report_changed()

    def send(self, messages: Iterable[Message]) -> None:
        """Sends messages made together (a Ready's): each peer's go out as
        one frame, written at once if its stream is idle
        (:meth:`PeerStream.send`)."""
        by_peer: dict[str, list[Message]] = {}
        for message in messages:
            by_peer.setdefault(message.dst, []).append(message)
        for peer_id, addressed in by_peer.items():
            sender = self.senders.get(peer_id) or self._retiring.get(peer_id)
            if sender is not None and not sender.ended:
                sender.send(addressed)

    async def aclose(self) -> None:
        for sender in self.senders.values():
            sender.cancel_scope.cancel()
        with trio.CancelScope(shield=True):
            for pool in self._pools:
                await pool.aclose()


def naming_cluster(
    cluster_id: str, request: RequestFunction, open_stream: StreamOpener
) -> tuple[RequestFunction, StreamOpener]:
    """``request`` and ``open_stream`` with ``X-Raft-Cluster`` added to
    every request's headers (a peer of another cluster refuses it)."""

    async def named_request(url: str, headers: dict[str, str], body: Body) -> int:
        return await request(url, {**headers, CLUSTER_HEADER: cluster_id}, body)

    async def named_open_stream(url: str, headers: dict[str, str]) -> Connection | int:
        return await open_stream(url, {**headers, CLUSTER_HEADER: cluster_id})

    return named_request, named_open_stream
