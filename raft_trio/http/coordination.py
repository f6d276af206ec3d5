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

from collections.abc import AsyncIterator, Iterator

import trio
from quart import Response, request
from quart_schema import document_response, validate_querystring
from quart_trio import QuartTrio

from .. import schema
from ..kv import (
    MAX_RANGE_LIMIT,
    MAX_TXN_OPS,
    MAX_VALUE_BYTES,
    Change,
    Compare,
    LeaseGrant,
    LeaseRevoke,
    OpDelete,
    OpGet,
    OpPut,
    OpRange,
    Txn,
    TxnOp,
    format_lease_id,
    key_interval,
    parse_lease_id,
    prefix_end,
    prefix_interval,
)
from ..node import RaftNode
from ..node.watches import Selector, WatchCompacted
from ..storage import backup_stream
from ._principal import caller
from ._respond import answered, quart_response
from .answers import (
    NODE_ERRORS,
    REVISION_HEADER,
    Answer,
    Refused,
    Target,
    bad_request,
    check_key,
    check_token,
    confirm_read,
    error,
    for_exception,
    range_item,
    sse,
    write,
)
from .auth import admission_refusal, lease_keys_refusal, refusal, txn_refusal
from .bodies import validate_body

Code = schema.Code


def ended(cut_off: str) -> bytes:
    """The comment that ends a watch served by a node out of touch."""
    return f": ended: this node is out of touch ({cut_off}); watch elsewhere\n\n".encode()


#: A watch stream sends a comment at least this often, so that a client
#: (and any proxy between) tells a quiet watch from a dead connection.
WATCH_KEEPALIVE_S = 5.0
#: Events encoded and written at a time. A revision is never split between
#: a watcher's batches, and one revision may hold many changes (a lease
#: revoke of 100,000 keys): encoded whole it was 12 MB and 0.12 s of the
#: loop for each matching watcher.
WATCH_EVENTS_PER_WRITE = 1000
#: A lease's TTL may be at most this many seconds (etcd's limit).
MAX_LEASE_TTL = 9_000_000_000

# -- converting ---------------------------------------------------------------


def _lease(text: str | None) -> int:
    if text is None:
        return 0
    lease = parse_lease_id(text)
    if lease is None:
        raise Refused(bad_request(f"lease {text!r} is not a lease id (1 to 16 hex digits)"))
    return lease


def _checked_key(key: str, what: str) -> str:
    refused = check_key(key, what)
    if refused is not None:
        raise Refused(refused)
    return key


#: The largest revision or version a compare takes (etcd's int64): the log
#: encodes commands as MessagePack, whose integers end at 64 bits, so a
#: larger one would fail as the command is encoded, after it was accepted.
MAX_COMPARE_INT = 2**63 - 1


def _compare(body: schema.Compare, position: int) -> Compare:
    where = f"compare[{position}]"
    _checked_key(body.key, f"{where}.key")
    value = body.value
    if body.target == "value":
        if not isinstance(value, str):
            raise Refused(bad_request(f"{where}: a compare of the value needs a string value"))
    elif body.target == "exists":
        if not isinstance(value, bool):
            raise Refused(bad_request(f"{where}: a compare of exists needs true or false"))
        if body.op not in ("=", "!="):
            raise Refused(bad_request(f"{where}: exists is compared with = or != only"))
    elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COMPARE_INT:
        raise Refused(
            bad_request(f"{where}: a compare of {body.target} needs an integer from 0 to {MAX_COMPARE_INT}")
        )
    return Compare(body.key, body.target, body.op, value)


def _op(body: schema.Op, where: str) -> TxnOp:
    given = [name for name in ("put", "delete", "get", "range") if getattr(body, name) is not None]
    if len(given) != 1:
        raise Refused(bad_request(f"{where}: an operation is exactly one of put, delete, get or range"))
    if body.put is not None:
        _checked_key(body.put.key, f"{where}.put.key")
        size = len(body.put.value.encode("utf-8"))
        if size > MAX_VALUE_BYTES:
            raise Refused(  # 413, as the single PUT of such a value answers
                error(
                    413,
                    Code.TOO_LARGE,
                    f"{where}.put.value is {size} bytes; at most {MAX_VALUE_BYTES} are allowed",
                )
            )
        return OpPut(body.put.key, body.put.value, _lease(body.put.lease))
    if body.delete is not None:
        return OpDelete(_checked_key(body.delete.key, f"{where}.delete.key"))
    if body.get is not None:
        return OpGet(_checked_key(body.get.key, f"{where}.get.key"))
    assert body.range is not None
    return OpRange(body.range.prefix)


def _branch(bodies: list[schema.Op], name: str) -> list[TxnOp]:
    if len(bodies) > MAX_TXN_OPS:
        raise Refused(bad_request(f"{name} has {len(bodies)} operations; at most {MAX_TXN_OPS} are allowed"))
    ops = [_op(body, f"{name}[{position}]") for position, body in enumerate(bodies)]
    written: set[str] = set()
    for op in ops:
        if isinstance(op, (OpPut, OpDelete)):
            if op.key in written:
                raise Refused(
                    bad_request(f"{name} writes the key {op.key!r} twice (one put or delete per key)")
                )
            written.add(op.key)
    return ops


def txn_command(body: schema.TxnRequest, token: str | None) -> Txn:
    """The state machine's command for a transaction (raises
    :class:`~raft_trio.http.answers.Refused` for invalid input)."""
    if len(body.compare) > MAX_TXN_OPS:
        raise Refused(
            bad_request(f"compare has {len(body.compare)} conditions; at most {MAX_TXN_OPS} are allowed")
        )
    compares = [_compare(compare, position) for position, compare in enumerate(body.compare)]
    return Txn(compares, _branch(body.success, "success"), _branch(body.failure, "failure"), token=token)


def change_events(changes: list[Change], prev_value: bool) -> Iterator[bytes]:
    """The events of ``changes``, WATCH_EVENTS_PER_WRITE at a time: the
    stream writes each piece (and lets the loop run) before it encodes
    the next."""
    for start in range(0, len(changes), WATCH_EVENTS_PER_WRITE):
        piece = changes[start : start + WATCH_EVENTS_PER_WRITE]
        yield b"".join(change_event(change, prev_value) for change in piece)


def change_event(change: Change, prev_value: bool) -> bytes:
    data = schema.WatchChange(
        key=change.key,
        value=change.value if change.kind == "put" and change.value is not None else schema.UNSET,
        create_revision=change.create_revision,
        mod_revision=change.revision,
        version=change.version,
        lease=format_lease_id(change.lease) if change.lease else schema.UNSET,
        prev_value=change.prev_value if prev_value else schema.UNSET,
    )
    return sse(change.kind, data, event_id=change.revision)


# -- routes -------------------------------------------------------------------


def add_coordination_routes(app: QuartTrio, node: RaftNode, prefix: str) -> None:
    def target() -> Target:
        return Target.of_scope(dict(request.scope))

    def idempotency_token() -> str | None:
        token = request.headers.get(schema.IDEMPOTENCY_HEADER)
        if (refused := check_token(token)) is not None:
            raise Refused(refused)
        return token

    @app.get(f"{prefix}/kv")
    @validate_querystring(schema.RangeQuery)
    @document_response(schema.RangeAnswer, 200)
    @document_response(schema.ErrorAnswer, 400)
    @answered
    async def range_keys(query_args: schema.RangeQuery) -> Answer:
        """Keys in key order: those starting with ``prefix``, or from
        ``start`` (inclusive) to ``end`` (exclusive), or every key; a page
        of at most ``limit``; the next page starts ``after`` the last key.
        ``count`` is how many keys match from the page's start on, ``more``
        whether keys beyond this page match. Linearizable unless
        ``consistency=stale``."""
        query = query_args
        if query.prefix is not None and (query.start is not None or query.end is not None):
            return bad_request("give either prefix or start/end, not both")
        if not 1 <= query.limit <= MAX_RANGE_LIMIT:
            return bad_request(f"limit must be 1 to {MAX_RANGE_LIMIT}")
        if query.keys_only and query.count_only:
            return bad_request("give keys_only or count_only, not both")
        if query.prefix is not None:
            start, end = query.prefix, prefix_end(query.prefix)
        else:
            start, end = query.start or "", query.end
        if (refused := await confirm_read(node, query.consistency, target())) is not None:
            return refused
        # After the read barrier: what it allows is what the state read holds.
        if (refused := refusal(request.scope, node, "read", start, end)) is not None:
            return refused
        if query.count_only:
            page = node.kv.range(start, end, after=query.after, limit=0)
            return Answer(200, schema.RangeAnswer([], page.count, page.count > 0, node.kv.revision))
        page = node.kv.range(start, end, after=query.after, limit=query.limit)
        items = [range_item(kv, query.keys_only) for kv in page.kvs]
        return Answer(200, schema.RangeAnswer(items, page.count, page.more, node.kv.revision))

    @app.get(f"{prefix}/watch")
    @validate_querystring(schema.WatchQuery)
    @document_response(schema.CompactedAnswer, 410)
    @document_response(schema.ErrorAnswer, 400)
    async def watch(query_args: schema.WatchQuery) -> Response:
        """Server-sent events, one per change to ``key`` or under
        ``prefix`` (neither: every key), in revision order: ``id`` is the
        change's revision, ``event`` is ``put`` or ``delete``. From
        ``start_revision`` on (default: the next change); a reconnect with
        ``Last-Event-ID: R`` resumes after revision R, with no change lost
        or repeated. 410 when the node no longer holds that revision; a
        watcher that falls that far behind gets an ``error`` event and the
        stream ends. Any node in touch with the cluster serves watches from
        its applied state; one cut off answers a new watch with an ending
        comment alone and ends a quiet one at its next keep-alive (etcd's
        require-leader watches): a watch served by it would wait for
        changes that the rest of the cluster makes without it, as a lock's
        next waiter would for a release. The client resumes elsewhere,
        losing nothing."""
        query = query_args
        if query.prefix is not None and query.key is not None:
            return quart_response(bad_request("give either key or prefix, not both"))
        if query.key is not None:
            if (refused := check_key(query.key)) is not None:
                return quart_response(refused)
            selector = Selector.key(query.key)
            watched = key_interval(query.key)
        else:
            selector = Selector.prefix(query.prefix or "")
            watched = prefix_interval(query.prefix or "")
        if (refused := refusal(request.scope, node, "read", *watched)) is not None:
            return quart_response(refused)
        start = query.start_revision  # 1 to int64, as the model says
        last_seen = request.headers.get("Last-Event-ID")
        if last_seen is not None:
            # At most 19 digits before int(): it refuses more than 4,300
            # (a 500), and no revision passes etcd's int64.
            if not (
                last_seen.isascii()
                and last_seen.isdigit()
                and len(last_seen) <= 19
                and int(last_seen) <= MAX_COMPARE_INT
            ):
                message = "Last-Event-ID must be the revision of the last event received"
                return quart_response(bad_request(message))
            start = int(last_seen) + 1
        if (cut_off := node.out_of_touch()) is not None:
            # A 200 that ends at once, not a 503 (a browser's EventSource
            # gives up for good on an answer not 200), without the node's
            # revision: a client takes a first answer's as where a watch
            # from the next change resumes, and this node's may be old.
            gone = Response(ended(cut_off), content_type="text/event-stream")
            gone.headers["Cache-Control"] = "no-cache"
            return gone
        try:
            watcher = node.watches.open(selector, start)
        except NODE_ERRORS as exc:
            return quart_response(for_exception(exc, node, target()))
        role = node.role_name
        revision = node.kv.revision
        # Read here: the stream runs outside Quart's request context.
        where = target()

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
                        if (cut_off := node.out_of_touch()) is not None:
                            yield ended(cut_off)
                            return
                        yield b": keep-alive\n\n"
                        continue
                    for events in change_events(changes, query.prev_value):
                        yield events
            except WatchCompacted as exc:
                yield sse("error", for_exception(exc, node, where).body)
            except NODE_ERRORS:
                return  # the node stops (WatchClosed)
            finally:
                node.watches.release(watcher)

        response = Response(stream(), content_type="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.headers[REVISION_HEADER] = str(revision)
        response.headers["X-Raft-Role"] = role
        response.timeout = None
        return response

    @app.post(f"{prefix}/txn")
    @validate_body(schema.TxnRequest)
    @document_response(schema.TxnAnswer, 200)
    @document_response(schema.ErrorAnswer, 400)
    @document_response(schema.ErrorAnswer, 404)
    @document_response(schema.UnavailableAnswer, 503)
    @document_response(schema.UnavailableAnswer, 507)
    @answered
    async def txn(data: schema.TxnRequest) -> Answer:
        """A transaction: if every ``compare`` holds, run ``success`` in
        order, else ``failure``; all in one log entry, at one revision, all
        or nothing. Each operation is one of ``{"put": {"key", "value",
        "lease"?}}``, ``{"delete": {"key"}}``, ``{"get": {"key"}}``,
        ``{"range": {"prefix"}}``."""
        try:
            command = txn_command(data, idempotency_token())
        except Refused as exc:
            return exc.answer
        if (refused := txn_refusal(request.scope, node, command)) is not None:
            return refused
        return await write(node, command, target(), caller(request.scope))

    # -- backups --------------------------------------------------------------

    @app.get(f"{prefix}/snapshot")
    async def save_snapshot() -> Response:
        """A backup: the state machine (keys with their revisions, leases,
        remembered idempotency keys) at a linearizable point, streamed from
        the leader as one file that ends with its SHA-256. ``raft-trio
        snapshot save`` writes it; ``raft-trio snapshot restore`` makes a
        new cluster's data directories from it. Needs the admin token when
        one is set."""
        try:
            snapshot = await node.backup()
        except NODE_ERRORS as exc:
            return quart_response(for_exception(exc, node, target()))
        # After the read barrier: it holds the password hashes and the token key.
        if (refused := admission_refusal(request.scope, node)) is not None:
            return quart_response(refused)
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
    @validate_body(schema.LeaseRequest)
    @document_response(schema.LeaseAnswer, 200)
    @document_response(schema.ErrorAnswer, 400)
    @document_response(schema.UnavailableAnswer, 503)
    @answered
    async def grant_lease(data: schema.LeaseRequest) -> Answer:
        """Grant a lease of ``ttl`` seconds (at least the node's minimum,
        one and a half election timeouts); ``ttl`` in the answer is what
        was granted. Keys put with it go when it expires or is revoked."""
        if not 1 <= data.ttl <= MAX_LEASE_TTL:
            return bad_request(f"ttl must be 1 to {MAX_LEASE_TTL} seconds")
        try:
            token = idempotency_token()
        except Refused as exc:
            return exc.answer
        grant = LeaseGrant(max(data.ttl, node.minimum_lease_ttl), token=token)
        return await write(node, grant, target(), caller(request.scope))

    def lease_id(text: str) -> int:
        lease = parse_lease_id(text)
        if lease is None:
            raise Refused(bad_request(f"{text!r} is not a lease id (1 to 16 hex digits)"))
        return lease

    @app.post(f"{prefix}/leases/<lease>/keepalive")
    @document_response(schema.LeaseAnswer, 200)
    @document_response(schema.ErrorAnswer, 404)
    @answered
    async def keep_lease_alive(lease: str) -> Answer:
        """Extend a lease to its full TTL from now (the leader answers once
        a quorum confirmed it still leads). 404 once it expired or was
        revoked."""
        scope = request.scope

        def still_may(keys: list[str]) -> None:
            # After the barrier, the gate's check again (raises to refuse).
            if (refused := lease_keys_refusal(scope, node, "write", keys)) is not None:
                raise Refused(refused)

        try:
            number = lease_id(lease)
            ttl = await node.keep_lease_alive(number, still_may)
        except NODE_ERRORS as exc:
            return for_exception(exc, node, target())
        return Answer(200, schema.LeaseAnswer(format_lease_id(number), ttl))

    @app.get(f"{prefix}/leases/<lease>")
    @document_response(schema.LeaseInfoAnswer, 200)
    @document_response(schema.ErrorAnswer, 404)
    @answered
    async def lease_info(lease: str) -> Answer:
        """A lease's seconds left (by the leader's clock), granted TTL and
        keys. With auth on, 403 unless the caller may read every key
        attached (as etcd's LeaseTimeToLive)."""
        try:
            number = lease_id(lease)
            info = await node.lease_info(number)
        except NODE_ERRORS as exc:
            return for_exception(exc, node, target())
        # After the read barrier, on the keys as the answer lists them.
        if (refused := lease_keys_refusal(request.scope, node, "read", info.keys)) is not None:
            return refused
        answer = schema.LeaseInfoAnswer(
            format_lease_id(number), int(info.remaining), info.granted_ttl, info.keys
        )
        return Answer(200, answer)

    @app.delete(f"{prefix}/leases/<lease>")
    @document_response(schema.LeaseRevokedAnswer, 200)
    @document_response(schema.ErrorAnswer, 404)
    @document_response(schema.UnavailableAnswer, 503)
    @answered
    async def revoke_lease(lease: str) -> Answer:
        """Revoke a lease: its keys are deleted, all at one revision."""
        try:
            command = LeaseRevoke(lease_id(lease), token=idempotency_token())
        except Refused as exc:
            return exc.answer
        return await write(node, command, target(), caller(request.scope))
