"""The replicated state machine: a sorted key-value store with revisions,
transactions, leases and exactly-once retries. No I/O: commands in,
results out, snapshots as bytes.

Every replica applies the same committed commands in the same order and
reaches the same state, so everything here is deterministic: time enters
only as the leader's clock reading carried inside each command (``ts``),
which is what expires remembered idempotency keys. (Lease expiry is
decided by the leader outside the state machine and arrives here as a
``LeaseRevoke`` entry, so every replica deletes the same keys at the same
revision.)

Exactly-once retries (the dissertation's client sessions, §6.3, in the form
HTTP clients know as ``Idempotency-Key``): a command carrying a token whose
result is remembered is not applied again; the first result is returned,
if the command asks for what the first one did (the session keeps the
request's fingerprint; another request under the token is refused).
The table is part of the replicated state (and of snapshots), so a retry
that reaches a new leader is recognised too. It is bounded: at most
``max_sessions`` tokens and ``max_session_bytes`` of remembered answers
(a transaction's answer holds what it read: without a bound in bytes, a
reader's small requests made every snapshot gigabytes), oldest forgotten
first, and each is forgotten ``session_ttl_ms`` after it was first
applied.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
from collections.abc import Collection
from typing import cast

import msgspec
from sortedcontainers import SortedDict

from ._auth_commands import ROOT, AuthCommand, Caller, PermissionDenied, UserDelete
from ._auth_state import AuthSnapshot, AuthState
from ._commands import (
    DEFAULT_RANGE_LIMIT,
    MAX_RANGE_LIMIT,
    CasFailed,
    Command,
    Compare,
    Delete,
    Deleted,
    Got,
    KeyReused,
    KeyValue,
    LeaseCheckpoint,
    LeaseGrant,
    LeaseGranted,
    LeaseNotFound,
    LeaseRevoke,
    LeaseRevoked,
    LogCommand,
    OpDelete,
    OpGet,
    OpPut,
    OpRange,
    Put,
    Ranged,
    Result,
    Started,
    Txn,
    TxnDone,
    Written,
    format_lease_id,
    request_fingerprint,
)
from ._history import Change, History
from ._keys import prefix_end
from ._permissions import Permissions


@dataclasses.dataclass
class Lease:
    """A lease as the replicated state knows it: its granted TTL and the
    keys attached. How long it has left is the leader's business; a
    leader records it now and then (:class:`LeaseCheckpoint`) for the next."""

    id: int
    ttl: int
    keys: set[str] = dataclasses.field(default_factory=set)
    #: What a leader last recorded it had left, in milliseconds (0: none
    #: since its grant or its last keep-alive: a full TTL).
    remaining_ms: int = 0


@dataclasses.dataclass(frozen=True)
class RangePage:
    kvs: list[KeyValue]
    #: Keys matching the request (from its continuation point on), on
    #: every page, not only this one.
    count: int
    #: Whether keys beyond this page match.
    more: bool


#: A range page ends after this many bytes of values (at least one key):
#: values are up to 1 MiB each, so a key count alone does not bound an answer.
MAX_RANGE_PAGE_BYTES = 4 << 20

#: The remembered answers of idempotency keys, in all (their encodings):
#: part of every snapshot, and of every replica's memory.
MAX_SESSION_BYTES = 64 << 20


class _Session(msgspec.Struct, frozen=True, array_like=True):
    token: str
    ts: int
    result: Result
    #: The request's :func:`request_fingerprint` (empty: remembered by a
    #: version that kept none; any request under the token is its retry).
    fingerprint: bytes = b""
    #: Who asked (``""``: nobody logged in, or a version that kept none):
    #: a user's remembered answers go with the user.
    user: str = ""


def _kept_of(result: Result) -> Result:
    """What a session keeps of ``result`` to answer a retry: not the values
    no answer needs again. A put's value is the retry's own (the same
    request), and no answer gives a deleted key's value. Kept, a session
    held them for its ten minutes, in memory and in every snapshot: keys
    deleted (with the Idempotency-Key the client sends) to free a full
    disk gave no space back until then."""
    if isinstance(result, Written):
        return msgspec.structs.replace(result, value="")
    if isinstance(result, Deleted):
        return msgspec.structs.replace(result, prev_value=None)
    if isinstance(result, TxnDone):
        kept = [
            msgspec.structs.replace(r, prev_value=None) if isinstance(r, Deleted) else r
            for r in result.results
        ]
        return msgspec.structs.replace(result, results=kept)
    return result


class _Snapshot(msgspec.Struct, frozen=True):
    """The state machine's snapshot. ``data`` is the first format's
    (key -> (value, index)), read but never written."""

    applied: int
    sessions: list[_Session]
    data: dict[str, tuple[str, int]] | None = None
    #: Encoded as arrays: key, value, create_revision, mod_revision,
    #: version, lease.
    kvs: list[KeyValue] = []
    #: lease id, granted TTL (its keys are those naming it in ``kvs``)
    leases: list[tuple[int, int]] = []
    #: Members that have started (:class:`Started`).
    started: list[str] = []
    #: Users, roles and auth settings (None: never configured).
    auth: AuthSnapshot | None = None
    #: Lease id -> the milliseconds a leader last recorded it had left
    #: (:class:`LeaseCheckpoint`), for those with a record.
    lease_remaining: dict[int, int] = {}


_snapshot_decoder: msgspec.msgpack.Decoder[_Snapshot] = msgspec.msgpack.Decoder(_Snapshot)

#: Mixed into the signing key of a restored cluster (:func:`with_new_signing_key`).
_RESTORED_LABEL = b"raft-trio-restored-signing-key-v1\0"


def for_restored_cluster(data: bytes, cluster_id: str, revision: int | None = None) -> bytes:
    """The state machine snapshot ``data`` as a restored cluster starts
    from it: a signing key of its own (:func:`with_new_signing_key`), no
    member recorded as started (its members are new incarnations; one
    restored late is then a voter that has not started, and one restored
    again after it ran is refused), no lease's time left recorded (the old
    cluster may have answered keep-alives after the backup, which cleared
    those records there: every lease gets a full TTL, as the first leader
    of the old cluster gave it), and standing at ``revision`` if given
    (``snapshot restore --bump-revision``: later than the backup's, so
    that the new cluster's revisions, fencing tokens among them, pass every
    one the old cluster gave out after its backup; the keys keep theirs)."""
    data = with_new_signing_key(data, cluster_id)
    state = _snapshot_decoder.decode(data) if data else _Snapshot(applied=0, sessions=[])
    if revision is not None and revision < state.applied:
        raise ValueError(f"revision {revision} is before the snapshot's {state.applied}")
    moved = revision is not None and revision != state.applied
    if not state.started and not state.lease_remaining and not moved:
        return data
    applied = state.applied if revision is None else revision
    return msgspec.msgpack.encode(
        msgspec.structs.replace(state, started=[], lease_remaining={}, applied=applied)
    )


def with_new_signing_key(data: bytes, salt: str) -> bytes:
    """The state machine snapshot ``data`` with its token-signing key (if
    auth was ever enabled) replaced by one derived from the old key and
    ``salt`` (the new cluster's id), for a restore: a restored cluster is
    a new cluster, and the tokens of the one the backup came from are not
    valid there. Every member restored with the same ``salt`` derives the
    same key, so the members agree without talking to each other."""
    if not data:
        return data
    state = _snapshot_decoder.decode(data)
    if state.auth is None or not state.auth.signing_key:
        return data
    key = hmac.new(state.auth.signing_key, _RESTORED_LABEL + salt.encode(), hashlib.sha256).digest()
    auth = msgspec.structs.replace(state.auth, signing_key=key)
    return msgspec.msgpack.encode(msgspec.structs.replace(state, auth=auth))


class KeyValueStore:
    def __init__(
        self,
        max_sessions: int = 100_000,
        session_ttl_ms: int = 10 * 60 * 1000,
        history: History | None = None,
        max_session_bytes: int = MAX_SESSION_BYTES,
    ) -> None:
        self.max_sessions = max_sessions
        self.max_session_bytes = max_session_bytes
        self.session_ttl_ms = session_ttl_ms
        self.history = history if history is not None else History()
        #: key -> the key as it stands (an immutable KeyValue, handed out as is)
        self._data: SortedDict[str, KeyValue] = SortedDict()
        self.leases: dict[int, Lease] = {}
        self.applied_index = 0
        self._sessions: collections.OrderedDict[str, _Session] = collections.OrderedDict()
        #: What each remembered answer costs (its encoding's length), and in all.
        self._session_sizes: dict[str, int] = {}
        self.session_bytes = 0
        #: Members a leader saw acknowledge entries (:class:`Started`).
        self.started: set[str] = set()
        #: Users, roles and grants, and who may do what by them.
        self.auth = AuthState()
        self.permissions = Permissions(self.auth)
        #: Characters of every key and value held: about the size of the
        #: next snapshot (what the space guard keeps room for).
        self.size = 0

    # -- reads ---------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The revision this replica's state stands at: the last applied
        log index."""
        return self.applied_index

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> KeyValue | None:
        return self._data.get(key)

    def range(
        self,
        start: str = "",
        end: str | None = None,
        *,
        after: str | None = None,
        limit: int | None = None,
        max_bytes: int = MAX_RANGE_PAGE_BYTES,
    ) -> RangePage:
        """The keys in ``[start, end)`` (``end`` None: to the last key) in
        key order, from just after ``after`` on if given: at most ``limit``
        of them and about ``max_bytes`` of values (at least one)."""
        data = self._data
        low = data.bisect_left(start)
        if after is not None:
            low = max(low, data.bisect_right(after))
        high = len(data) if end is None else data.bisect_left(end)
        count = max(0, high - low)
        kvs: list[KeyValue] = []
        size = 0
        stop = high if limit is None else min(high, low + limit)
        for key in data.islice(low, max(low, stop)):
            record = data[key]
            if kvs and size + len(record.value) > max_bytes:
                break
            size += len(record.value)
            kvs.append(record)
        return RangePage(kvs, count, len(kvs) < count)

    def remembered(self, command: Command) -> Result | None:
        """What a command whose token was applied already answers: the
        first result for a retry of the same request, :class:`KeyReused`
        for another request under that token; None: not applied yet."""
        if command.token is None:
            return None
        session = self._sessions.get(command.token)
        if session is None:
            return None
        return self._answer_again(session, request_fingerprint(command), command)

    def _answer_again(self, session: _Session, fingerprint: bytes, command: Command) -> Result:
        if session.fingerprint and session.fingerprint != fingerprint:
            return KeyReused(self.applied_index)
        result = session.result
        if session.fingerprint and isinstance(result, Written) and isinstance(command, Put):
            # The retry is the same request (its fingerprint): its value is
            # the one written, which the session did not keep.
            return msgspec.structs.replace(result, value=command.value)
        return result

    # -- applying the log ----------------------------------------------------

    def apply(self, index: int, command: LogCommand, *, answered: bool = True) -> Result | None:
        """Apply the committed command at log ``index`` (None for a
        :class:`Started` or :class:`LeaseCheckpoint` record, which answers
        no client). ``answered``
        false: no client waits for this result (on a follower, say), so a
        transaction's reads are not gathered (128 ranges of a wide prefix
        cost tens of milliseconds on the event loop, and change nothing);
        with an idempotency token they are, for the session that answers a
        retry on whichever replica leads by then."""
        assert index > self.applied_index, f"apply {index} after {self.applied_index}"
        self.applied_index = index
        if isinstance(command, Started):
            self.started.add(command.member)
            return None
        if isinstance(command, LeaseCheckpoint):
            for lease_id, remaining_ms in command.leases:
                held = self.leases.get(lease_id)
                if held is not None:
                    held.remaining_ms = remaining_ms
            return None
        self._expire_sessions(command.ts)
        fingerprint = b""
        if command.token is not None:
            fingerprint = request_fingerprint(command)
            session = self._sessions.get(command.token)
            if session is not None:
                return self._answer_again(session, fingerprint, command)
        reads = answered or command.token is not None
        result = self._denied(index, command) or self._execute(index, command, reads)
        if command.token is not None:
            user = command.caller.user if command.caller is not None else ""
            self._remember(_Session(command.token, command.ts, _kept_of(result), fingerprint, user))
            while len(self._sessions) > self.max_sessions or self.session_bytes > self.max_session_bytes:
                self._forget_oldest_session()
        return result

    def _remember(self, session: _Session) -> None:
        size = len(msgspec.msgpack.encode(session))
        self._sessions[session.token] = session
        self._session_sizes[session.token] = size
        self.session_bytes += size

    def _forget_sessions_of(self, user: str) -> None:
        """A deleted user's remembered answers: one made again under the
        same name is someone else, whose requests are its own (its old
        tokens are refused anyway: :class:`Caller`)."""
        for token in [t for t, session in self._sessions.items() if session.user == user]:
            del self._sessions[token]
            self.session_bytes -= self._session_sizes.pop(token)

    def _forget_oldest_session(self) -> None:
        token, _ = self._sessions.popitem(last=False)
        self.session_bytes -= self._session_sizes.pop(token)

    def skip(self, index: int, members: Collection[str] | None = None) -> None:
        """A committed entry that is not a command (no-op, configuration).
        ``members``: the ids of a configuration's members; a member it
        leaves out is no longer recorded as started, so that one removed
        and added again under its id starts as the new learner it is."""
        self.applied_index = max(self.applied_index, index)
        if members is not None:
            self.started.intersection_update(members)

    def _denied(self, index: int, command: Command) -> PermissionDenied | None:
        """Check a client's command against the rules in force at this
        point of the log (the same on every replica: it reads only the
        replicated state)."""
        caller = command.caller
        if not self.auth.enabled or caller is None:
            return None  # auth is off, or the node's own command (lease expiry)
        reason = self._denial(caller, command)
        return PermissionDenied(reason, index) if reason is not None else None

    def _denial(self, caller: Caller, command: Command) -> str | None:
        auth, check = self.auth, self.permissions
        user = caller.user
        if not user:
            return "authentication required: auth was enabled before this request applied"
        found = auth.user(user)
        if found is None:
            return f"user {user!r} no longer exists"
        if caller.revision and found.revision != caller.revision:
            return f"user {user!r} changed (a new password, or made again) since its token was issued"
        if auth.is_root(user):
            return None
        if isinstance(command, Put):
            if not check.may_key(user, "write", command.key):
                return f"no write permission on {command.key!r}"
            if command.check and not check.may_key(user, "read", command.key):
                # A failed compare answers with the current value.
                return f"no read permission on {command.key!r} (compare-and-set reads it)"
            return self._attach_denial(user, command.lease)
        if isinstance(command, Delete):
            allowed = check.may_key(user, "write", command.key)
            return None if allowed else f"no write permission on {command.key!r}"
        if isinstance(command, Txn):
            if (reason := check.txn_denial(user, command)) is not None:
                return reason
            leases = {op.lease for op in (*command.success, *command.failure) if isinstance(op, OpPut)}
            return next(filter(None, (self._attach_denial(user, lease) for lease in sorted(leases))), None)
        if isinstance(command, LeaseGrant):
            return None  # any user may hold leases
        if isinstance(command, LeaseRevoke):
            return self.lease_denial(user, command.id)
        return f"only a user with the role {ROOT!r} may manage auth"

    def _attach_denial(self, user: str, lease: int) -> str | None:
        """Why ``user`` may not attach a key to ``lease`` (0: none): as
        etcd's checkLeasePuts, write permission on every key attached
        already. Otherwise a user could hang a key of their own on another
        user's lease, whose keep-alive and revoke then need write on that
        key too: its holder would be locked out of their own lease."""
        if not lease:
            return None
        reason = self.lease_denial(user, lease)
        return None if reason is None else f"attaching a key to lease {format_lease_id(lease)}: {reason}"

    def lease_denial(self, user: str, lease: int) -> str | None:
        """Why ``user`` may not revoke ``lease``: it needs write permission
        on every key attached (etcd's rule), since revoking deletes them."""
        held = self.leases.get(lease)
        keys = held.keys if held is not None else ()
        if all(self.permissions.may_key(user, "write", key) for key in keys):
            return None
        # Not which key: the caller may not know it exists.
        return "no write permission on every key attached to the lease"

    def _execute(self, index: int, command: Command, reads: bool) -> Result:
        if isinstance(command, AuthCommand):
            changed = self.auth.apply(index, command)
            if isinstance(command, UserDelete) and self.auth.user(command.name) is None:
                self._forget_sessions_of(command.name)
            return changed
        if isinstance(command, Put):
            if command.check:
                current = self._data.get(command.key)
                current_value = current.value if current is not None else None
                if current_value != command.expect:
                    return CasFailed(command.key, current_value, index)
            if command.lease and command.lease not in self.leases:
                return LeaseNotFound(command.lease, index)
            return self._put(index, command.key, command.value, command.lease)
        if isinstance(command, Delete):
            return self._delete(index, command.key)
        if isinstance(command, Txn):
            return self._txn(index, command, reads)
        if isinstance(command, LeaseGrant):
            self.leases[index] = Lease(index, command.ttl)
            return LeaseGranted(index, command.ttl)
        assert isinstance(command, LeaseRevoke)
        lease = self.leases.pop(command.id, None)
        if lease is None:
            return LeaseRevoked(command.id, False, [], index)
        keys = sorted(lease.keys)
        for key in keys:
            self._delete(index, key)
        return LeaseRevoked(command.id, True, keys, index)

    def _put(self, index: int, key: str, value: str, lease: int) -> Written:
        old = self._data.get(key)
        self.size += len(value) - len(old.value) if old is not None else len(key) + len(value)
        if old is None:
            record = KeyValue(key, value, index, index, 1, lease)
        else:
            record = KeyValue(key, value, old.create_revision, index, old.version + 1, lease)
            if old.lease and old.lease != lease:
                self._detach(key, old.lease)
        if lease:
            self.leases[lease].keys.add(key)
        self._data[key] = record
        self.history.record(
            Change(
                index,
                "put",
                key,
                value,
                record.create_revision,
                record.version,
                old.value if old is not None else None,
                lease,
            )
        )
        return Written(key, value, index, record.create_revision, record.version, lease)

    def _delete(self, index: int, key: str) -> Deleted:
        old = self._data.pop(key, None)
        if old is None:
            return Deleted(key, False, index)
        self.size -= len(key) + len(old.value)
        if old.lease:
            self._detach(key, old.lease)
        self.history.record(Change(index, "delete", key, None, 0, 0, old.value))
        return Deleted(key, True, index, old.value)

    def _detach(self, key: str, lease: int) -> None:
        held = self.leases.get(lease)
        if held is not None:
            held.keys.discard(key)

    def _txn(self, index: int, txn: Txn, reads: bool) -> TxnDone | LeaseNotFound:
        succeeded = all(self._holds(compare) for compare in txn.compare)
        ops = txn.success if succeeded else txn.failure
        # All or nothing: a put naming a lease that is gone fails the whole
        # transaction before anything changed (etcd does the same).
        for op in ops:
            if isinstance(op, OpPut) and op.lease and op.lease not in self.leases:
                return LeaseNotFound(op.lease, index)
        results: list[Written | Deleted | Got | Ranged] = []
        # The reads of one answer share what one range request may take
        # (bytes of values, keys): 128 ranges at a page each would make the
        # leader gather half a GiB, or 128,000 keys, for one request, and
        # 128 gets of a 1 MiB value 128 MiB.
        budget, keys_left = MAX_RANGE_PAGE_BYTES, MAX_RANGE_LIMIT
        for op in ops:
            if isinstance(op, OpPut):
                results.append(self._put(index, op.key, op.value, op.lease))
            elif isinstance(op, OpDelete):
                results.append(self._delete(index, op.key))
            elif not reads:
                continue  # nobody reads what it would find, and it changes nothing
            elif isinstance(op, OpGet):
                if budget <= 0 or keys_left <= 0:
                    results.append(Got(op.key, None, more=True))  # not read: the budget is spent
                    continue
                record = self.get(op.key)
                if record is not None:
                    budget -= len(record.value)
                    keys_left -= 1
                results.append(Got(op.key, record))
            else:
                assert isinstance(op, OpRange)
                page = self.range(
                    op.prefix,
                    prefix_end(op.prefix),
                    limit=min(DEFAULT_RANGE_LIMIT, keys_left) if budget > 0 else 0,
                    max_bytes=budget,
                )
                budget -= sum(len(kv.value) for kv in page.kvs)
                keys_left -= len(page.kvs)
                results.append(Ranged(op.prefix, page.kvs, page.count, page.more))
        return TxnDone(succeeded, results, index)

    def _holds(self, compare: Compare) -> bool:
        """Whether one condition of a transaction holds now. A missing key
        has version and revisions 0 and no value: every comparison of its
        value is false except ``!=``."""
        record = self._data.get(compare.key)
        op, expected = compare.op, compare.value
        if compare.target == "exists":
            exists = record is not None
            return exists == expected if op == "=" else exists != expected
        if compare.target == "value":
            if record is None:
                return op == "!="
            return _compare(record.value, op, expected)
        if record is None:
            actual = 0
        elif compare.target == "version":
            actual = record.version
        elif compare.target == "create_revision":
            actual = record.create_revision
        else:
            actual = record.mod_revision
        return _compare(actual, op, expected)

    def _expire_sessions(self, now_ms: int) -> None:
        horizon = now_ms - self.session_ttl_ms
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.ts >= horizon:
                break
            self._forget_oldest_session()

    # -- snapshots -----------------------------------------------------------

    def snapshot(self) -> bytes:
        state = _Snapshot(
            applied=self.applied_index,
            sessions=list(self._sessions.values()),
            # The dict's own order (SortedDict's sorted iteration costs 20
            # times more); restore sorts once.
            kvs=list(dict.values(cast("dict[str, KeyValue]", self._data))),
            leases=[(lease.id, lease.ttl) for lease in self.leases.values()],
            started=sorted(self.started),
            auth=self.auth.snapshot(),
            lease_remaining={
                lease.id: lease.remaining_ms for lease in self.leases.values() if lease.remaining_ms
            },
        )
        return msgspec.msgpack.encode(state)

    def restore(self, data: bytes) -> None:
        """Replace the state with a snapshot's. Watches can replay only
        changes after it."""
        self._data = SortedDict()
        self.leases = {}
        self._sessions = collections.OrderedDict()
        self._session_sizes = {}
        self.session_bytes = 0
        self.applied_index = 0
        self.started = set()
        self.auth.restore(None)
        if data:
            state = _snapshot_decoder.decode(data)
            self.applied_index = state.applied
            for session in state.sessions:
                self._remember(session)
            self.leases = {
                lease: Lease(lease, ttl, remaining_ms=state.lease_remaining.get(lease, 0))
                for lease, ttl in state.leases
            }
            if state.data is not None:
                # The first format kept only the index of the last write: it
                # stands in for both revisions, and the version is unknown.
                for key, (value, index) in state.data.items():
                    self._data[key] = KeyValue(key, value, index, index, 1, 0)
            # One bulk build (SortedDict sorts once) rather than an insert
            # per key; msgspec built the KeyValues while decoding.
            self._data = SortedDict({**self._data, **{kv.key: kv for kv in state.kvs}})
            for kv in state.kvs:
                if kv.lease:
                    self.leases[kv.lease].keys.add(kv.key)
            self.started = set(state.started)
            self.auth.restore(state.auth)
        self.size = sum(
            len(kv.key) + len(kv.value) for kv in dict.values(cast("dict[str, KeyValue]", self._data))
        )
        self.history.reset(self.applied_index)


def _compare(actual: str | int, op: str, expected: str | int | bool) -> bool:
    if type(actual) is not type(expected):
        return False  # the API refuses such a compare; an old entry may hold one
    if op == "=":
        return actual == expected
    if op == "!=":
        return actual != expected
    if op == "<":
        return actual < expected  # type: ignore[operator]
    return actual > expected  # type: ignore[operator]
