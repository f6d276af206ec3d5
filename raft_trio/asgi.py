"""Serving an ASGI app with Hypercorn inside a Trio nursery: the node's API,
the waiting page of discovery and the monitor all serve through
:func:`serve_app` (a public module: the monitor may use it)."""

from __future__ import annotations

import errno
import logging
import os
import socket
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from .security import Security


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
        unread = any(
            (name == b"content-length" and value.strip() != b"0") or name == b"transfer-encoding"
            for name, value in scope["headers"]
        )

        async def tracking_receive() -> Any:
            nonlocal unread
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                unread = False
            return message

        async def marking_send(message: Any) -> None:
            if message["type"] == "http.response.start" and unread:
                message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, tracking_receive, marking_send)


#: Closes a connection idle between requests, and one whose request head
#: has not fully arrived (the idle timer runs until the head is parsed): the
#: bound on slowloris clients. Peers keep theirs busy with heartbeats.
KEEP_ALIVE_TIMEOUT_S = 10.0
#: The largest request head (request line and headers) Hypercorn buffers.
MAX_HEAD_BYTES = 64 * 1024


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


def hypercorn_config(
    host: str,
    port: int,
    root_path: str = "",
    tls: Security | None = None,
    listener: socket.socket | None = None,
) -> Config:
    """The Hypercorn settings of every server here; with ``listener`` it
    serves on that socket (a duplicate of it, which Hypercorn closes when
    it stops: the listener itself stays open) instead of binding
    ``host:port``."""
    config = Config()
    if tls is not None and tls.tls_cert:
        # One port serves clients and peers, so both speak HTTPS.
        config.certfile = tls.tls_cert
        config.keyfile = tls.tls_key
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
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``shutdown`` is set (over HTTPS when ``tls`` has a
    certificate) on ``listener`` (see :func:`bind_listener`), else on
    ``host:port``; reports the bound addresses."""
    config = hypercorn_config(host, port, root_path, tls, listener)
    await serve(
        ShieldedSend(CloseWhenBodyUnread(app)),
        config,
        shutdown_trigger=shutdown.wait,
        task_status=task_status,
    )
