"""Node outcomes mapped to HTTP answers, once.

Every handler, the Quart routes and the lean ASGI routes in front of them
(:mod:`raft_trio.http.lean`) alike, turns what the node did into an
:class:`Answer` here: a status, a body of :mod:`raft_trio.schema` and the
headers that go with it. :func:`for_exception` is the one place where the
node's exceptions become statuses and error codes, :func:`for_result` the
one place where the state machine's results become answers, and
:meth:`Answer.encode` the one encoding, so the two paths answer the same
request with the same bytes (tests/http/test_answers.py checks it).

Nothing here knows Quart or ASGI: each path has a small adapter that
sends an :class:`Answer` its own way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import msgspec

from .. import schema
from ..core import AlreadyMember, ConfigChangeRejected, NotMember, RaftError
from ..kv import (
    MAX_KEY_BYTES,
    MAX_VALUE_BYTES,
    AuthChanged,
    AuthRefused,
    Caller,
    CasFailed,
    Command,
    Deleted,
    Got,
    KeyReused,
    KeyValue,
    LeaseGranted,
    LeaseNotFound,
    LeaseRevoked,
    PermissionDenied,
    Put,
    Ranged,
    Result,
    TxnDone,
    Written,
    format_lease_id,
    parse_lease_id,
)
from ..node import (
    InsufficientStorage,
    LeaseMissing,
    NotLeaderError,
    RaftNode,
    ReadAborted,
    Unavailable,
    WriteFailed,
    WriteIndeterminate,
)
from ..node.watches import TooManyWatchers, WatchClosed, WatchCompacted

Code = schema.Code

#: On every answer of ``/api/kv...`` and ``/api/txn``: the revision this
#: node's state stands at (its applied index).
REVISION_HEADER = schema.REVISION_HEADER
#: Sent with every answer that certainly had no effect: retry shortly.
RETRY_AFTER = ("Retry-After", "1")
JSON_TYPE = "application/json"

_encoder = msgspec.json.Encoder()


def encode(body: Any) -> bytes:
    """The one JSON encoding of an answer: compact, in the schema's field
    order, UTF-8, a final newline (for a terminal's sake)."""
    return _encoder.encode(body) + b"\n"


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer before it is sent: status, body, extra headers."""

    status: int
    body: msgspec.Struct
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        return encode(self.body)

    def with_header(self, name: str, value: str) -> Answer:
        return dataclasses.replace(self, headers=(*self.headers, (name, value)))


class Refused(Exception):
    """Raised with the answer for a request refused before it had any
    effect (bad input found deep in a conversion)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.body)
        self.answer = answer


#: What :func:`route_path` says of a path outside ``root_path`` (Quart's
#: own stand-in: a space, which no route matches).
NO_ROUTE = " "


def route_path(scope: dict[str, Any]) -> str:
    """The request path the way Quart and Werkzeug route it, so that the
    gate decides on the route that will serve the request: an
    absolute-form target (``GET http://host/api/...``) by its path, without
    ``root_path`` (a path outside it matches no route), its leading slashes
    made one (Werkzeug's ``match`` strips them: ``//api/kv/k`` is served by
    the route of ``/api/kv/k``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root and path.startswith("/") and not path.startswith("//"):
        return path  # the usual request, answered without a copy
    if not path.startswith("/"):
        path = urlparse(path).path  # as Quart's request does
    if root:
        if path == root or not path.startswith(root):
            return NO_ROUTE
        path = path[len(root) :]
    return "/" + path.lstrip("/")


def without_root(path: str, root: str) -> str:
    """``path`` without the ``root`` path it starts with, if any."""
    if root and path != root and path.startswith(root):
        return path[len(root) :]
    return path


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """Where a request went, to send it on to the leader: the ASGI scope's
    ``root_path``, its path below that, and its query string."""

    root_path: str
    path: str
    query: bytes = b""

    @classmethod
    def of_scope(cls, scope: dict[str, Any]) -> Target:
        return cls(scope.get("root_path", ""), route_path(scope), scope.get("query_string", b""))

    def on(self, base_url: str) -> str:
        url = base_url.rstrip("/") + self.root_path + schema.quote_path(self.path)
        return url + "?" + self.query.decode("latin-1") if self.query else url


# -- errors -------------------------------------------------------------------


def error(status: int, code: str, message: str, *headers: tuple[str, str]) -> Answer:
    return Answer(status, schema.ErrorAnswer(message, code), headers)


def bad_request(message: str) -> Answer:
    return error(400, Code.BAD_REQUEST, message)


def retry_later(message: str, code: str = Code.UNAVAILABLE) -> Answer:
    """503 for a request that certainly had no effect: retry shortly."""
    return Answer(503, schema.UnavailableAnswer(message, code, False), (RETRY_AFTER,))


def not_leader(node: RaftNode, target: Target, exc: NotLeaderError | None = None) -> Answer:
    """307 to the same request on the leader, or 503 when none is known."""
    leader_url = exc.leader_url if exc is not None else node.leader_url()
    leader_id = exc.leader_id if exc is not None else node.leader_id
    if leader_url is None or leader_id is None or leader_id == node.id:
        return retry_later("no leader is known right now; retry shortly", Code.NO_LEADER)
    body = schema.RedirectAnswer(f"not the leader; the leader is {leader_id}", Code.NOT_LEADER, leader_id)
    return Answer(307, body, (("Location", target.on(leader_url)), (schema.LEADER_HEADER, leader_id)))


def for_exception(exc: Exception, node: RaftNode, target: Target) -> Answer:
    """The answer for what the node raised instead of doing a request; the
    one table of exceptions to statuses. Anything not listed is a bug and
    is raised again."""
    if isinstance(exc, Refused):
        return exc.answer
    if isinstance(exc, NotLeaderError):
        return not_leader(node, target, exc)
    if isinstance(exc, InsufficientStorage):
        return Answer(507, schema.UnavailableAnswer(str(exc), Code.NO_SPACE, False))
    if isinstance(exc, (Unavailable, ReadAborted, WriteFailed, TooManyWatchers, WatchClosed)):
        return retry_later(str(exc))
    if isinstance(exc, WriteIndeterminate):
        return Answer(503, schema.UnavailableAnswer(str(exc), Code.INDETERMINATE, True))
    if isinstance(exc, AlreadyMember):
        return error(409, Code.ALREADY_MEMBER, str(exc))
    if isinstance(exc, NotMember):
        return error(409, Code.NOT_MEMBER, str(exc))
    if isinstance(exc, ConfigChangeRejected):
        return error(409, Code.CHANGE_REJECTED, str(exc))
    if isinstance(exc, RaftError):
        return bad_request(str(exc))
    if isinstance(exc, LeaseMissing):
        return error(404, Code.LEASE_NOT_FOUND, str(exc))
    if isinstance(exc, WatchCompacted):
        body = schema.CompactedAnswer(str(exc), Code.COMPACTED, exc.compact_revision)
        return Answer(410, body)
    raise exc


#: What ``for_exception`` answers; a handler catches these around a call
#: into the node, and nothing else.
NODE_ERRORS: tuple[type[Exception], ...] = (
    Refused,
    NotLeaderError,
    Unavailable,
    ReadAborted,
    WriteFailed,
    WriteIndeterminate,
    TooManyWatchers,
    WatchClosed,
    RaftError,
    LeaseMissing,
    WatchCompacted,
)


# -- results ------------------------------------------------------------------


def key_answer(kv: KeyValue | Written) -> schema.KeyAnswer:
    if isinstance(kv, Written):
        revision, create, version = kv.index, kv.create_revision, kv.version
    else:
        revision, create, version = kv.mod_revision, kv.create_revision, kv.version
    lease = format_lease_id(kv.lease) if kv.lease else None
    return schema.KeyAnswer(kv.key, kv.value, revision, create, revision, version, lease)


def key_not_found(key: str) -> Answer:
    return error(404, Code.KEY_NOT_FOUND, f"key {key!r} not found")


def lease_not_found(lease: int) -> Answer:
    return error(404, Code.LEASE_NOT_FOUND, f"lease {format_lease_id(lease)} not found (expired or revoked)")


def range_item(kv: KeyValue, keys_only: bool = False) -> schema.RangeItem:
    return schema.RangeItem(
        kv.key,
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        msgspec.UNSET if keys_only else kv.value,
        format_lease_id(kv.lease) if kv.lease else None,
    )


def txn_result(result: Written | Deleted | Got | Ranged, revision: int) -> schema.TxnResult:
    """One result as the single-key or range request would answer it."""
    if isinstance(result, Deleted):
        return schema.TxnResult(key=result.key, deleted=result.deleted, index=result.index)
    if isinstance(result, Ranged):
        items = [range_item(kv) for kv in result.kvs]
        return schema.TxnResult(kvs=items, count=result.count, more=result.more, revision=revision)
    if isinstance(result, Got) and result.more:
        return schema.TxnResult(key=result.key, more=True)  # not read: the reads' share was spent
    kv = result if isinstance(result, Written) else result.kv
    if kv is None:
        return schema.TxnResult(
            key=result.key, error=f"key {result.key!r} not found", code=Code.KEY_NOT_FOUND
        )
    key = key_answer(kv)
    return schema.TxnResult(
        key=key.key,
        value=key.value,
        index=key.index,
        create_revision=key.create_revision,
        mod_revision=key.mod_revision,
        version=key.version,
        lease=key.lease if key.lease is not None else msgspec.UNSET,
    )


#: HTTP status of each way an auth change can be refused.
AUTH_REFUSAL_STATUS = {
    "user_exists": 409,
    "role_exists": 409,
    "user_not_found": 404,
    "role_not_found": 404,
    "grant_not_found": 404,
    "root_protected": 409,
    "root_missing": 409,
}


def name_taken(why: str) -> Answer:
    """409: users and members share one namespace, the CNs of the
    certificates signed by the cluster's CA (mutual TLS): a user named like
    a member would have the member's certificate prove it, and a
    certificate made for it could speak for the member to its peers."""
    return error(409, Code.NAME_TAKEN, f"{why}: users and members may not share a name")


def forbidden(message: str) -> Answer:
    """403: the user may not do this; nothing changed."""
    return error(403, Code.PERMISSION_DENIED, message)


def for_result(result: Result) -> Answer:
    """The answer for what the state machine did with a command (also a
    remembered outcome returned for a retried ``Idempotency-Key``)."""
    if isinstance(result, PermissionDenied):
        return forbidden(result.error)
    if isinstance(result, AuthChanged):
        return Answer(200, schema.AuthChangeAnswer(result.revision, result.changed))
    if isinstance(result, AuthRefused):
        return error(AUTH_REFUSAL_STATUS[result.code], result.code, result.error)
    if isinstance(result, Written):
        return Answer(200, key_answer(result))
    if isinstance(result, CasFailed):
        message = "compare failed: the key does not hold the expected value"
        return Answer(409, schema.CasConflict(message, Code.COMPARE_FAILED, result.current, result.index))
    if isinstance(result, Deleted):
        return Answer(200, schema.DeleteAnswer(result.key, result.deleted, result.index))
    if isinstance(result, LeaseNotFound):
        return lease_not_found(result.lease)
    if isinstance(result, KeyReused):
        message = (
            f"the {schema.IDEMPOTENCY_HEADER} was used before for a different request;"
            " a retry must repeat the request, a new request needs a new key"
        )
        return error(400, Code.IDEMPOTENCY_KEY_REUSED, message)
    if isinstance(result, TxnDone):
        results = [txn_result(item, result.revision) for item in result.results]
        return Answer(200, schema.TxnAnswer(result.succeeded, results, result.revision))
    if isinstance(result, LeaseGranted):
        return Answer(200, schema.LeaseAnswer(format_lease_id(result.id), result.ttl))
    if isinstance(result, LeaseRevoked):
        if not result.found:
            return lease_not_found(result.id)
        return Answer(200, schema.LeaseRevokedAnswer(format_lease_id(result.id), result.keys, result.index))
    raise TypeError(f"no answer for the result {result!r}")


# -- the operations both paths serve ------------------------------------------------


def stamped(command: Command, caller: Caller | None) -> Command:
    """``command`` as the log keeps it: with who asked (the state machine
    checks it on apply while auth is on), and with its ``Idempotency-Key``
    under that user's name, so that one user cannot fetch another's
    remembered outcome by sending the same key."""
    if caller is None:
        return command
    token = command.token
    if token is not None and caller.user:
        token = f"{caller.user}\0{token}"
    return msgspec.structs.replace(command, caller=caller, token=token)


async def write(node: RaftNode, command: Command, target: Target, caller: Caller | None = None) -> Answer:
    """Propose ``command`` (on behalf of ``caller``) and answer with its outcome."""
    try:
        return for_result(await node.write(stamped(command, caller)))
    except NODE_ERRORS as exc:
        return for_exception(exc, node, target)


async def put(
    node: RaftNode,
    key: str,
    data: schema.PutRequest,
    token: str | None,
    target: Target,
    caller: Caller | None = None,
) -> Answer:
    """``PUT {prefix}/kv/{key}``: checks, then the write."""
    if (refused := check_key(key) or check_token(token)) is not None:
        return refused
    size = len(data.value.encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        return error(413, Code.TOO_LARGE, f"the value is {size} bytes; at most {MAX_VALUE_BYTES} are allowed")
    lease = 0
    if data.lease is not None:
        parsed = parse_lease_id(data.lease)
        if parsed is None:
            return bad_request(f"lease {data.lease!r} is not a lease id (1 to 16 hex digits)")
        lease = parsed
    check = data.expect is not msgspec.UNSET
    expect = data.expect if isinstance(data.expect, str) else None
    return await write(
        node, Put(key, data.value, check=check, expect=expect, token=token, lease=lease), target, caller
    )


async def confirm_read(node: RaftNode, consistency: str, target: Target) -> Answer | None:
    """None once a read of the given consistency may be served here, else
    the answer (307 to the leader, 503)."""
    if consistency == "stale":
        return None
    try:
        await node.linearizable_barrier()
    except NODE_ERRORS as exc:
        return for_exception(exc, node, target)
    return None


async def read_key(
    node: RaftNode,
    key: str,
    consistency: str,
    target: Target,
    allowed: Callable[[], bool] | None = None,
) -> Answer:
    """``allowed`` (with auth on) asks again, after the read barrier, whether
    the reader may still read: the state read is then the one it checks."""
    if (refused := await confirm_read(node, consistency, target)) is not None:
        return refused
    if allowed is not None and not allowed():
        return forbidden(f"no read permission on {key!r} (any more)")
    found = node.kv.get(key)
    return key_not_found(key) if found is None else Answer(200, key_answer(found))


# -- input ----------------------------------------------------------------------


def check_key(key: str, what: str = "the key") -> Answer | None:
    size = len(key.encode("utf-8"))
    if size == 0:
        return bad_request(f"{what} is empty")
    if size > MAX_KEY_BYTES:
        return bad_request(f"{what} is {size} bytes; at most {MAX_KEY_BYTES} are allowed")
    return None


def check_token(token: str | None) -> Answer | None:
    """An ``Idempotency-Key`` header, if any, must be 1 to 256 bytes (a
    header's value arrives as bytes, each one character here)."""
    if token is not None and not 1 <= len(token) <= schema.MAX_IDEMPOTENCY_KEY_LENGTH:
        return bad_request(f"Idempotency-Key must be 1 to {schema.MAX_IDEMPOTENCY_KEY_LENGTH} bytes")
    return None


# -- server-sent events -----------------------------------------------------------


def sse(name: str, data: Any, event_id: int | None = None) -> bytes:
    """One server-sent event; ``data`` is a value of :mod:`raft_trio.schema`."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: ".encode() + _encoder.encode(data) + b"\n\n"
