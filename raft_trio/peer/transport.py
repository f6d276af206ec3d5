"""Peer messages over HTTP: one outbox and one sender task per peer.

The ancestor lost leaders because it pinged peers one after another, so one
paused peer delayed everyone. Here each peer has its own task, draining its
own outbox into one POST at a time (many messages per request: batching),
each POST under its own deadline. A slow or paused peer costs the leader
that peer's bounded outbox and nothing else (the model is Trio's happy
eyeballs: one task per attempt, each under its own ``move_on_after``).

Messages are one-way, as in etcd: a POST returns once the peer has stepped
the messages; answers travel back as messages of their own through the
peer's sender. A lost batch is a lost message, which Raft tolerates; the
core is told (``on_unreachable``) so it stops pipelining to that peer.

Wire format: ``POST {peer url}/raft/messages`` with a MessagePack array of
messages (``raft_trio.core.encode_message`` per item, msgspec-encoded as a
whole) and the header ``X-Raft-From: <sender id>``; with a cluster secret
also ``X-Raft-Signature`` (:mod:`raft_trio.peer.auth`). A node reaches a
peer only at the URL the membership gives for it. :func:`batch_request`
makes every outgoing request (body and headers), and
:func:`check_peer_head` and :func:`accept_batch` check every incoming one:
the places where the wire format lives.
"""

from __future__ import annotations

import collections
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping

import httpx
import msgspec
import trio

from ..core import InstallSnapshot, Message
from .auth import SIGNATURE_HEADER, PeerAuthenticator, PeerAuthError

log = logging.getLogger(__name__)

MESSAGES_PATH = "/raft/messages"
FROM_HEADER = "X-Raft-From"

_batch_encoder = msgspec.msgpack.Encoder()
_batch_decoder: msgspec.msgpack.Decoder[list[Message]] = msgspec.msgpack.Decoder(list[Message])


def encode_batch(messages: list[Message]) -> bytes:
    return _batch_encoder.encode(messages)


def decode_batch(data: bytes) -> list[Message]:
    """Raises msgspec.DecodeError / ValidationError on anything malformed."""
    try:
        return _batch_decoder.decode(data)
    except UnicodeDecodeError as error:  # msgspec lets this one through
        raise msgspec.DecodeError(f"invalid UTF-8 in a string: {error}") from error


#: Signs one batch for one peer: (peer id, body) -> headers to add
#: (:meth:`raft_trio.peer.auth.PeerAuthenticator.sign`).
Signer = Callable[[str, bytes], dict[str, str]]


def batch_request(
    node_id: str, peer_id: str, messages: list[Message], sign: Signer | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one outgoing batch from ``node_id`` to
    ``peer_id``, signed if a signer is given."""
    body = encode_batch(messages)
    headers = {FROM_HEADER: node_id, "Content-Type": "application/msgpack"}
    if sign is not None:
        headers.update(sign(peer_id, body))
    return body, headers


class PeerRequestError(Exception):
    """An incoming peer request that is refused: answered ``status`` with
    ``{"error": message}``. ``sender`` is set for an authentication
    failure (401), which the receiver logs and counts."""

    def __init__(self, status: int, message: str, sender: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.sender = sender


def check_peer_head(headers: Mapping[str, str], auth: PeerAuthenticator | None) -> str:
    """The first half of accepting a batch, before its (possibly huge) body
    is read: returns the sender named by ``X-Raft-From``. ``headers`` maps
    lower-case header names to values. Raises :class:`PeerRequestError`:
    400 without ``X-Raft-From``; 401 when ``auth`` is set and the signature
    header is missing, malformed or stale."""
    sender = headers.get(FROM_HEADER.lower())
    if not sender:
        raise PeerRequestError(400, f"peer requests need the {FROM_HEADER} header")
    if auth is not None:
        try:
            auth.check_header(headers.get(SIGNATURE_HEADER.lower()))
        except PeerAuthError as exc:
            raise PeerRequestError(401, str(exc), sender) from exc
    return sender


def accept_batch(
    sender: str, headers: Mapping[str, str], body: bytes, auth: PeerAuthenticator | None
) -> list[Message]:
    """The second half: the messages of the batch ``sender`` sent (see
    :func:`check_peer_head`). Raises :class:`PeerRequestError`: first 401
    when ``auth`` is set and the signature does not hold (or is replayed),
    then 400 for a malformed body or a message whose sender differs from
    the header."""
    if auth is not None:
        # Authenticate before parsing: bytes from a stranger are not decoded.
        try:
            auth.verify(sender, headers.get(SIGNATURE_HEADER.lower()), body)
        except PeerAuthError as exc:
            raise PeerRequestError(401, str(exc), sender) from exc
    try:
        messages = decode_batch(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PeerRequestError(400, f"malformed peer message: {exc}") from exc
    if any(m.src != sender for m in messages):
        raise PeerRequestError(400, f"message sender differs from {FROM_HEADER}")
    return messages


#: Sends one batch: (url, body, headers) -> HTTP status. Raises
#: ``httpx.HTTPError`` (or ``OSError``) when the peer cannot be reached.
PostFunction = Callable[[str, bytes, dict[str, str]], Awaitable[int]]


def httpx_post(transport: httpx.AsyncBaseTransport) -> PostFunction:
    """Posts through an httpx transport (its connection pool) directly:
    ``AsyncClient.post`` spends about 0.2 ms of CPU a request on what peers
    never use (redirects, cookies, auth, event hooks, merging defaults),
    a quarter of the sender's cost."""

    async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        request = httpx.Request("POST", url, content=body, headers=headers)
        response = await transport.handle_async_request(request)
        try:
            # Read to the end even when empty: an unfinished response is
            # not put back into the pool, and every batch would connect anew.
            content = await response.aread()
        finally:
            await response.aclose()
        if response.status_code != 204:
            text = content[:200].decode("utf-8", "replace")
            log.warning("%s answered %s: %s", url, response.status_code, text)
        return response.status_code

    return post


class PeerSender:
    """The outbox and sender task of one peer."""

    #: Beyond this many queued messages the oldest are dropped: a peer that
    #: does not drain costs bounded memory (Raft retransmits what matters).
    MAX_QUEUED = 4096
    #: At most this many messages per POST (a snapshot goes alone).
    MAX_BATCH_MESSAGES = 256

    def __init__(
        self,
        node_id: str,
        peer_id: str,
        url: str,
        post: PostFunction,
        deadline: float,
        on_unreachable: Callable[[str], None],
        on_snapshot_sent: Callable[[str, bool], None],
        observe: Callable[[str, float, bool], None] | None = None,
        sign: Signer | None = None,
    ) -> None:
        self.node_id = node_id
        self.peer_id = peer_id
        self.url = url.rstrip("/")
        self._post_batch = post
        self._deadline = deadline
        self._on_unreachable = on_unreachable
        self._on_snapshot_sent = on_snapshot_sent
        self._observe = observe
        self._sign = sign
        self._queue: collections.deque[Message] = collections.deque()
        self._wake = trio.Event()
        self.cancel_scope = trio.CancelScope()
        self.dropped = 0

    def enqueue(self, message: Message) -> None:
        self._queue.append(message)
        if len(self._queue) > self.MAX_QUEUED:
            self._queue.popleft()
            self.dropped += 1
        self._wake.set()

    async def run(self) -> None:
        with self.cancel_scope:
            while True:
                if not self._queue:
                    await self._wake.wait()
                    self._wake = trio.Event()
                batch = self._take_batch()
                if batch:
                    await self._post(batch)

    def _take_batch(self) -> list[Message]:
        batch: list[Message] = []
        while self._queue and len(batch) < self.MAX_BATCH_MESSAGES:
            message = self._queue[0]
            if isinstance(message, InstallSnapshot):
                if batch:
                    break  # a snapshot travels alone, under a longer deadline
                batch.append(self._queue.popleft())
                break
            batch.append(self._queue.popleft())
        return batch

    async def _post(self, batch: list[Message]) -> None:
        snapshot = isinstance(batch[0], InstallSnapshot)
        deadline = self._deadline * 100 if snapshot else self._deadline
        body, headers = batch_request(self.node_id, self.peer_id, batch, self._sign)
        started = time.monotonic()
        ok = False
        # A sender woken just before the node stopped reaches this point
        # with its scope already cancelled and the client closed, and httpx
        # checks for a closed client before its first checkpoint
        # (RuntimeError, exit status 1): take the cancellation here.
        await trio.lowlevel.checkpoint_if_cancelled()
        with trio.move_on_after(deadline):
            try:
                ok = await self._post_batch(self.url + MESSAGES_PATH, body, headers) == 204
            except (httpx.HTTPError, OSError) as error:
                log.debug("peer %s unreachable: %r", self.peer_id, error)
        if self._observe is not None:
            self._observe(self.peer_id, time.monotonic() - started, ok)
        if snapshot:
            self._on_snapshot_sent(self.peer_id, ok)
        if not ok:
            self._on_unreachable(self.peer_id)
            # Do not spin on a dead peer; what queues meanwhile is bounded.
            await trio.sleep(min(self._deadline, 0.05))


class Transport:
    """The set of peer senders, following the membership."""

    def __init__(
        self,
        node_id: str,
        nursery: trio.Nursery,
        deadline: float,
        on_unreachable: Callable[[str], None],
        on_snapshot_sent: Callable[[str, bool], None],
        observe: Callable[[str, float, bool], None] | None = None,
        post: PostFunction | None = None,
        *,
        sign: Signer | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.node_id = node_id
        self._nursery = nursery
        self._deadline = deadline
        self._on_unreachable = on_unreachable
        self._on_snapshot_sent = on_snapshot_sent
        self._observe = observe
        self._sign = sign
        self._http: httpx.AsyncHTTPTransport | None = None
        if post is None:
            self._http = httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
                trust_env=False,
                verify=verify,
            )
            post = httpx_post(self._http)
        self._post = post
        self.senders: dict[str, PeerSender] = {}

    def set_peers(self, peers: dict[str, str]) -> None:
        """Start senders for new peers (or peers whose URL changed) and stop
        those no longer in the membership."""
        for peer_id, sender in list(self.senders.items()):
            if peers.get(peer_id, "").rstrip("/") != sender.url:
                sender.cancel_scope.cancel()
                del self.senders[peer_id]
        for peer_id, url in peers.items():
            if peer_id == self.node_id or peer_id in self.senders:
                continue
            sender = PeerSender(
                self.node_id,
                peer_id,
                url,
                self._post,
                self._deadline,
                self._on_unreachable,
                self._on_snapshot_sent,
                self._observe,
                self._sign,
            )
            self.senders[peer_id] = sender
            self._nursery.start_soon(sender.run, name=f"sender-{peer_id}")

    def send(self, message: Message) -> None:
        sender = self.senders.get(message.dst)
        if sender is not None:
            sender.enqueue(message)

    async def aclose(self) -> None:
        for sender in self.senders.values():
            sender.cancel_scope.cancel()
        if self._http is not None:
            with trio.CancelScope(shield=True):
                await self._http.aclose()
