"""The coordination API: ranges of keys, watches, transactions and
leases (the habits etcd's v3 API and Consul's KV set).

- ``GET {prefix}/kv?prefix=P`` (or ``start``/``end``): keys in order, in
  pages (``limit``, continued ``after`` the last key).
- ``GET {prefix}/watch``: every change to a key or under a prefix as
  server-sent events, from any revision the node's history still holds,
  on any node.
- ``POST {prefix}/txn``: compares, then one branch of puts, deletes, gets
  and ranges, all in one log entry.
- ``{prefix}/leases``: grant, keep alive, query, revoke.
- ``GET {prefix}/snapshot``: a backup of the state machine, streamed from
  the leader (the admin token guards it: it holds every key).

Limits (all documented in docs/api.md): at most ``MAX_RANGE_LIMIT`` keys
and about 4 MiB of values per page, ``MAX_TXN_OPS`` compares and as many
operations per branch, the node's watchers and history (see
``raft_trio.node.watches``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

import msgspec
import trio
from quart import Response, request
from quart_schema import validate_querystring, validate_request, validate_response
from quart_trio import QuartTrio

from ..kv import (
    DEFAULT_RANGE_LIMIT,
    MAX_RANGE_LIMIT,
    MAX_TXN_OPS,
    MAX_VALUE_BYTES,
    Caller,
    Change,
    Compare,
    Deleted,
    Got,
    KeyValue,
    LeaseGrant,
    LeaseGranted,
    LeaseNotFound,
    LeaseRevoke,
    LeaseRevoked,
    OpDelete,
    OpGet,
    OpPut,
    OpRange,
    Ranged,
    Txn,
    TxnDone,
    TxnOp,
    Written,
    format_lease_id,
    key_interval,
    parse_lease_id,
    prefix_end,
    prefix_interval,
)
from ..node import LeaseMissing, NotLeaderError, RaftNode, ReadAborted
from ..node.watches import Selector, TooManyWatchers, WatchClosed, WatchCompacted
from ..storage import backup_stream
from ._answers import (
    REVISION_HEADER,
    ErrorAnswer,
    Indeterminate,
    check_key,
    error,
    idempotency_token,
    key_answer,
    not_leader,
    retry_later,
    sse,
    write,
)
from ._principal import caller
from .auth import refusal, txn_refusal

#: A watch stream sends a comment at least this often, so that a client
#: (and any proxy between) tells a quiet watch from a dead connection.
WATCH_KEEPALIVE_S = 5.0
#: A lease's TTL may be at most this many seconds (etcd's limit).
MAX_LEASE_TTL = 9_000_000_000

# -- models: what /openapi.json documents ------------------------------------


class RangeQuery(msgspec.Struct, forbid_unknown_fields=True):
    prefix: str | None = None
    start: str | None = None
    end: str | None = None
    limit: int = DEFAULT_RANGE_LIMIT
    after: str | None = None
    keys_only: bool = False
    count_only: bool = False
    consistency: Literal["linearizable", "stale"] = "linearizable"


class RangeItem(msgspec.Struct, omit_defaults=True):
    key: str
    create_revision: int
    mod_revision: int
    version: int
    value: str | msgspec.UnsetType = msgspec.UNSET
    lease: str | None = None


class RangeAnswer(msgspec.Struct):
    kvs: list[RangeItem]
    count: int
    more: bool
    revision: int


class WatchQuery(msgspec.Struct, forbid_unknown_fields=True):
    prefix: str | None = None
    key: str | None = None
    start_revision: int | None = None
    prev_value: bool = False


class Compacted(msgspec.Struct):
    error: str
    compact_revision: int


class CompareBody(msgspec.Struct, forbid_unknown_fields=True):
    key: str
    target: Literal["value", "version", "create_revision", "mod_revision", "exists"]
    op: Literal["=", "!=", "<", ">"]
    value: str | int | bool


class PutOp(msgspec.Struct, forbid_unknown_fields=True):
    key: str
    value: str
    lease: str | None = None


class KeyOp(msgspec.Struct, forbid_unknown_fields=True):
    key: str


class RangeOp(msgspec.Struct, forbid_unknown_fields=True):
    prefix: str


class OpBody(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one of ``put``, ``delete``, ``get`` or ``range``."""

    put: PutOp | None = None
    delete: KeyOp | None = None
    get: KeyOp | None = None
    range: RangeOp | None = None


class TxnBody(msgspec.Struct, forbid_unknown_fields=True):
    """If every compare holds, run ``success`` in order, else ``failure``;
    all in one log entry, at one revision."""

    compare: list[CompareBody] = []
    success: list[OpBody] = []
    failure: list[OpBody] = []


class TxnAnswer(msgspec.Struct):
    succeeded: bool
    #: One per operation run: the answer the single-key or range request
    #: would give.
    results: list[dict[str, Any]]
    revision: int


class LeaseBody(msgspec.Struct, forbid_unknown_fields=True):
    ttl: int


class LeaseAnswer(msgspec.Struct):
    id: str
    ttl: int


class LeaseInfoAnswer(msgspec.Struct):
    id: str
    #: Seconds left before the leader revokes it.
    ttl: int
    granted_ttl: int
    keys: list[str]


class LeaseRevokedAnswer(msgspec.Struct):
    id: str
    #: The keys it deleted.
    keys: list[str]
    index: int


#: The models nested in others (see ``raft_trio.http.app.NESTED_MODELS``).
NESTED_MODELS: tuple[type[msgspec.Struct], ...] = (RangeItem, CompareBody, OpBody, PutOp, KeyOp, RangeOp)

# -- converting ---------------------------------------------------------------


class BadRequest(Exception):
    """A request that is well-formed JSON but asks for something invalid."""


def _lease(text: str | None) -> int:
    if text is None:
        return 0
    lease = parse_lease_id(text)
    if lease is None:
        raise BadRequest(f"lease {text!r} is not a lease id (1 to 16 hex digits)")
    return lease


def _checked_key(key: str, what: str) -> str:
    bad = check_key(key, what)
    if bad is not None:
        raise BadRequest(bad[0]["error"])
    return key


def _compare(body: CompareBody, position: int) -> Compare:
    where = f"compare[{position}]"
    _checked_key(body.key, f"{where}.key")
    value = body.value
    if body.target == "value":
        if not isinstance(value, str):
            raise BadRequest(f"{where}: a compare of the value needs a string value")
    elif body.target == "exists":
        if not isinstance(value, bool):
            raise BadRequest(f"{where}: a compare of exists needs true or false")
        if body.op not in ("=", "!="):
            raise BadRequest(f"{where}: exists is compared with = or != only")
    elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"{where}: a compare of {body.target} needs an integer of at least 0")
    return Compare(body.key, body.target, body.op, value)


def _op(body: OpBody, where: str) -> TxnOp:
    given = [name for name in ("put", "delete", "get", "range") if getattr(body, name) is not None]
    if len(given) != 1:
        raise BadRequest(f"{where}: an operation is exactly one of put, delete, get or range")
    if body.put is not None:
        _checked_key(body.put.key, f"{where}.put.key")
        size = len(body.put.value.encode("utf-8"))
        if size > MAX_VALUE_BYTES:
            raise BadRequest(f"{where}.put.value is {size} bytes; at most {MAX_VALUE_BYTES} are allowed")
        return OpPut(body.put.key, body.put.value, _lease(body.put.lease))
    if body.delete is not None:
        return OpDelete(_checked_key(body.delete.key, f"{where}.delete.key"))
    if body.get is not None:
        return OpGet(_checked_key(body.get.key, f"{where}.get.key"))
    assert body.range is not None
    return OpRange(body.range.prefix)


def _branch(bodies: list[OpBody], name: str) -> list[TxnOp]:
    if len(bodies) > MAX_TXN_OPS:
        raise BadRequest(f"{name} has {len(bodies)} operations; at most {MAX_TXN_OPS} are allowed")
    ops = [_op(body, f"{name}[{position}]") for position, body in enumerate(bodies)]
    written: set[str] = set()
    for op in ops:
        if isinstance(op, (OpPut, OpDelete)):
            if op.key in written:
                raise BadRequest(f"{name} writes the key {op.key!r} twice (one put or delete per key)")
            written.add(op.key)
    return ops


def txn_command(body: TxnBody, token: str | None, stamp: Caller | None = None) -> Txn:
    if len(body.compare) > MAX_TXN_OPS:
        raise BadRequest(f"compare has {len(body.compare)} conditions; at most {MAX_TXN_OPS} are allowed")
    compares = [_compare(compare, position) for position, compare in enumerate(body.compare)]
    success, failure = _branch(body.success, "success"), _branch(body.failure, "failure")
    return Txn(compares, success, failure, token=token, caller=stamp)


def _range_item(kv: KeyValue, keys_only: bool) -> RangeItem:
    return RangeItem(
        kv.key,
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        msgspec.UNSET if keys_only else kv.value,
        format_lease_id(kv.lease) if kv.lease else None,
    )


def txn_result(result: Written | Deleted | Got | Ranged, revision: int) -> dict[str, Any]:
    """One result as the single-key or range request would answer it."""
    if isinstance(result, Written):
        return msgspec.to_builtins(key_answer(result))  # type: ignore[no-any-return]
    if isinstance(result, Deleted):
        return {"key": result.key, "deleted": result.deleted, "index": result.index}
    if isinstance(result, Got):
        if result.kv is None:
            return {"key": result.key, "error": f"key {result.key!r} not found"}
        return msgspec.to_builtins(key_answer(result.kv))  # type: ignore[no-any-return]
    items = [_range_item(kv, keys_only=False) for kv in result.kvs]
    answer = RangeAnswer(items, result.count, result.more, revision)
    return msgspec.to_builtins(answer)  # type: ignore[no-any-return]


def change_event(change: Change, prev_value: bool) -> bytes:
    data: dict[str, Any] = {"key": change.key}
    if change.kind == "put":
        data["value"] = change.value
    data["create_revision"] = change.create_revision
    data["mod_revision"] = change.revision
    data["version"] = change.version
    if change.lease:
        data["lease"] = format_lease_id(change.lease)
    if prev_value:
        data["prev_value"] = change.prev_value
    return sse(change.kind, data, event_id=change.revision)


# -- routes -------------------------------------------------------------------


def add_coordination_routes(app: QuartTrio, node: RaftNode, prefix: str) -> None:
    async def confirm_read(consistency: str) -> Any:
        """None once a linearizable read may be served here, else the
        answer (307 to the leader, 503)."""
        if consistency == "stale":
            return None
        try:
            await node.linearizable_barrier()
        except NotLeaderError as exc:
            return not_leader(node, exc)
        except ReadAborted as exc:
            return retry_later(str(exc))
        return None

    @app.get(f"{prefix}/kv")
    @validate_querystring(RangeQuery)
    @validate_response(RangeAnswer, 200)
    @validate_response(ErrorAnswer, 400)
    async def range_keys(query_args: RangeQuery) -> Any:
        """Keys in key order: those starting with ``prefix``, or from
        ``start`` (inclusive) to ``end`` (exclusive), or every key; a page
        of at most ``limit``; the next page starts ``after`` the last key.
        ``count`` is how many keys match from the page's start on, ``more``
        whether keys beyond this page match. Linearizable unless
        ``consistency=stale``."""
        query = query_args
        if query.prefix is not None and (query.start is not None or query.end is not None):
            return error(400, "give either prefix or start/end, not both")
        if not 1 <= query.limit <= MAX_RANGE_LIMIT:
            return error(400, f"limit must be 1 to {MAX_RANGE_LIMIT}")
        if query.keys_only and query.count_only:
            return error(400, "give keys_only or count_only, not both")
        if query.prefix is not None:
            start, end = query.prefix, prefix_end(query.prefix)
        else:
            start, end = query.start or "", query.end
        if (answer := await confirm_read(query.consistency)) is not None:
            return answer
        # After the read barrier: what it allows is what the state read holds.
        if (denied := refusal(request.scope, node, "read", start, end)) is not None:
            return denied
        if query.count_only:
            page = node.kv.range(start, end, after=query.after, limit=0)
            return RangeAnswer([], page.count, page.count > 0, node.kv.revision), 200
        page = node.kv.range(start, end, after=query.after, limit=query.limit)
        items = [_range_item(kv, query.keys_only) for kv in page.kvs]
        return RangeAnswer(items, page.count, page.more, node.kv.revision), 200

    @app.get(f"{prefix}/watch")
    @validate_querystring(WatchQuery)
    @validate_response(Compacted, 410)
    @validate_response(ErrorAnswer, 400)
    async def watch(query_args: WatchQuery) -> Any:
        """Server-sent events, one per change to ``key`` or under
        ``prefix`` (neither: every key), in revision order: ``id`` is the
        change's revision, ``event`` is ``put`` or ``delete``. From
        ``start_revision`` on (default: the next change); a reconnect with
        ``Last-Event-ID: R`` resumes after revision R, with no change lost
        or repeated. 410 when the node no longer holds that revision; a
        watcher that falls that far behind gets an ``error`` event and the
        stream ends. Any node serves watches from its applied state."""
        query = query_args
        if query.prefix is not None and query.key is not None:
            return error(400, "give either key or prefix, not both")
        if query.key is not None:
            if (bad := check_key(query.key)) is not None:
                return bad
            selector = Selector.key(query.key)
            watched = key_interval(query.key)
        else:
            selector = Selector.prefix(query.prefix or "")
            watched = prefix_interval(query.prefix or "")
        if (denied := refusal(request.scope, node, "read", *watched)) is not None:
            return denied
        start = query.start_revision
        if start is not None and start < 1:
            return error(400, "start_revision must be at least 1")
        last_seen = request.headers.get("Last-Event-ID")
        if last_seen is not None:
            if not last_seen.isdigit():
                return error(400, "Last-Event-ID must be the revision of the last event received")
            start = int(last_seen) + 1
        try:
            watcher = node.watches.open(selector, start)
        except WatchCompacted as exc:
            return error(410, str(exc), compact_revision=exc.compact_revision)
        except TooManyWatchers as exc:
            return retry_later(str(exc))
        except WatchClosed as exc:
            return retry_later(str(exc))
        role = node.role_name
        revision = node.kv.revision

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield (
                    f": watching from revision {watcher.position}, served by {role} {node.id} "
                    f"from its applied state (revision {revision})\n\n"
                ).encode()
                while True:
                    with trio.move_on_after(WATCH_KEEPALIVE_S) as waited:
                        changes = await watcher.next_changes()
                    if waited.cancelled_caught:
                        yield b": keep-alive\n\n"
                        continue
                    yield b"".join(change_event(change, query.prev_value) for change in changes)
            except WatchCompacted as exc:
                yield sse("error", {"error": str(exc), "compact_revision": exc.compact_revision})
            except WatchClosed:
                return
            finally:
                node.watches.release(watcher)

        response = Response(stream(), content_type="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.headers[REVISION_HEADER] = str(revision)
        response.headers["X-Raft-Role"] = role
        response.timeout = None
        return response

    @app.post(f"{prefix}/txn")
    @validate_request(TxnBody)
    @validate_response(TxnAnswer, 200)
    @validate_response(ErrorAnswer, 400)
    @validate_response(ErrorAnswer, 404)
    @validate_response(Indeterminate, 503)
    @validate_response(Indeterminate, 507)
    async def txn(data: TxnBody) -> Any:
        """A transaction: if every ``compare`` holds, run ``success`` in
        order, else ``failure``; all in one log entry, at one revision, all
        or nothing. Each operation is one of ``{"put": {"key", "value",
        "lease"?}}``, ``{"delete": {"key"}}``, ``{"get": {"key"}}``,
        ``{"range": {"prefix"}}``."""
        token = idempotency_token()
        if isinstance(token, tuple):
            return token
        try:
            command = txn_command(data, token, caller(request.scope))
        except BadRequest as exc:
            return error(400, str(exc))
        if (denied := txn_refusal(request.scope, node, command)) is not None:
            return denied
        result = await write(node, command)
        if isinstance(result, TxnDone):
            results = [txn_result(item, result.revision) for item in result.results]
            return TxnAnswer(result.succeeded, results, result.revision), 200
        if isinstance(result, LeaseNotFound):
            return error(404, f"lease {format_lease_id(result.lease)} not found (expired or revoked)")
        return result

    # -- backups --------------------------------------------------------------

    @app.get(f"{prefix}/snapshot")
    async def save_snapshot() -> Any:
        """A backup: the state machine (keys with their revisions, leases,
        remembered idempotency keys) at a linearizable point, streamed from
        the leader as one file that ends with its SHA-256. ``raft-trio
        snapshot save`` writes it; ``raft-trio snapshot restore`` makes a
        new cluster's data directories from it. Needs the admin token when
        one is set."""
        try:
            snapshot = await node.backup()
        except NotLeaderError as exc:
            return not_leader(node, exc)
        except ReadAborted as exc:
            return retry_later(str(exc))
        pieces = backup_stream(
            snapshot.meta.index, snapshot.meta.term, snapshot.data, node.cluster_id, node.id
        )

        async def body() -> AsyncIterator[bytes]:
            for piece in pieces:
                yield piece

        response = Response(body(), content_type="application/octet-stream")
        response.headers["Content-Disposition"] = (
            f'attachment; filename="raft-trio-{snapshot.meta.index}.snapshot"'
        )
        response.headers[REVISION_HEADER] = str(snapshot.meta.index)
        response.timeout = None
        return response

    # -- leases ---------------------------------------------------------------

    @app.post(f"{prefix}/leases")
    @validate_request(LeaseBody)
    @validate_response(LeaseAnswer, 200)
    @validate_response(ErrorAnswer, 400)
    @validate_response(Indeterminate, 503)
    async def grant_lease(data: LeaseBody) -> Any:
        """Grant a lease of ``ttl`` seconds (at least the node's minimum,
        one and a half election timeouts); ``ttl`` in the answer is what
        was granted. Keys put with it go when it expires or is revoked."""
        if not 1 <= data.ttl <= MAX_LEASE_TTL:
            return error(400, f"ttl must be 1 to {MAX_LEASE_TTL} seconds")
        token = idempotency_token()
        if isinstance(token, tuple):
            return token
        ttl = max(data.ttl, node.minimum_lease_ttl)
        result = await write(node, LeaseGrant(ttl, token=token, caller=caller(request.scope)))
        if isinstance(result, LeaseGranted):
            return LeaseAnswer(format_lease_id(result.id), result.ttl), 200
        return result

    def lease_id(text: str) -> int:
        lease = parse_lease_id(text)
        if lease is None:
            raise BadRequest(f"{text!r} is not a lease id (1 to 16 hex digits)")
        return lease

    @app.post(f"{prefix}/leases/<lease>/keepalive")
    @validate_response(LeaseAnswer, 200)
    @validate_response(ErrorAnswer, 404)
    async def keep_lease_alive(lease: str) -> Any:
        """Extend a lease to its full TTL from now (the leader answers once
        a quorum confirmed it still leads). 404 once it expired or was
        revoked."""
        try:
            ttl = await node.keep_lease_alive(lease_id(lease))
        except BadRequest as exc:
            return error(400, str(exc))
        except NotLeaderError as exc:
            return not_leader(node, exc)
        except ReadAborted as exc:
            return retry_later(str(exc))
        except LeaseMissing as exc:
            return error(404, str(exc))
        return LeaseAnswer(lease, ttl), 200

    @app.get(f"{prefix}/leases/<lease>")
    @validate_response(LeaseInfoAnswer, 200)
    @validate_response(ErrorAnswer, 404)
    async def lease_info(lease: str) -> Any:
        """A lease's seconds left (by the leader's clock), granted TTL and
        keys."""
        try:
            info = await node.lease_info(lease_id(lease))
        except BadRequest as exc:
            return error(400, str(exc))
        except NotLeaderError as exc:
            return not_leader(node, exc)
        except ReadAborted as exc:
            return retry_later(str(exc))
        except LeaseMissing as exc:
            return error(404, str(exc))
        return LeaseInfoAnswer(lease, int(info.remaining), info.granted_ttl, info.keys), 200

    @app.delete(f"{prefix}/leases/<lease>")
    @validate_response(LeaseRevokedAnswer, 200)
    @validate_response(ErrorAnswer, 404)
    @validate_response(Indeterminate, 503)
    async def revoke_lease(lease: str) -> Any:
        """Revoke a lease: its keys are deleted, all at one revision."""
        try:
            parsed = lease_id(lease)
        except BadRequest as exc:
            return error(400, str(exc))
        token = idempotency_token()
        if isinstance(token, tuple):
            return token
        result = await write(node, LeaseRevoke(parsed, token=token, caller=caller(request.scope)))
        if isinstance(result, LeaseRevoked):
            if not result.found:
                return error(404, f"lease {lease} not found (expired or revoked)")
            return LeaseRevokedAnswer(format_lease_id(result.id), result.keys, result.index), 200
        return result
