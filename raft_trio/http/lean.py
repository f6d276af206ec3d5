"""Lean ASGI routes in front of the Quart app for the hot paths.

Quart's per-request machinery (request and response objects, contexts,
signals, the before/after hooks, quart-schema's validation wrappers) cost
about 1 ms of CPU a request on these machines, more than everything Raft
does for a write. :class:`LeanRoutes` wraps ``app.asgi_app`` and serves
with plain ASGI:

- the peer endpoint ``POST /raft/messages``, one batch (snapshots). The
  Quart route for it stays (hidden from the docs) for
  ``app.test_client()``; both go through :class:`PeerReceiver`, that is the
  checks of :mod:`raft_trio.peer.wire`. A peer's long-lived stream never
  reaches ASGI: its connection switches protocols before Hypercorn parses
  it (:meth:`PeerReceiver.serve_stream`); ``/raft/stream`` reached here
  (a request that did not ask to switch, or not first on its connection)
  is answered 400 saying how to open one.
- the plain cases of ``PUT`` and ``GET {prefix}/kv/{key}`` on the leader:
  a key of plain characters, a small JSON body that decodes to the model,
  no query string. Everything else (a follower's request, a body that is
  not plain JSON, an odd key) goes to the Quart handlers, which stay what
  ``/openapi.json`` documents. A request is handed over only before it had
  any effect, with its body replayed. What a request does and how its
  outcome is answered is :mod:`raft_trio.http.answers`, shared by both
  paths: the same request gets the same bytes on either.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

import msgspec
import trio

from .. import schema
from ..asgi import UpgradeRequest, certificate_name, task_cancelled
from ..kv import MAX_VALUE_BYTES
from ..node import RaftNode
from ..node import metrics as node_metrics
from ..peer.auth import Pending, RefusalLog
from ..peer.inbound import SWITCHING_PROTOCOLS, read_stream, refusal, tell_end
from ..peer.wire import (
    FROM_HEADER,
    MESSAGES_PATH,
    STREAM_PATH,
    STREAM_PROTOCOL,
    PeerRequestError,
    StreamInbox,
    accept_batch,
    accept_stream,
    begin_batch,
    check_peer_head,
)
from . import answers
from ._principal import caller, still_allowed
from .answers import REVISION_HEADER, Answer, Target, route_path, without_root

#: Peer batches: up to 256 messages of up to 1 MiB of entries, or a snapshot.
MAX_PEER_BODY_BYTES = 1 << 30


def request_headers(scope: dict[str, Any]) -> dict[str, str]:
    """The request's headers, names in lower case, the first of repeats:
    the one a Quart handler's ``request.headers.get`` gives (Werkzeug's
    ``Headers.get``), so that a request repeating a header (two
    ``Idempotency-Key``, ``Content-Type`` or ``Authorization``) is read
    alike on either path."""
    headers: dict[str, str] = {}
    for name, value in reversed(scope["headers"]):
        headers[name.decode("latin-1").lower()] = value.decode("latin-1")
    return headers


async def send_json_bytes(
    send: Any, status: int, data: bytes, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if extra_headers:
        headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def send_answer(send: Any, answer: Answer, extra: list[tuple[str, str]] | None = None) -> None:
    """An :class:`~raft_trio.http.answers.Answer` over plain ASGI, with the
    headers Quart's ``Response`` would send for it."""
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers]
    for name, value in extra or ():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send_json_bytes(send, answer.status, answer.encode(), headers)


class Body(NamedTuple):
    """A request body read whole."""

    data: bytes
    #: The body came whole in a message that announced more: the request's
    #: last message (empty, ``more_body`` false) is queued still, unread.
    end_unread: bool


def _hypercorns_channel(receive: Any) -> trio.MemoryReceiveChannel[Any] | None:
    """The memory channel whose ``receive`` Hypercorn's Trio worker hands
    the app, or None for any other ``receive`` (a layer's closure)."""
    channel = getattr(receive, "__self__", None)
    return channel if isinstance(channel, trio.MemoryReceiveChannel) else None


def _queued(channel: trio.MemoryReceiveChannel[Any]) -> Any | None:
    """The next ASGI message if it is queued already, taken without the
    turn of the event loop that ``await receive()`` passes even then (a
    memory channel's receive checkpoints); None otherwise, and in a
    cancelled task (whose ``receive()`` raises). At one client a write's
    two body messages were two of the leader's nine loop turns, each
    before its AppendEntries could leave."""
    if task_cancelled():
        return None
    try:
        return channel.receive_nowait()
    except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
        return None  # await receive() says what it is


class BodyTimedOut(Exception):
    """The body did not come whole within its timeout."""


async def read_body(
    receive: Any, limit: int, length: int | None = None, patience_s: float = math.inf
) -> Body | None:
    """The whole request body, or None if it exceeds ``limit`` bytes or
    the client went away; :class:`BodyTimedOut` if it did not come whole
    within ``patience_s`` seconds (Quart's ``BODY_TIMEOUT``: a client that
    stops sending would hold the request and its connection for ever).
    Not a caller's cancel scope: the clock starts at the first wait, so a
    body already queued, the common case, is read without one.

    Given its ``length`` (a Content-Length that frames the body: no
    Transfer-Encoding) and Hypercorn's own ``receive``, the body ends
    when that many bytes came, and the empty last message Hypercorn sends
    after them is left unread (:func:`replay` passes over it). Through any
    other ``receive`` the body is read to that last message: a layer
    between (:class:`raft_trio.asgi.CloseWhenBodyUnread`) must see it."""
    channel = _hypercorns_channel(receive)
    if channel is None:
        length = None
    chunks: list[bytes] = []
    size = 0
    deadline: float | None = None
    while True:
        message = None if channel is None else _queued(channel)
        if message is None:
            if deadline is None:
                deadline = trio.current_time() + patience_s
            with trio.move_on_at(deadline):
                message = await receive()
            if message is None:
                raise BodyTimedOut
        if message["type"] != "http.request":
            return None  # http.disconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
        if not more or size == length:
            return Body(chunks[0] if len(chunks) == 1 else b"".join(chunks), more)


#: Hands a request over to the next app, given the ``receive`` to read its
#: body from (the original, or one replaying what was read of it).
HandOver = Callable[[Any], Awaitable[None]]

#: Keys served here; any other key (a slash, spaces, non-ASCII, over the
#: size limit) goes to Quart.
PLAIN_KEY = re.compile(r"[A-Za-z0-9._:~-]{1,1024}")
#: The header of a write's retry token, as :func:`request_headers` names it.
IDEMPOTENCY_KEY = schema.IDEMPOTENCY_HEADER.lower()
#: Larger PUT bodies go to Quart (and its 413 for oversized ones).
MAX_LEAN_BODY_BYTES = 64 * 1024


_put_decoder = msgspec.json.Decoder(schema.PutRequest)


def _plain_value(data: schema.PutRequest) -> bool:
    """Valid UTF-8 (no lone surrogate from a JSON escape) within the size
    limit; anything else is Quart's to answer."""
    try:
        return len(data.value.encode("utf-8")) <= MAX_VALUE_BYTES and (
            not isinstance(data.expect, str) or len(data.expect.encode("utf-8")) <= MAX_VALUE_BYTES
        )
    except UnicodeEncodeError:
        return False


def _utf8(data: bytes) -> bool:
    """Whether a body is UTF-8, as Quart decodes it before it parses it:
    msgspec looks at the bytes of no field the model lacks, so a body
    with invalid UTF-8 there would be written here and refused there."""
    if data.isascii():
        return True
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _seconds(timeout: float | None) -> float:
    """A timeout as Trio takes it (Quart's None: no deadline)."""
    return math.inf if timeout is None else timeout


def replay(body: Body, receive: Any) -> Any:
    """A ``receive`` that hands the already-read ``body`` over again."""
    given = False

    async def again() -> Any:
        nonlocal given
        if not given:
            given = True
            if body.end_unread:
                # The body's end, read now; should more come (it cannot
                # under the Content-Length that framed it), it goes along.
                end = await receive()
                if end["type"] != "http.request":
                    return end  # the client went away meanwhile
                return {**end, "body": body.data + end.get("body", b"")}
            return {"type": "http.request", "body": body.data, "more_body": False}
        return await receive()

    return again


def peer_certificate_refusal(certificate: dict[str, Any] | None, headers: Mapping[str, str]) -> str | None:
    """Why a peer request (or stream) lacks the certificate mutual TLS
    between peers asks for: one signed by the cluster's CA whose CN is the
    sender's id (``headers``: names in lower case). None: it has it."""
    if certificate is None:
        return "peer requests need a client certificate signed by the cluster's CA (mutual TLS)"
    sender = headers.get(FROM_HEADER.lower())
    name = certificate_name(certificate)
    if sender is None or name != sender:
        return f"the peer certificate's CN {name!r} is not the sender {sender!r}"
    return None


class PeerReceiver:
    """The receiving side of ``POST /raft/messages`` (lean and Quart route)
    and of peer streams: the checks of the wire format, and refused
    signatures and frames logged and counted."""

    def __init__(self, node: RaftNode, refusals: RefusalLog) -> None:
        self.node = node
        self.refusals = refusals

    def head(self, headers: dict[str, str]) -> str:
        return check_peer_head(headers, self.node.peer_auth, self.node.cluster_id)

    def batch_head(self, headers: dict[str, str]) -> tuple[str, Pending | None]:
        """A batch's head checked, and its nonce reserved (see
        :func:`begin_batch`): release it with :meth:`abandon` once done."""
        sender = self.head(headers)
        return sender, begin_batch(sender, headers, self.node.peer_auth)

    def abandon(self, pending: Pending | None) -> None:
        if pending is not None and self.node.peer_auth is not None:
            self.node.peer_auth.abandon(pending)

    async def accept(
        self, sender: str, headers: dict[str, str], body: bytes, pending: Pending | None
    ) -> None:
        self.node.step(await accept_batch(sender, headers, body, self.node.peer_auth, pending))

    async def open_stream(self, headers: dict[str, str]) -> StreamInbox:
        return await accept_stream(self.head(headers), headers, self.node.peer_auth, self.node.peer_reported)

    def refused(self, exc: PeerRequestError, remote: str) -> None:
        if exc.status == 401:
            node_metrics.PEER_REQUESTS_REFUSED.inc()
            self.refusals.refused("a peer request", f"{remote} claiming to be {exc.sender!r}", exc.message)
        elif exc.status == 412:  # another cluster's node: worth a (rate-limited) line
            self.refusals.refused("a peer request", f"{remote}", exc.message)

    async def serve_stream(
        self, request: UpgradeRequest, connection: trio.abc.Stream, root_path: str = ""
    ) -> None:
        """Serves a connection that asked to switch to a peer stream
        (:mod:`raft_trio.asgi` hands it over): the checks of its opening
        (answered 101, or refused with an HTTP answer), then its frames
        until it ends, then why it ended (:mod:`raft_trio.peer.inbound`)."""
        path = without_root(request.target.partition("?")[0], root_path)
        try:
            if request.method != "GET" or path != STREAM_PATH:
                raise PeerRequestError(404, f"a peer stream opens with GET {STREAM_PATH}")
            if self.node.security.peer_cert_auth:
                reason = peer_certificate_refusal(request.certificate, request.headers)
                if reason is not None:
                    raise PeerRequestError(401, reason, request.headers.get(FROM_HEADER.lower()))
            inbox = await self.open_stream(request.headers)
        except PeerRequestError as exc:
            self.refused(exc, request.client[0])
            await connection.send_all(refusal(exc.status, exc.message))
            return
        await connection.send_all(SWITCHING_PROTOCOLS)
        ended = await read_stream(
            inbox,
            connection,
            request.rest,
            self.node.step,
            self.node.closing,
            self.node.lazy_reads,
            self.node.wakeups.sleep,
        )
        if isinstance(ended, PeerRequestError):
            self.refused(ended, request.client[0])
        await tell_end(connection, ended)


class LeanRoutes:
    def __init__(
        self,
        app: Any,
        peers: PeerReceiver,
        too_large_message: str,
        api_prefix: str,
        dumps: Callable[..., str],
        body_timeout: Callable[[], float | None],
        timed_out: Answer,
    ) -> None:
        self.app = app
        self.peers = peers
        self.node = peers.node
        self.too_large_message = too_large_message
        self.kv_prefix = api_prefix.rstrip("/") + "/kv/"
        self.dumps = dumps
        #: Quart's ``BODY_TIMEOUT`` (None: none), and its answer when a
        #: body did not come whole within it (``http_error`` of the app).
        self.body_timeout = body_timeout
        self.timed_out = timed_out

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            path = route_path(scope)
            if path == STREAM_PATH:
                message = (
                    f"a peer stream opens with GET {STREAM_PATH}, Connection: Upgrade and "
                    f"Upgrade: {STREAM_PROTOCOL}, as the first request of its connection"
                )
                await self.answer(send, 400, {"error": message})
                return
            if method == "POST" and path == MESSAGES_PATH:
                await self.peer_messages(scope, receive, send)
                return
            key = self.plain_key(scope)
            if key is not None:
                await self.serve_key(key, scope, receive, send, lambda given: self.app(scope, given, send))
                return
        await self.app(scope, receive, send)

    def plain_key(self, scope: Any) -> str | None:
        """The key of a PUT or GET of a plain key while this node leads:
        the requests served here (None: Quart's)."""
        if scope["method"] not in ("PUT", "GET"):
            return None
        path = route_path(scope)
        if not path.startswith(self.kv_prefix) or self.node.leader_id != self.node.id:
            return None
        key = path[len(self.kv_prefix) :]
        return key if PLAIN_KEY.fullmatch(key) else None

    async def serve_key(
        self,
        key: str,
        scope: Any,
        receive: Any,
        send: Any,
        hand_over: HandOver,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Serves a request :meth:`plain_key` named, or hands it over (with
        what was read of it replayed) before it had any effect."""
        if scope["method"] == "PUT":
            if headers is None:
                headers = request_headers(scope)
            await self.put_key(key, scope, receive, send, hand_over, headers)
        else:
            await self.get_key(key, scope, receive, send, hand_over)

    async def answer(self, send: Any, status: int, body: Any) -> None:
        """A JSON answer exactly as Quart's JSON provider writes it."""
        await send_json_bytes(send, status, (self.dumps(body, separators=(",", ":")) + "\n").encode())

    async def send_kv_answer(self, send: Any, answer: Answer) -> None:
        """An answer about a key, with the revision header Quart adds.
        Served from :mod:`raft_trio.http.front` it needs no shield (the
        whole app's answers have one, :class:`raft_trio.asgi.ShieldedSend`,
        against quart-trio cancelling its nursery on a disconnect): nothing
        above a lean route cancels it, Hypercorn tells a disconnect through
        ``receive``, and only a server's hard stop could cut such an answer
        short, on a connection that closes anyway. The shield cost the
        leader 2-7 % of its CPU a write at 64 clients."""
        await send_answer(send, answer, [(REVISION_HEADER, str(self.node.kv.revision))])

    async def put_key(
        self, key: str, scope: Any, receive: Any, send: Any, hand_over: HandOver, headers: dict[str, str]
    ) -> None:
        length = headers.get("content-length")
        if (
            # The first of repeats, as Quart reads it (a browser's request
            # not labelled JSON by it gets Quart's 415).
            headers.get("content-type") != "application/json"
            or length is None
            or not (length.isascii() and length.isdigit())
            or int(length) > MAX_LEAN_BODY_BYTES
            # A Transfer-Encoding frames the body whatever Content-Length
            # says: its size is unknown, up to Quart's limit, not ours.
            or "transfer-encoding" in headers
        ):
            await hand_over(receive)
            return
        # Timed out as Quart times a body out: a client that stops sending
        # it would otherwise hold the request and its connection for ever.
        try:
            body = await read_body(receive, MAX_LEAN_BODY_BYTES, int(length), _seconds(self.body_timeout()))
        except BodyTimedOut:
            # Answered before the body's end: the connection cannot serve
            # another request, and says so.
            extra = [(REVISION_HEADER, str(self.node.kv.revision)), ("Connection", "close")]
            await send_answer(send, self.timed_out, extra)
            return
        if body is None:
            return  # the client went away
        try:
            data = _put_decoder.decode(body.data) if _utf8(body.data) else None
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
            data = None  # Quart says what is wrong (JSON nested too deep: a RecursionError)
        if data is None or not _plain_value(data):
            await hand_over(replay(body, receive))
            return
        token = headers.get(IDEMPOTENCY_KEY)
        answer = await answers.put(self.node, key, data, token, Target.of_scope(scope), caller(scope))
        await self.send_kv_answer(send, answer)

    async def get_key(self, key: str, scope: Any, receive: Any, send: Any, hand_over: HandOver) -> None:
        if scope.get("query_string"):
            await hand_over(receive)
            return
        answer = await answers.read_key(
            self.node, key, "linearizable", Target.of_scope(scope), lambda: still_allowed(scope, self.node)
        )
        await self.send_kv_answer(send, answer)

    async def peer_messages(self, scope: Any, receive: Any, send: Any) -> None:
        headers = request_headers(scope)
        try:
            sender, pending = self.peers.batch_head(headers)
        except PeerRequestError as exc:
            await self.refuse_peer(scope, send, exc)
            return
        try:
            length = headers.get("content-length")
            if (
                length is not None
                and length.isascii()
                and length.isdigit()
                and int(length) > MAX_PEER_BODY_BYTES
            ):
                await self.answer(send, 413, {"error": self.too_large_message})
                return
            body = await read_body(receive, MAX_PEER_BODY_BYTES)
            if body is None:
                await self.answer(send, 413, {"error": self.too_large_message})
                return
            await self.peers.accept(sender, headers, body.data, pending)
        except PeerRequestError as exc:
            await self.refuse_peer(scope, send, exc)
            return
        finally:
            self.peers.abandon(pending)  # a body that never came, or a 413
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def refuse_peer(self, scope: Any, send: Any, exc: PeerRequestError) -> None:
        client = scope.get("client")
        self.peers.refused(exc, str(client[0]) if client else "unknown")
        # An answer before the body was read says Connection: close
        # (raft_trio.asgi.CloseWhenBodyUnread).
        await self.answer(send, exc.status, {"error": exc.message})
