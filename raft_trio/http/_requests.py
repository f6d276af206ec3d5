"""What a client request may carry, shared by the Quart handlers (which
document it in ``/openapi.json``) and the lean routes in front of them
(:mod:`raft_trio.http.lean`), so that both accept exactly the same."""

from __future__ import annotations

import msgspec

#: Retries of a write under one key take effect once (exactly-once).
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_TOKEN_LENGTH = 256


class PutBody(msgspec.Struct):
    """``value`` to write; with ``expect`` present, a compare-and-set:
    the key must hold ``expect`` (``null``: must be absent); with
    ``lease``, the key is attached to that lease and goes with it."""

    value: str
    expect: str | msgspec.UnsetType | None = msgspec.UNSET
    lease: str | None = None
