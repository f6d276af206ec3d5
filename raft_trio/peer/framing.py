"""Frames on a peer stream: the sans-IO half (bytes in, frames out; no
sockets, no clock), in the manner of h11.

A stream is the body of one long-lived request from a node to a peer
(:mod:`raft_trio.peer.stream`). It is a sequence of frames, each holding one
payload (a batch of Raft messages, :mod:`raft_trio.peer.wire`)::

    frame = length (4 bytes, big-endian) | payload (length bytes) | mac (32 bytes, signed streams only)

On a signed stream (a cluster secret) ``mac`` is HMAC-SHA256 under the
stream's own key over the frame's sequence number (8 bytes, big-endian,
counted from 0 on each stream), its length and its payload. The key is
derived from the cluster secret and the stream's identity: sender,
recipient and the timestamp and nonce of the signed request that opened it
(:meth:`raft_trio.peer.auth.PeerAuthenticator.open_stream`). So a frame
that is injected, altered, replayed (from this stream or another one),
reordered or dropped (the next frame arrives under the wrong number) fails
its MAC, and the reader raises before anything of it is parsed.

Memory stays bounded: a frame longer than ``max_frame_bytes`` is refused
from its length alone, before its bytes are buffered.
"""

from __future__ import annotations

import hashlib
import hmac

#: Length prefix of each frame.
LENGTH_BYTES = 4
#: HMAC-SHA256 of each frame on a signed stream.
MAC_BYTES = 32
#: Frames larger than this are refused: a sender's frames stay well below
#: it (:data:`raft_trio.peer.stream.FRAME_TARGET_BYTES`, or one message of
#: at most ``max_append_bytes`` of entries plus one entry); snapshots never
#: travel on a stream.
MAX_FRAME_BYTES = 64 * 1024 * 1024


class FrameError(Exception):
    """The stream cannot be read any further. ``authentic`` is False when a
    frame failed its MAC (or could not be checked): a refusal to count."""

    def __init__(self, message: str, *, authentic: bool = True) -> None:
        super().__init__(message)
        self.authentic = authentic


def _mac_base(key: bytes) -> hmac.HMAC:
    return hmac.new(key, digestmod=hashlib.sha256)


class FrameWriter:
    """Makes the frames of one stream, numbering them."""

    def __init__(self, key: bytes | None = None) -> None:
        self._base = _mac_base(key) if key is not None else None
        self.sequence = 0

    def frame(self, payload: bytes) -> bytes:
        length = len(payload).to_bytes(LENGTH_BYTES, "big")
        if self._base is None:
            self.sequence += 1
            return length + payload
        mac = self._base.copy()
        mac.update(self.sequence.to_bytes(8, "big"))
        mac.update(length)
        mac.update(payload)
        self.sequence += 1
        return b"".join((length, payload, mac.digest()))


class FrameReader:
    """Reads the frames of one stream from its bytes as they arrive.

    :meth:`feed` returns the payloads of the frames completed so far, each
    checked against its MAC on a signed stream, and keeps a partial frame
    for the next call. After a :class:`FrameError` the reader is dead: the
    stream must be closed."""

    def __init__(self, key: bytes | None = None, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._base = _mac_base(key) if key is not None else None
        self._trailer = MAC_BYTES if key is not None else 0
        self._max = max_frame_bytes
        self._buffer = bytearray()
        self._failed: FrameError | None = None
        self.sequence = 0

    @property
    def pending_bytes(self) -> int:
        """Bytes of a frame not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray) -> list[bytes]:
        if self._failed is not None:
            raise self._failed
        buffer = self._buffer
        buffer += data
        payloads: list[bytes] = []
        start = 0
        try:
            while len(buffer) - start >= LENGTH_BYTES:
                length = int.from_bytes(buffer[start : start + LENGTH_BYTES], "big")
                if length > self._max:
                    raise FrameError(
                        f"a frame of {length} bytes exceeds the limit of {self._max}",
                        authentic=self._base is None,
                    )
                end = start + LENGTH_BYTES + length + self._trailer
                if len(buffer) < end:
                    break
                payload = bytes(buffer[start + LENGTH_BYTES : start + LENGTH_BYTES + length])
                if self._base is not None:
                    self._check(buffer[start : start + LENGTH_BYTES], payload, buffer[end - MAC_BYTES : end])
                self.sequence += 1
                payloads.append(payload)
                start = end
        except FrameError as error:
            self._failed = error
            buffer.clear()
            raise
        if start:
            del buffer[:start]
        return payloads

    def _check(self, length: bytes | bytearray, payload: bytes, given: bytes | bytearray) -> None:
        assert self._base is not None
        mac = self._base.copy()
        mac.update(self.sequence.to_bytes(8, "big"))
        mac.update(length)
        mac.update(payload)
        if not hmac.compare_digest(mac.digest(), bytes(given)):
            raise FrameError(
                f"frame {self.sequence} failed its MAC (altered, injected, replayed, reordered "
                "or after a dropped frame)",
                authentic=False,
            )
