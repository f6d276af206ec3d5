"""Serving an ASGI app with Hypercorn inside a Trio nursery: the node's API,
the waiting page of discovery and the monitor all serve through
:func:`serve_app` (a public module: the monitor may use it).

With client certificates on (``Security.client_cert_auth`` or
``peer_cert_auth``) the TLS handshake asks every client for a certificate
signed by the cluster's CA (``RAFT_TLS_CA`` only, never the system's
bundle) and :func:`client_certificate` tells the app which one a request's
connection presented: Hypercorn 0.18 puts nothing about it in the ASGI
scope, so its per-connection server records it at the handshake.

A connection whose first request asks to switch protocols (``Connection:
Upgrade``, ``Upgrade: <token>``) to one of the ``upgrades`` given to
:func:`serve_app` is not served by Hypercorn at all: its handler answers
(``101 Switching Protocols``, or a refusal) and then owns the connection's
bytes. Peer streams use this (:mod:`raft_trio.peer.inbound`): each of their
frames is then one socket read and our own parsing on both ends, not an
HTTP/1.1 chunk through httpx/h11 and Hypercorn/h11 and an ASGI queue. Every
other connection is handed to Hypercorn with the bytes read so far.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import h11
import hypercorn.trio.run
import trio
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio import serve
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.utils import parse_socket_addr

from .security import Security


def task_cancelled() -> bool:
    """Whether the current task is cancelled: its next checkpoint raises
    (a path that would skip the checkpoint must take the one that has it)."""
    return trio.current_effective_deadline() == -math.inf


class ShieldedSend:
    """Runs every ASGI ``send`` shielded from cancellation.

    With quart-trio 0.12 and Hypercorn 0.18 an idle keep-alive connection is
    otherwise never closed (neither by ``keep_alive_timeout`` nor at
    shutdown): quart-trio cancels its nursery on disconnect, which cancels
    Hypercorn's idle-timer bookkeeping that runs inside ``send``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def shielded_send(message: Any) -> None:
            with trio.CancelScope(shield=True):
                await send(message)

        await self.app(scope, receive, shielded_send)


def announces_body(scope: Any) -> bool:
    """Whether an HTTP request's headers say a body follows (a
    Content-Length other than 0, or a Transfer-Encoding)."""
    return any(
        (name == b"content-length" and value.strip() != b"0") or name == b"transfer-encoding"
        for name, value in scope["headers"]
    )


def says_close(start: Any) -> bool:
    """Whether an ``http.response.start`` has its ``Connection: close``
    already (a lean route's answer given before the body came whole)."""
    return any(
        name.lower() == b"connection" and value.lower() == b"close"
        for name, value in start.get("headers", ())
    )


class CloseWhenBodyUnread:
    """Adds ``Connection: close`` to an answer given before the request's
    body was read to its end (a 413 from the ``Content-Length``, a refused
    signature or token, a missing header).

    The unread rest of the body stands in the way of the next request, so
    Hypercorn closes such a connection after the answer; without saying so
    a client that reuses it sees it closed under its next request. One
    place for every route, the lean ones included, instead of each early
    answer remembering the header."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        unread = announces_body(scope)

        async def tracking_receive() -> Any:
            nonlocal unread
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                unread = False
            return message

        async def marking_send(message: Any) -> None:
            if message["type"] == "http.response.start" and unread and not says_close(message):
                message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, tracking_receive, marking_send)


#: Closes a connection idle between requests, and one whose request head
#: has not fully arrived (the idle timer runs until the head is parsed): the
#: bound on slowloris clients. Peers keep theirs busy with heartbeats.
KEEP_ALIVE_TIMEOUT_S = 10.0
#: The largest request head (request line and headers) Hypercorn buffers.
MAX_HEAD_BYTES = 64 * 1024


#: The answer's body to a request head over MAX_HEAD_BYTES.
HEAD_TOO_LARGE = b'{"error":"the request head is over %d KiB","code":"bad_request"}\n' % (
    MAX_HEAD_BYTES // 1024
)


class RefuseLargeHeads:
    """Answers ``431`` to a request whose head (request line and headers)
    is over ``MAX_HEAD_BYTES``, and closes its connection.

    Hypercorn gives h11 its head limit, but h11 measures only a head it
    holds incomplete, and Hypercorn reads 64 KiB at a time: a head that
    was whole by the end of its second read (up to about 128 KiB) was
    served. The sum of a few lengths for every request makes the limit
    the one the docs state."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            for name, value in scope["headers"]:
                size += len(name) + len(value) + 4
            if size > MAX_HEAD_BYTES:
                body = HEAD_TOO_LARGE
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ]
                await send({"type": "http.response.start", "status": 431, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


#: Connections the kernel queues for a listener before it accepts them.
LISTEN_BACKLOG = 100


class CannotServe(Exception):
    """The address to serve on cannot be bound (in use, not this host's,
    a name that does not resolve): the one line a process ends with."""


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening: made first, so
    that a busy port fails a process before it has done anything else (a
    node creates no data directory for a port it cannot serve on), and
    kept for the process's life, so that the port stays its own between
    servers (a node's waiting page, then its API). :class:`CannotServe`
    if it cannot be bound."""
    sock: socket.socket | None = None
    try:
        # As Hypercorn chooses: a host name binds its IPv4 address.
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as error:
        if sock is not None:
            sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reason = error.strerror or str(error)
        hint = " (is another process serving there?)" if error.errno == errno.EADDRINUSE else ""
        raise CannotServe(f"cannot serve on {where}: {reason}{hint}") from None
    return sock


#: Verified client certificates (``ssl.SSLSocket.getpeercert()``) of the
#: open TLS connections of this process, by (client, server) address.
_certificates: dict[tuple[Any, Any], dict[str, Any]] = {}


def client_certificate(scope: Any) -> dict[str, Any] | None:
    """The certificate the request's connection presented, verified
    against the cluster's CA; None without one (or without TLS)."""
    client, server = scope.get("client"), scope.get("server")
    if client is None or server is None:
        return None
    return _certificates.get((tuple(client), tuple(server)))


def certificate_name(certificate: dict[str, Any]) -> str | None:
    """The certificate subject's common name (CN), if it has one."""
    for rdn in certificate.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


@dataclass(frozen=True)
class UpgradeRequest:
    """The request that opened a connection and asked to switch to a
    protocol of ``serve_app``'s ``upgrades``."""

    method: str
    #: The request target as sent (path and query), root path included.
    target: str
    #: Header names in lower case (the last of repeats).
    headers: dict[str, str]
    #: The client's (host, port).
    client: tuple[str, int]
    #: The client certificate the TLS handshake verified, if any.
    certificate: dict[str, Any] | None
    #: Bytes the client sent after the request's head.
    rest: bytes


#: Serves one upgraded connection: answers the request (``101 Switching
#: Protocols``, or a refusal) and uses the connection until it returns;
#: the connection is closed after.
UpgradeHandler = Callable[[UpgradeRequest, trio.abc.Stream], Awaitable[None]]


def _upgrade_token(head: bytes) -> str | None:
    """The protocol a request head asks to switch to, cheaply (no full
    parse: most connections ask for none)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"upgrade":
            return value.strip().decode("latin-1").lower()
    return None


def _parse_upgrade(head: bytes) -> tuple[h11.Request, bytes] | None:
    """The request of ``head`` (which holds all of it, and maybe bytes
    after it) if it is a valid HTTP/1.1 request without a body that asks
    to switch protocols, and the bytes after it."""
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    connection.receive_data(head)
    try:
        request = connection.next_event()
        end = connection.next_event()
        # h11 pauses after a request that proposed a switch (and only then).
        paused = connection.next_event()
    except h11.RemoteProtocolError:
        return None
    if not isinstance(request, h11.Request) or not isinstance(end, h11.EndOfMessage):
        return None
    if paused is not h11.PAUSED:
        return None  # no "Connection: upgrade", or a body
    rest, _ = connection.trailing_data
    return request, bytes(rest)


#: In a head: the header that says a body of known length follows.
_HAS_LENGTH = b"\r\ncontent-length:"


class _IdleTimer:
    """The idle timer of one connection, in place of Hypercorn's
    (``TCPServer.idle_task``, same two calls): the connection is closed once
    it was idle (between requests, or before its first) for the keep-alive
    timeout, or at once if the server stops while it is idle. Hypercorn
    starts a task for the timer after every answer and cancels it at the
    next request: with the Date header it formatted for every answer, a
    quarter to a third of what a node spent on ``GET /healthz``
    (``python -m bench.request_cost --kind healthz``: 0.97-1.04 -> 0.65-0.75
    ms). Here one task, for the connection's life, looks again only when a
    deadline passes."""

    def __init__(self, server: _RecordingTCPServer) -> None:
        self._server = server
        #: When the connection became idle (None: a request is under way).
        self._idle_since: float | None = None
        self._became_idle = trio.Event()
        self._scope: trio.CancelScope | None = None

    async def restart(self, task_group: Any, action: Any) -> None:
        """The connection is idle from now (``action``, Hypercorn's own
        timer, is not used)."""
        self._idle_since = trio.current_time()
        if self._scope is None:
            self._scope = trio.CancelScope()
            task_group.spawn(self._watch, self._scope)
        self._became_idle.set()

    async def stop(self) -> None:
        """A request is under way."""
        self._idle_since = None

    def cancel(self) -> None:
        """The connection ended."""
        if self._scope is not None:
            self._scope.cancel()

    async def _watch(self, scope: trio.CancelScope) -> None:
        terminated = self._server.context.terminated
        timeout = self._server.config.keep_alive_timeout
        with scope:
            while True:
                since = self._idle_since
                if since is None:
                    await self._became_idle.wait()
                    self._became_idle = trio.Event()
                    continue
                with trio.move_on_at(since + timeout):
                    await terminated.wait()
                if self._idle_since == since or (self._idle_since is not None and terminated.is_set()):
                    break  # idle all along, or the server stops while it is idle
        if not scope.cancel_called:
            with trio.CancelScope(shield=True):
                await self._server._initiate_server_close()


class _RecordingTCPServer(TCPServer):
    """Hypercorn's connection server, recording the client's certificate
    once the handshake is done (trio's ``do_handshake`` may be called again
    by the server itself: it returns at once then), handing a connection
    that asks for one of the config's upgrades to its handler, and timing
    idleness with :class:`_IdleTimer`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.idle_task = _IdleTimer(self)  # type: ignore[assignment]
        #: The head of an answer with a Content-Length, not yet written.
        self._held = b""

    async def run(self) -> None:
        stream = self.stream
        key = None
        certificate: dict[str, Any] | None = None
        if isinstance(stream, trio.SSLStream):
            try:
                with trio.fail_after(self.config.ssl_handshake_timeout):
                    await stream.do_handshake()
                certificate = stream.getpeercert() or None
                sock = stream.transport_stream.socket
                if certificate:
                    key = (
                        parse_socket_addr(sock.family, sock.getpeername()),
                        parse_socket_addr(sock.family, sock.getsockname()),
                    )
                    _certificates[key] = certificate
            except (trio.BrokenResourceError, trio.TooSlowError, OSError):
                pass  # the server's own handshake call ends the connection
        self._head = b""
        try:
            upgrades: Mapping[str, UpgradeHandler] = getattr(self.config, "upgrades", {})
            if upgrades and not await self._upgraded(upgrades, certificate):
                return
            await super().run()
        finally:
            if key is not None:
                _certificates.pop(key, None)

    async def _upgraded(
        self, upgrades: Mapping[str, UpgradeHandler], certificate: dict[str, Any] | None
    ) -> bool:
        """Reads the first request's head; serves the connection with an
        upgrade's handler if it asks for one (False: done with it), else
        keeps what was read for Hypercorn (True)."""
        head = await self._read_head()
        if head is None:
            await trio.aclose_forcefully(self.stream)
            return False
        self._head = head
        token = _upgrade_token(head[: head.find(b"\r\n\r\n")])
        handler = upgrades.get(token) if token is not None else None
        parsed = _parse_upgrade(head) if handler is not None else None
        if handler is None or parsed is None:
            return True
        request, rest = parsed
        stream = self.stream
        try:
            sock = stream.transport_stream.socket if isinstance(stream, trio.SSLStream) else stream.socket
            client = parse_socket_addr(sock.family, sock.getpeername())
            headers = {
                name.decode("latin-1").lower(): value.decode("latin-1") for name, value in request.headers
            }
            upgrade = UpgradeRequest(
                request.method.decode("ascii"),
                request.target.decode("latin-1"),
                headers,
                client or ("unknown", 0),
                certificate,
                rest,
            )
            await handler(upgrade, stream)
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the client went away (also while the handler's nursery ran)
        finally:
            await trio.aclose_forcefully(stream)
        return False

    async def _read_head(self) -> bytes | None:
        """The bytes of the connection up to the end of its first request's
        head (maybe with more after it); also all of them once they exceed
        Hypercorn's head limit or the client closed (Hypercorn answers
        those). None when the head is not complete within the keep-alive
        timeout (Hypercorn's bound on a slow head), the connection broke,
        or the server stops meanwhile: the connection is closed then, as
        Hypercorn would."""
        buffer = bytearray()
        complete = False
        with trio.move_on_after(self.config.keep_alive_timeout):
            async with trio.open_nursery() as nursery:

                async def stop_when_terminated() -> None:
                    await self.context.terminated.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(stop_when_terminated)
                try:
                    while b"\r\n\r\n" not in buffer and len(buffer) <= MAX_HEAD_BYTES:
                        data = await self.stream.receive_some(MAX_RECV)
                        buffer += data
                        if not data:
                            break
                    complete = True
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
                nursery.cancel_scope.cancel()
        return bytes(buffer) if complete else None

    async def protocol_send(self, event: Event) -> None:
        """Hypercorn's, with an answer of known length in one write:
        Hypercorn wrote its head, its body and its end (no bytes) each
        through the send lock, a shielded scope and a socket call. The head
        of an answer with a Content-Length waits for what comes next on the
        connection (its body, or the end of a body-less answer to HEAD);
        every other head (a stream's, a 100 Continue) goes at once. What
        the kernel takes whole goes in one write(2) (:meth:`_write_now`),
        and a stream's chunks pass the scheduler once each."""
        if not isinstance(event, RawData):
            if isinstance(event, Closed):
                self._held = b""  # the answer was cut short: nothing to complete
            await super().protocol_send(event)
            return
        data = event.data
        completes_answer = bool(self._held)
        if completes_answer:
            data, self._held = self._held + data, b""
        elif data.startswith(b"HTTP/1.1 ") and _HAS_LENGTH in data[: data.find(b"\r\n\r\n")].lower():
            self._held = data
            return
        if not data:
            return
        if task_cancelled():
            # The task is cancelled: the node is stopping (a fatal error,
            # say) and Hypercorn, ending the request, sends the 500 it
            # makes of an app that never answered. Its own path raises the
            # cancellation at its first checkpoint and writes nothing (the
            # client sees the connection end, an outcome it must expect);
            # a write(2) without a checkpoint would send that 500.
            await super().protocol_send(RawData(data))
            return
        rest = self._write_now(data)
        if rest:
            await super().protocol_send(RawData(rest))
        elif not completes_answer:
            # A chunk of a streamed answer (a watch catching up, say), or
            # a stream's head. Its app may send the next chunk at once, and
            # with every chunk taken whole it would hold the loop, and the
            # node's heartbeats, until its stream ends. Hypercorn's path
            # passed the scheduler here; this one does too, once, without
            # a cancellation: the chunk is sent. The write that completes a
            # held head (an answer of known length, most often all of it)
            # needs no turn: its request's task ends after it.
            await trio.lowlevel.cancel_shielded_checkpoint()

    def _write_now(self, data: bytes) -> bytes:
        """What is left of ``data`` after one write(2) on a plain TCP
        connection's socket, which Trio keeps non-blocking; all of it over
        TLS (the record layer's state lives in the TLS stream), while
        another send holds the lock (it goes first), or once the socket is
        closed (fileno -1) or broken (Hypercorn's path then finds that
        out). Hypercorn's path takes the send lock and then the socket's
        write, each with a trip through the scheduler, under a shielded
        cancel scope; a write(2) the kernel takes whole needs none of them,
        and it cannot be cancelled halfway, which is what the shield was
        for."""
        stream: trio.abc.Stream = self.stream  # Hypercorn's annotation names the TLS stream only
        if not isinstance(stream, trio.SocketStream) or self.send_lock.locked():
            return data
        fd = stream.socket.fileno()
        if fd < 0:
            return data
        try:
            written = os.write(fd, data)
        except OSError:  # BlockingIOError among them
            return data
        return data[written:]

    async def _read_data(self) -> None:
        try:
            if self._head:
                head, self._head = self._head, b""
                await self.protocol.handle(RawData(head))
            if self.config.read_timeout is None:
                await self._read_without_timeout()
            else:
                await super()._read_data()
        finally:
            self.idle_task.cancel()  # type: ignore[attr-defined]

    async def _read_without_timeout(self) -> None:
        """Hypercorn's read loop less its ``fail_after`` around each read,
        which with no read timeout set (ours: idleness is the idle timer's)
        made a cancel scope of infinite deadline for every read: 2 % of a
        leader's Python at one client."""
        while True:
            try:
                data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            await self.protocol.handle(RawData(bytes(data)))
            if not data:
                break
        await self.protocol.handle(Closed())

    async def _close(self) -> None:
        """Hypercorn 0.18 sends the connection's EOF outside its send lock:
        an answer sent meanwhile (a peer stream told "the node is stopping"
        while the other side hangs up) then meets ``BusyResourceError`` in
        ``send_all``, which Hypercorn does not catch, and the node logged a
        traceback as it stopped. Under the lock the two take turns; a send
        still holding it (a peer that reads nothing) is not waited for:
        closing the stream ends that send, which Hypercorn takes as closed."""
        if self.send_lock.locked():
            await self.stream.aclose()
            return
        async with self.send_lock:
            await super()._close()


hypercorn.trio.run.TCPServer = _RecordingTCPServer  # type: ignore[attr-defined]


class _ClusterCAConfig(Config):
    """Verifies client certificates against ``ca_certs`` alone: Hypercorn's
    context would also trust the system's CAs, and with them any public
    CA's certificate would name a user. Carries the protocols connections
    may switch to (read by :class:`_RecordingTCPServer`)."""

    upgrades: Mapping[str, UpgradeHandler]

    def __init__(self) -> None:
        super().__init__()
        self._response_headers: dict[str, tuple[int, list[tuple[bytes, bytes]]]] = {}

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        """Hypercorn's headers of every answer (Date, Server), made once a
        second: it formatted the date for every answer."""
        now = int(time.time())
        cached = self._response_headers.get(protocol)
        if cached is None or cached[0] != now:
            cached = (now, super().response_headers(protocol))
            self._response_headers[protocol] = cached
        return list(cached[1])

    def create_ssl_context(self) -> ssl.SSLContext | None:
        if self.ca_certs is None or self.verify_mode is None:
            return super().create_ssl_context()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.set_ciphers(self.ciphers)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.options |= ssl.OP_NO_COMPRESSION
        context.set_alpn_protocols(self.alpn_protocols)
        assert self.certfile is not None and self.keyfile is not None
        context.load_cert_chain(certfile=self.certfile, keyfile=self.keyfile)
        context.load_verify_locations(self.ca_certs)
        context.verify_mode = self.verify_mode
        return context


def hypercorn_config(
    host: str,
    port: int,
    root_path: str = "",
    tls: Security | None = None,
    listener: socket.socket | None = None,
    upgrades: Mapping[str, UpgradeHandler] | None = None,
) -> Config:
    """The Hypercorn settings of every server here; with ``listener`` it
    serves on that socket (a duplicate of it, which Hypercorn closes when
    it stops: the listener itself stays open) instead of binding
    ``host:port``; ``upgrades``: handlers of connections that switch
    protocols, by the protocol's token (lower case)."""
    config = _ClusterCAConfig()
    config.upgrades = dict(upgrades or {})
    if tls is not None and tls.tls_cert:
        # One port serves clients and peers, so both speak HTTPS.
        config.certfile = tls.tls_cert
        config.keyfile = tls.tls_key
        if tls.client_cert_auth or tls.peer_cert_auth:
            # Optional in the handshake: a client may log in with a token
            # instead, and the app decides what a request without one may do.
            config.ca_certs = tls.tls_ca
            config.verify_mode = ssl.CERT_OPTIONAL
    config.bind = [f"fd://{os.dup(listener.fileno())}" if listener is not None else f"{host}:{port}"]
    config.root_path = root_path
    config.graceful_timeout = 1.0
    config.keep_alive_timeout = KEEP_ALIVE_TIMEOUT_S
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    # Limits that bound hostile clients (stated in the README).
    config.h11_max_incomplete_size = MAX_HEAD_BYTES
    config.max_app_queue_size = 10
    config.keep_alive_max_requests = 1_000_000
    # read_timeout stays None: it bounds every read, also while a client
    # listens to /api/events and sends nothing, and would cut that stream.
    return config


async def serve_app(
    app: Any,
    host: str,
    port: int,
    shutdown: trio.Event,
    root_path: str = "",
    *,
    tls: Security | None = None,
    listener: socket.socket | None = None,
    upgrades: Mapping[str, UpgradeHandler] | None = None,
    front: Callable[[Any], Any] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``shutdown`` is set (over HTTPS when ``tls`` has a
    certificate) on ``listener`` (see :func:`bind_listener`), else on
    ``host:port``; reports the bound addresses. A connection that asks to
    switch to a protocol of ``upgrades`` goes to its handler. ``front``
    wraps the app as served, outermost: a shortcut that serves some
    requests itself and hands the rest to the app it wraps."""
    config = hypercorn_config(host, port, root_path, tls, listener, upgrades)
    served = ShieldedSend(CloseWhenBodyUnread(app))
    await serve(
        RefuseLargeHeads(served if front is None else front(served)),
        config,
        shutdown_trigger=shutdown.wait,
        task_status=task_status,
    )
