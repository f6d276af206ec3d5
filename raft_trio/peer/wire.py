"""The wire format of peer messages: every outgoing peer request is made
here, and every incoming one is checked here.

- ``GET /raft/stream`` with ``Connection: Upgrade`` and ``Upgrade:
  raft-stream``: the long-lived stream of one node to one peer
  (:mod:`raft_trio.peer.stream`), one per ordered pair of nodes, on a
  connection of its own. Answered ``101 Switching Protocols``, the
  connection then carries a sequence of frames (:mod:`raft_trio.peer.framing`)
  from the sender, each a batch of messages, and nothing back but the
  reason the stream ended (:mod:`raft_trio.peer.inbound`).
- ``POST /raft/messages``: one batch in one request. Snapshots go this way,
  each in a request of its own, so that a large one never holds up the
  stream; so does anything sent by a tool or a test.

A batch is a MessagePack array of messages
(:func:`raft_trio.core.encode_message` per item, msgspec-encoded as a
whole). A stream's frame holds a batch, nothing (a keep-alive), or a
:class:`PeerReport` (a MessagePack map): what the sender says of itself
beside Raft, its alarms, sent as the stream's first frame and again
whenever it changes, so that no node has to poll another's status. Both requests carry ``X-Raft-From: <sender id>``; with a cluster
secret also ``X-Raft-Signature`` (:mod:`raft_trio.peer.auth`), and a
stream's frames their MACs. A message whose sender differs from
``X-Raft-From`` is refused with the rest of its request or stream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import httpx
import msgspec

from ..core import Message
from .auth import SIGNATURE_HEADER, PeerAuthenticator, PeerAuthError, Pending
from .framing import FrameError, FrameReader, FrameWriter

MESSAGES_PATH = "/raft/messages"
STREAM_PATH = "/raft/stream"


def peer_url_problem(url: str) -> str | None:
    """Why the transport could not send to ``url`` (None: it can): an
    http(s) URL with a host, a port in range, no query, nothing httpx
    refuses. A member added at ``http://n4:80a`` once stopped every node
    that appended it, and again at each restart."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        httpx.URL(url.rstrip("/") + STREAM_PATH)
    except (ValueError, httpx.InvalidURL) as error:
        return f"{url!r} is not a usable URL ({error})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL with a host"
    if parts.query or parts.fragment:
        return f"{url!r} has a query or a fragment; a member's URL is SCHEME://HOST[:PORT][/PATH]"
    return None


def member_id_problem(member_id: str) -> str | None:
    """Why ``member_id`` cannot be a member's id (None: it can): it must
    be visible ASCII without ``/``. Every peer request carries its
    sender's id in a header (``X-Raft-From``), where a space at either
    end is dropped and a control or non-ASCII character cannot travel,
    so such a member never joins; and ``DELETE /api/members/{id}``
    cannot name an id holding the path's own ``/``."""
    if not member_id:
        return "a member needs a non-empty id"
    if not all("!" <= char <= "~" for char in member_id) or "/" in member_id:
        return f"{member_id!r} is not a usable member id (visible ASCII characters other than '/')"
    return None


#: The peers' routes, exactly (a prefix would also take in an API whose
#: prefix starts with it: ``API_PREFIX=/raft/v1``).
PEER_PATHS = (MESSAGES_PATH, STREAM_PATH)
#: The protocol a stream's connection switches to (``Upgrade:``).
STREAM_PROTOCOL = "raft-stream"
FROM_HEADER = "X-Raft-From"
#: The sender's cluster id, when it has one: a node with another refuses
#: the request or stream (412), so that a cluster restored from a backup
#: next to a live node of the old one cannot depose it, nor the other way.
CLUSTER_HEADER = "X-Raft-Cluster"
BATCH_CONTENT_TYPE = "application/msgpack"

_batch_encoder = msgspec.msgpack.Encoder()
_batch_decoder: msgspec.msgpack.Decoder[list[Message]] = msgspec.msgpack.Decoder(list[Message])


class PeerReport(msgspec.Struct, frozen=True):
    """What a node tells each peer about itself on its stream to that peer:
    its alarms (``"NOSPACE"``, :mod:`raft_trio.node.space`). Encoded as a
    map, which tells it from a batch (an array); fields a newer sender adds
    are ignored."""

    alarms: tuple[str, ...] = ()


_report_decoder: msgspec.msgpack.Decoder[PeerReport] = msgspec.msgpack.Decoder(PeerReport)
#: The first byte of a MessagePack map (fixmap, map 16, map 32).
_MAP_FIRST_BYTES = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF}


def encode_report(report: PeerReport) -> bytes:
    return _batch_encoder.encode(report)


def is_report(payload: bytes) -> bool:
    """Whether a frame's payload is a :class:`PeerReport` (not a batch)."""
    return bool(payload) and payload[0] in _MAP_FIRST_BYTES


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
    headers = {FROM_HEADER: node_id, "Content-Type": BATCH_CONTENT_TYPE}
    if sign is not None:
        headers.update(sign(peer_id, body))
    return body, headers


def stream_request(
    node_id: str, peer_id: str, auth: PeerAuthenticator | None
) -> tuple[dict[str, str], FrameWriter]:
    """The headers of the request (``GET``) opening a stream from
    ``node_id`` to ``peer_id``, and the writer of its frames (signed with a
    secret)."""
    headers = {FROM_HEADER: node_id, "Connection": "Upgrade", "Upgrade": STREAM_PROTOCOL}
    if auth is None:
        return headers, FrameWriter()
    signature, key = auth.open_stream(peer_id)
    headers.update(signature)
    return headers, FrameWriter(key)


class PeerRequestError(Exception):
    """An incoming peer request (or stream) that is refused: answered
    ``status`` with ``{"error": message}``. ``sender`` is set for an
    authentication failure (401), which the receiver logs and counts."""

    def __init__(self, status: int, message: str, sender: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.sender = sender


def check_peer_head(
    headers: Mapping[str, str], auth: PeerAuthenticator | None, cluster_id: str | None = None
) -> str:
    """The first half of accepting a batch or a stream, before any of its
    body is read: returns the sender named by ``X-Raft-From``. ``headers``
    maps lower-case header names to values. Raises
    :class:`PeerRequestError`: 400 without ``X-Raft-From``; 401 when
    ``auth`` is set and the signature header is missing, malformed or
    stale; 412 when the sender names a cluster (``X-Raft-Cluster``) other
    than ``cluster_id`` (either unknown: no check)."""
    sender = headers.get(FROM_HEADER.lower())
    if not sender:
        raise PeerRequestError(400, f"peer requests need the {FROM_HEADER} header")
    if auth is not None:
        try:
            auth.check_header(headers.get(SIGNATURE_HEADER.lower()))
        except PeerAuthError as exc:
            raise PeerRequestError(401, str(exc), sender) from exc
    theirs = headers.get(CLUSTER_HEADER.lower())
    if cluster_id is not None and theirs is not None and theirs != cluster_id:
        message = f"{sender!r} is a member of cluster {theirs!r}, not of this node's cluster {cluster_id!r}"
        raise PeerRequestError(412, message, sender)
    return sender


def _checked(sender: str, payload: bytes) -> list[Message]:
    try:
        messages = decode_batch(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PeerRequestError(400, f"malformed peer message: {exc}") from exc
    if any(m.src != sender for m in messages):
        raise PeerRequestError(400, f"message sender differs from {FROM_HEADER}")
    return messages


def begin_batch(sender: str, headers: Mapping[str, str], auth: PeerAuthenticator | None) -> Pending | None:
    """For a batch, after :func:`check_peer_head` and before its body is
    read: the signature's nonce reserved, freshness judged now (None
    without ``auth``). Hand it to :func:`accept_batch`, and to
    ``auth.abandon`` if the body never comes. Raises 401 as
    :func:`check_peer_head` does, and for a replayed nonce."""
    if auth is None:
        return None
    try:
        return auth.begin(sender, headers.get(SIGNATURE_HEADER.lower()))
    except PeerAuthError as exc:
        raise PeerRequestError(401, str(exc), sender) from exc


async def accept_batch(
    sender: str,
    headers: Mapping[str, str],
    body: bytes,
    auth: PeerAuthenticator | None,
    pending: Pending | None = None,
) -> list[Message]:
    """The second half for a batch: the messages ``sender`` sent (see
    :func:`check_peer_head` and :func:`begin_batch`, whose ``pending`` it
    finishes; without one the head is checked now). Raises
    :class:`PeerRequestError`: first 401 when ``auth`` is set and the
    signature does not hold (or is replayed), then 400 for a malformed body
    or a message whose sender differs from the header."""
    if auth is not None:
        # Authenticate before parsing: bytes from a stranger are not decoded.
        try:
            if pending is None:
                pending = auth.begin(sender, headers.get(SIGNATURE_HEADER.lower()))
            await auth.finish(pending, body)
        except PeerAuthError as exc:
            raise PeerRequestError(401, str(exc), sender) from exc
    return _checked(sender, body)


#: Called with the sender and its report, for each report frame of a stream.
ReportListener = Callable[[str, PeerReport], None]


class StreamInbox:
    """The receiving end of one stream: bytes in, checked messages out; the
    sender's reports go to ``on_report``."""

    def __init__(self, sender: str, reader: FrameReader, on_report: ReportListener | None = None) -> None:
        self.sender = sender
        self._reader = reader
        self._on_report = on_report
        #: Frames read so far, keep-alives (empty frames) included.
        self.frames = 0

    @property
    def pending_bytes(self) -> int:
        """Bytes of a frame not yet complete."""
        return self._reader.pending_bytes

    def feed(self, data: bytes | bytearray) -> list[Message]:
        """The messages of the frames that ``data`` completes. Raises
        :class:`PeerRequestError`, after which the stream must be closed:
        401 for a frame that fails its MAC (nothing of it is parsed), 400
        for a malformed one."""
        try:
            payloads = self._reader.feed(data)
        except FrameError as exc:
            if exc.authentic:
                raise PeerRequestError(400, f"malformed peer stream: {exc}") from exc
            raise PeerRequestError(401, str(exc), self.sender) from exc
        self.frames += len(payloads)
        if len(payloads) == 1:
            payload = payloads[0]
            if not payload:
                return []
            if payload[0] not in _MAP_FIRST_BYTES:
                return _checked(self.sender, payload)
        messages: list[Message] = []
        for payload in payloads:
            if is_report(payload):
                self._report(payload)
            elif payload:
                messages.extend(_checked(self.sender, payload))
        return messages

    def _report(self, payload: bytes) -> None:
        try:
            report = _report_decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            raise PeerRequestError(400, f"malformed peer report: {exc}") from exc
        if self._on_report is not None:
            self._on_report(self.sender, report)


async def accept_stream(
    sender: str,
    headers: Mapping[str, str],
    auth: PeerAuthenticator | None,
    on_report: ReportListener | None = None,
) -> StreamInbox:
    """The second half for a stream (see :func:`check_peer_head`): its
    inbox, which hands the sender's reports to ``on_report``. Raises
    :class:`PeerRequestError` 401 when ``auth`` is set and the opening's
    signature does not hold or was seen before."""
    if auth is None:
        return StreamInbox(sender, FrameReader(), on_report)
    try:
        key = await auth.accept_stream(sender, headers.get(SIGNATURE_HEADER.lower()))
    except PeerAuthError as exc:
        raise PeerRequestError(401, str(exc), sender) from exc
    return StreamInbox(sender, FrameReader(key), on_report)
