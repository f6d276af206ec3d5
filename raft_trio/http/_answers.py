"""Answers the Quart handlers share: errors, the leader redirect, the
outcome of a write, and the shape of a key as clients see it (also what
the lean routes in front of Quart send, byte for byte)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import msgspec
from quart import Response, request

from ..kv import MAX_KEY_BYTES, Command, KeyValue, PermissionDenied, Result, Written, format_lease_id
from ..node import (
    InsufficientStorage,
    NotLeaderError,
    RaftNode,
    Unavailable,
    WriteFailed,
    WriteIndeterminate,
)
from ._principal import scoped_idempotency_key
from ._requests import IDEMPOTENCY_HEADER, MAX_TOKEN_LENGTH

#: On every answer of ``/api/kv...`` and ``/api/txn``: the revision this
#: node's state stands at (its applied index).
REVISION_HEADER = "X-Raft-Revision"


class KeyAnswer(msgspec.Struct, omit_defaults=True):
    """A key as it stands: ``index`` is its ``mod_revision`` (the revision
    of the write that produced this value), kept for the first clients."""

    key: str
    value: str
    index: int
    create_revision: int
    mod_revision: int
    version: int
    #: The lease the key is attached to, if any.
    lease: str | None = None


class DeleteAnswer(msgspec.Struct):
    key: str
    deleted: bool
    index: int


class ErrorAnswer(msgspec.Struct):
    error: str


class Indeterminate(msgspec.Struct):
    error: str
    indeterminate: bool


def key_answer(kv: KeyValue | Written) -> KeyAnswer:
    if isinstance(kv, Written):
        revision, create, version = kv.index, kv.create_revision, kv.version
    else:
        revision, create, version = kv.mod_revision, kv.create_revision, kv.version
    lease = format_lease_id(kv.lease) if kv.lease else None
    return KeyAnswer(kv.key, kv.value, revision, create, revision, version, lease)


def error(status: int, message: str, **extra: Any) -> tuple[dict[str, Any], int]:
    return {"error": message, **extra}, status


def not_leader(
    node: RaftNode, exc: NotLeaderError | None = None
) -> Response | tuple[dict[str, Any], int, dict[str, str]]:
    """307 to the same request on the leader, or 503 when none is known."""
    leader_url = exc.leader_url if exc is not None else node.leader_url()
    leader_id = exc.leader_id if exc is not None else node.core.leader_id
    if leader_url is None or leader_id is None or leader_id == node.id:
        return retry_later("no leader is known right now; retry shortly")
    target = leader_url.rstrip("/") + request.root_path + quote(request.path)
    if request.query_string:
        target += "?" + request.query_string.decode("latin-1")
    response = Response(
        json.dumps({"error": f"not the leader; the leader is {leader_id}", "leader_id": leader_id}),
        status=307,
        content_type="application/json",
    )
    response.headers["Location"] = target
    response.headers["X-Raft-Leader"] = leader_id
    return response


def retry_later(message: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """503 for a request that certainly had no effect: retry shortly."""
    return {"error": message, "indeterminate": False}, 503, {"Retry-After": "1"}


def check_key(key: str, what: str = "the key") -> tuple[dict[str, Any], int] | None:
    size = len(key.encode("utf-8"))
    if size == 0:
        return error(400, f"{what} is empty")
    if size > MAX_KEY_BYTES:
        return error(400, f"{what} is {size} bytes; at most {MAX_KEY_BYTES} are allowed")
    return None


def idempotency_token() -> str | tuple[dict[str, Any], int] | None:
    token = request.headers.get(IDEMPOTENCY_HEADER)
    if token is None:
        return None
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return error(400, f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_TOKEN_LENGTH} characters")
    return scoped_idempotency_key(request.scope, token)


def sse(name: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def write(node: RaftNode, command: Command) -> Result | Any:
    """The write's result, or the answer that says why there is none
    (403 when the state machine found the caller may not do it)."""
    try:
        result = await node.write(command)
    except NotLeaderError as exc:
        return not_leader(node, exc)
    except InsufficientStorage as exc:
        return Indeterminate(str(exc), False), 507
    except Unavailable as exc:
        return retry_later(str(exc))
    except WriteIndeterminate as exc:
        return Indeterminate(str(exc), True), 503
    except WriteFailed as exc:
        return Indeterminate(str(exc), False), 503
    if isinstance(result, PermissionDenied):
        return error(403, result.error, code="permission_denied")
    return result
