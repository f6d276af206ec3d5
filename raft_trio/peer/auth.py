"""Peers that prove who they are: an HMAC over every peer request, and
over every frame of a peer stream.

Without a cluster secret any process that can reach a node's port can step
Raft messages into it (a vote request with a huge term unseats any leader).
With one, every peer request (``POST /raft/messages`` and the request that
opens a stream, ``GET /raft/stream``) carries

    X-Raft-Signature: t=<unix ms>,n=<random nonce>,d=<hex SHA-256 of the body>,s=<hex HMAC-SHA256>

where the HMAC covers a version tag (one for single requests, another for
stream openings), the sender's id (``X-Raft-From``), the recipient's id,
``t``, ``n`` and ``d`` (an opening has no body and no ``d``). The MAC
covers the head alone, so it is checked before any of the body is read:
someone without the secret is refused without making the node read (and
hold) a body of up to a GiB first. The body is then checked against
``d``, its digest, as AWS SigV4 checks ``x-amz-content-sha256``. The
recipient refuses (HTTP 401) a request whose signature is missing or wrong,
whose body differs from its digest, whose timestamp
lies more than ``MAX_CLOCK_SKEW_S`` away from its own clock, or whose nonce
it has already accepted within that window: a captured request cannot be
replayed, neither to the same node (nonce) nor to another one (recipient
id), nor later (timestamp). This is the shape of AWS SigV4 or Stripe's
webhook signatures; mutual TLS would do the same job with certificates to
manage.

A request signed before this node started is refused, judged by the
sender's timestamp, since the nonces seen by an earlier run are gone; a
sender whose clock runs ahead would defeat that for as long as its lead (a
request recorded just before a restart carries a time after it). So with
a place to keep them (:class:`AcceptedNonces`, the data directory's) the
nonces accepted within the window are also written to disk before the
request is acted on, and a restarted node knows them again: a replay is
refused as it would have been before the restart, whatever the clocks
say, and an honest request never is (a high-water mark of the senders'
times would lock a peer out after its clock was stepped back).

A stream's frames are signed too, each under a key of that stream alone,
derived from the secret and the opening's sender, recipient, ``t`` and
``n`` (:mod:`raft_trio.peer.framing` numbers them and checks each MAC).

The secret authenticates; it does not encrypt. Use TLS (``--tls-cert``)
when the network between nodes is not trusted with the data itself.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import trio

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Raft-Signature"
#: How far a signed request's timestamp may be from the receiver's clock.
#: Nodes of a cluster run NTP (or share a host); a request older than this
#: is refused, which is what bounds the memory of seen nonces.
MAX_CLOCK_SKEW_S = 30.0
#: Bound on remembered nonces; beyond it the oldest are forgotten early
#: (their timestamps still expire them a little later). At 1,000 signed
#: batches a second from each of four peers this holds a full window.
MAX_REMEMBERED_NONCES = 250_000
#: Requests that may wait for the nonce memory's write; beyond them a
#: frozen disk refuses new ones at once instead of piling up their tasks
#: and connections (peers retry with backoff).
MAX_WAITING_TO_KEEP = 64
#: A body this large has its digest computed on a worker thread (hashlib
#: releases the GIL): a snapshot's would otherwise hold the event loop,
#: and with it the node's heartbeats, for as long (55 ms for 64 MiB here).
MAC_OFF_LOOP_BYTES = 1 << 20
#: What a single request is signed under. Version 1 signed the body itself,
#: so its MAC could be checked only once the body was in.
_VERSION = b"raft-trio-peer-v2"
#: What a stream opening is signed under: never taken for a single request.
_STREAM_VERSION = b"raft-trio-stream-v1"
#: Label of the derivation of a stream's frame key (not the opening's MAC,
#: which travels in clear).
_STREAM_KEY = b"raft-trio-stream-key-v1"


def _is_sha256_hex(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


class PeerAuthError(Exception):
    """Why a peer request was refused (the text goes into the 401)."""


#: One accepted signed request: (sender, nonce, its timestamp in Unix ms).
Accepted = tuple[str, str, int]


@dataclasses.dataclass(frozen=True)
class Pending:
    """A signed request whose head passed :meth:`PeerAuthenticator.begin`
    (its MAC included): its fields, and the nonce reserved for it."""

    sender: str
    stamp: str
    nonce: str
    #: The SHA-256 (hex) of the body the head was signed with; None for a
    #: stream's opening, which has no body.
    digest: str | None
    key: str


class AcceptedNonces(Protocol):
    """Where a node keeps, across its restarts, the signed requests it
    accepted that a replay could still pass the timestamp window with (the
    data directory's ``peer-nonces.json``)."""

    def load(self) -> list[Accepted]: ...

    def save(self, accepted: Sequence[Accepted]) -> None:
        """Durably, before returning (the request is acted on after it)."""


class PeerAuthenticator:
    """Signs outgoing peer requests and checks incoming ones.

    One per node; ``clock`` returns Unix seconds and is injectable for
    tests. The nonce memory is per receiving node, which is why the
    recipient's id is part of what is signed."""

    def __init__(
        self,
        secret: bytes,
        node_id: str,
        clock: Callable[[], float] = time.time,
        kept: AcceptedNonces | None = None,
    ) -> None:
        self._secret = secret
        self.node_id = node_id
        self._clock = clock
        #: Requests signed before this authenticator existed are refused:
        #: the nonces an earlier run of this node saw are gone unless
        #: ``kept`` has them, and without it this is what stops a request
        #: captured before a restart from being replayed after it (``kept``
        #: covers a sender whose clock runs ahead). A peer whose clock runs
        #: behind this node's is refused for that long after a restart
        #: (Raft retransmits).
        self.not_before = math.floor(clock() * 1000) / 1000  # signatures carry whole ms
        #: The nonce memory: the accepted requests a replay could still pass
        #: the window with, each under its expiry (in arrival order), and
        #: their keys. With ``kept`` it is also on disk (see _keep).
        self._seen: set[str] = set()
        #: Keys of requests whose MAC is being computed (off the loop).
        self._checking: set[str] = set()
        self._expiries: collections.deque[tuple[float, str, Accepted]] = collections.deque()
        self._kept = kept
        for accepted in sorted(kept.load(), key=lambda a: a[2]) if kept is not None else ():
            self._remember(accepted)
        #: Saves of the memory to ``kept`` run one at a time, off the loop;
        #: ``_changes`` counts the requests remembered, ``_saved_through``
        #: how many of them the last save held.
        self._save_lock = trio.Lock()
        self._changes = 0
        self._saved_through = 0

    def _mac(self, sender: str, recipient: str, stamp: str, nonce: str, digest: str, version: bytes) -> str:
        """The MAC of a head (``digest`` empty for a stream's opening: its
        bytes are those of version 1's over an empty body)."""
        head = b"\n".join((version, sender.encode(), recipient.encode(), stamp.encode(), nonce.encode()))
        return hmac.new(self._secret, head + b"\n" + digest.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def _digest(body: bytes) -> str:
        return hashlib.sha256(body).hexdigest()

    def _stream_key(self, sender: str, recipient: str, stamp: str, nonce: str) -> bytes:
        identity = b"\n".join(
            (_STREAM_KEY, sender.encode(), recipient.encode(), stamp.encode(), nonce.encode())
        )
        return hmac.digest(self._secret, identity, "sha256")

    def sign(self, recipient: str, body: bytes) -> dict[str, str]:
        """The header to send with ``body`` to the peer ``recipient``."""
        digest = self._digest(body)
        stamp, nonce, mac = self._sign(recipient, digest, _VERSION)
        return {SIGNATURE_HEADER: f"t={stamp},n={nonce},d={digest},s={mac}"}

    def _sign(self, recipient: str, digest: str, version: bytes) -> tuple[str, str, str]:
        stamp = str(int(self._clock() * 1000))
        nonce = secrets.token_hex(16)
        return stamp, nonce, self._mac(self.node_id, recipient, stamp, nonce, digest, version)

    def open_stream(self, recipient: str) -> tuple[dict[str, str], bytes]:
        """The header of a request opening a stream to ``recipient``, and
        the key that signs the stream's frames."""
        stamp, nonce, mac = self._sign(recipient, "", _STREAM_VERSION)
        header = {SIGNATURE_HEADER: f"t={stamp},n={nonce},s={mac}"}
        return header, self._stream_key(self.node_id, recipient, stamp, nonce)

    async def accept_stream(self, sender: str, header: str | None) -> bytes:
        """Accept a stream opened by ``sender`` to this node (as
        :meth:`verify` accepts a request: once, fresh, from after this node
        started), or raise PeerAuthError. Returns the key of its frames."""
        stamp, nonce = await self.finish(self.begin(sender, header, _STREAM_VERSION), b"")
        return self._stream_key(sender, self.node_id, stamp, nonce)

    def check_header(self, header: str | None, now: float | None = None) -> tuple[str, str, str | None, str]:
        """The cheap part of :meth:`begin`: the ``X-Raft-Signature`` header
        is there, well formed and fresh (at ``now``, this node's clock if
        not given). Returns its fields: ``t``, ``n``, ``d`` (None if
        absent) and ``s``."""
        if not header:
            raise PeerAuthError(f"peer requests need the {SIGNATURE_HEADER} header (a cluster secret is set)")
        fields = dict(part.partition("=")[::2] for part in header.split(","))
        stamp, nonce, given = fields.get("t", ""), fields.get("n", ""), fields.get("s", "")
        digest = fields.get("d")
        if not (
            stamp.isascii()
            and stamp.isdigit()
            and len(stamp) <= 16
            and 16 <= len(nonce) <= 64
            and given
            and (digest is None or _is_sha256_hex(digest))
        ):
            raise PeerAuthError(f"malformed {SIGNATURE_HEADER} header")
        signed_at = int(stamp) / 1000
        if abs((self._clock() if now is None else now) - signed_at) > MAX_CLOCK_SKEW_S:
            raise PeerAuthError(
                f"peer signature timestamp is more than {MAX_CLOCK_SKEW_S:.0f} s away from this node's clock"
            )
        if signed_at < self.not_before:
            raise PeerAuthError("peer request signed before this node started (a replay, or a clock behind)")
        return stamp, nonce, digest, given

    async def verify(self, sender: str, header: str | None, body: bytes) -> None:
        """Accept a request from ``sender`` to this node with this
        ``X-Raft-Signature`` header, or raise PeerAuthError. An accepted
        nonce is remembered: the same request is refused the second time."""
        await self.finish(self.begin(sender, header), body)

    def begin(self, sender: str, header: str | None, version: bytes = _VERSION) -> Pending:
        """Everything about a request but its body, checked before the body
        is read: the header is well formed, fresh and from after this node
        started, its nonce neither seen nor reserved, and its MAC right.
        The nonce is then reserved for this request until :meth:`finish`
        or :meth:`abandon`. Freshness is judged here, once: a snapshot
        signed and then uploaded for longer than the window used to be
        refused at the end of every upload (a review's finding), and the
        reservation keeps a replay whose head also arrived in time from
        being accepted after the first copy's nonce was forgotten."""
        # One reading of the clock for the window and for forgetting the
        # nonces it refuses anyway.
        now = self._clock()
        stamp, nonce, digest, given = self.check_header(header, now)
        if (digest is None) != (version == _STREAM_VERSION):
            raise PeerAuthError(
                f"malformed {SIGNATURE_HEADER} header (d=, the body's digest, belongs to requests with a body)"
            )
        expected = self._mac(sender, self.node_id, stamp, nonce, digest or "", version)
        if not hmac.compare_digest(expected, given):
            raise PeerAuthError("wrong peer signature (another cluster secret, or a changed request)")
        self._forget_expired(now)
        key = f"{sender}/{nonce}"
        if key in self._seen or key in self._checking:
            raise PeerAuthError("replayed peer request (its nonce was seen before)")
        self._checking.add(key)
        return Pending(sender, stamp, nonce, digest, key)

    def abandon(self, pending: Pending) -> None:
        """Release a reservation whose request ended before :meth:`finish`
        (its body never came): the nonce was not accepted."""
        self._checking.discard(pending.key)

    async def finish(self, pending: Pending, body: bytes) -> tuple[str, str]:
        """Check ``body`` against the digest of the request :meth:`begin`
        reserved (a stream's opening has none, and no body); remember its
        nonce, or raise PeerAuthError. The reservation is released either
        way."""
        try:
            if pending.digest is None:
                if body:
                    raise PeerAuthError("a stream's opening carries no body")
            else:
                if len(body) >= MAC_OFF_LOOP_BYTES:
                    digest = await trio.to_thread.run_sync(self._digest, body)
                else:
                    digest = self._digest(body)
                if not hmac.compare_digest(digest, pending.digest):
                    raise PeerAuthError("wrong peer signature (the body differs from the one signed)")
            # Remembered before it is kept: a replay arriving while the
            # memory is being written is refused as any other. Until its
            # window closes: no copy's head can pass the window after that.
            self._remember((pending.sender, pending.nonce, int(pending.stamp)))
        finally:
            self._checking.discard(pending.key)
        await self._keep()
        return pending.stamp, pending.nonce

    def _remember(self, accepted: Accepted) -> None:
        sender, nonce, signed_ms = accepted
        key = f"{sender}/{nonce}"
        self._seen.add(key)
        self._expiries.append((signed_ms / 1000 + MAX_CLOCK_SKEW_S, key, accepted))

    async def _keep(self) -> None:
        """Write the nonce memory, holding the request just remembered,
        before that request is acted on: a crash after it cannot open the
        request to a replay. Signed requests are stream openings and
        snapshot batches, a handful a minute, and the memory holds only
        those of the last window. The write runs on a worker thread, one
        at a time, so that a slow or frozen disk holds up the requests
        waiting for it and not the event loop; one that starts after
        several requests were remembered answers for all of them."""
        if self._kept is None:
            return
        if self._save_lock.statistics().tasks_waiting >= MAX_WAITING_TO_KEEP:
            raise PeerAuthError(
                f"this node cannot record the request on its disk now ({MAX_WAITING_TO_KEEP} requests wait for it)"
            )
        self._changes += 1
        mine = self._changes
        async with self._save_lock:
            if self._saved_through >= mine:
                return
            through = self._changes
            accepted = [entry[2] for entry in self._expiries]
            try:
                await trio.to_thread.run_sync(self._kept.save, accepted)
            except OSError as error:
                raise PeerAuthError(f"this node cannot record the request on its disk ({error})") from error
            self._saved_through = through

    def _forget_expired(self, now: float) -> None:
        """Nonces whose timestamps left the window cannot be replayed any
        more (the timestamp check refuses them), so they need no memory."""
        while self._expiries and (self._expiries[0][0] < now or len(self._expiries) >= MAX_REMEMBERED_NONCES):
            _, key, _ = self._expiries.popleft()
            self._seen.discard(key)


class RefusalLog:
    """Logs refused requests without letting a flood of them flood the log:
    at most one line per ``interval`` seconds, counting what it skipped."""

    def __init__(self, logger: logging.Logger, interval: float = 1.0) -> None:
        self._logger = logger
        self._interval = interval
        self._last = -float("inf")
        self._skipped = 0

    def refused(self, what: str, source: str, reason: str) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            self._skipped += 1
            return
        more = f" ({self._skipped} more refused since the last line)" if self._skipped else ""
        self._logger.warning("refused %s from %s: %s%s", what, source, reason, more)
        self._last = now
        self._skipped = 0
