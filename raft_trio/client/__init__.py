"""A client of a raft-trio cluster, blocking (:class:`Client`) or for Trio
(:class:`TrioClient`), with the same methods.

Both take a list of endpoints and try them in turn, follow the leader's
redirects and remember the leader, retry what is safe to retry (reads;
writes, each sent with an ``Idempotency-Key`` the client makes, so that a
retry takes effect once), and return the answers as values of
:mod:`raft_trio.schema`. Errors are exceptions under :class:`ClientError`,
told apart by class and by the answer's ``code``, never by its text::

    from raft_trio.client import Client, KeyNotFound

    with Client("http://127.0.0.1:9001,http://127.0.0.1:9002") as client:
        client.put("greeting", "hello")
        print(client.get("greeting").value)

See docs/client.md. Nothing here imports the node or the server: a
program that only talks to a cluster loads httpx, msgspec and this.
"""

from typing import TYPE_CHECKING

from ._api import MemberStatus
from ._contention import Leader
from ._contention import prefix_of as lock_prefix
from ._errors import (
    ApiError,
    AuthConflict,
    BadRequest,
    ClientError,
    Compacted,
    CompareFailed,
    Indeterminate,
    KeyNotFound,
    LeaseNotFound,
    LockLost,
    MembershipConflict,
    NoEndpointAnswered,
    NotFound,
    PermissionDenied,
    StreamBroken,
    TooManyAttempts,
    Unauthorized,
    Unavailable,
)
from ._sync import DEFAULT_ENDPOINTS, Client

if TYPE_CHECKING:
    from ._held import HeldLock
    from ._locks import Holding, Leadership
    from ._trio import TrioClient


def __getattr__(name: str) -> object:
    # The Trio client loads Trio: only when asked for, so that a blocking
    # program (the CLI) starts without it.
    if name == "TrioClient":
        from ._trio import TrioClient

        return TrioClient
    if name == "Leadership":
        from ._locks import Leadership

        return Leadership
    if name == "Holding":
        from ._locks import Holding

        return Holding
    if name == "HeldLock":
        from ._held import HeldLock

        return HeldLock
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_ENDPOINTS",
    "ApiError",
    "AuthConflict",
    "BadRequest",
    "Client",
    "ClientError",
    "Compacted",
    "CompareFailed",
    "HeldLock",
    "Holding",
    "Indeterminate",
    "KeyNotFound",
    "Leader",
    "Leadership",
    "LeaseNotFound",
    "LockLost",
    "MemberStatus",
    "MembershipConflict",
    "NoEndpointAnswered",
    "NotFound",
    "PermissionDenied",
    "StreamBroken",
    "TooManyAttempts",
    "TrioClient",
    "Unauthorized",
    "Unavailable",
    "lock_prefix",
]
