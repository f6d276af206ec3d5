"""What goes into the log (commands) and what comes out of applying it
(results): frozen msgspec structs, encoded as MessagePack arrays.

The encoding is part of the data directory's format: entries written by
an earlier version must still decode. So tags never change, fields are
only ever added at the end of a struct, and every added field has a
default (an array written before the field existed decodes with it).

Revisions: the revision of a change is the log index of the entry that
made it (the dissertation's index, etcd's revision). A key's
``create_revision`` is the revision of the put that created it (after
its last delete), ``mod_revision`` that of its last put, ``version`` the
number of puts since it was created (1 for a new key).
"""

from __future__ import annotations

import hashlib
import string
from typing import Literal

import msgspec

from ._auth_commands import (
    AuthChanged,
    AuthCommand,
    AuthEnable,
    AuthRefused,
    Caller,
    PermissionDenied,
    UserAdd,
    UserPassword,
)

#: Limits of the API: keys 1-1024 bytes, values at most 1 MiB as UTF-8.
MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = 1 << 20
#: Keys in one page of a range: the default and the most a client may ask.
DEFAULT_RANGE_LIMIT = 1000
MAX_RANGE_LIMIT = 10_000
#: Operations in one transaction (compares and the ops of each branch
#: count separately), as etcd's default --max-txn-ops.
MAX_TXN_OPS = 128

# -- commands: what a log entry asks of the state machine -------------------


class Put(msgspec.Struct, frozen=True, tag="put", array_like=True):
    key: str
    value: str
    #: Compare-and-set: when ``check`` is true the key must currently hold
    #: ``expect`` (None: the key must be absent).
    check: bool = False
    expect: str | None = None
    #: Idempotency-Key of the request (exactly-once retries).
    token: str | None = None
    #: The leader's clock when it proposed (ms since the epoch).
    ts: int = 0
    #: The lease the key is attached to (0: none).
    lease: int = 0
    #: Who asked, under which auth revision (None: the node itself).
    caller: Caller | None = None


class Delete(msgspec.Struct, frozen=True, tag="del", array_like=True):
    key: str
    token: str | None = None
    ts: int = 0
    caller: Caller | None = None


CompareTarget = Literal["value", "version", "create_revision", "mod_revision", "exists"]
CompareOp = Literal["=", "!=", "<", ">"]


class Compare(msgspec.Struct, frozen=True, array_like=True):
    """One condition of a transaction. ``value`` is a string for the
    target ``value``, an integer for the revisions and ``version``, a
    boolean for ``exists`` (whose op is ``=`` or ``!=``)."""

    key: str
    target: CompareTarget
    op: CompareOp
    value: str | int | bool


class OpPut(msgspec.Struct, frozen=True, tag="put", array_like=True):
    key: str
    value: str
    lease: int = 0


class OpDelete(msgspec.Struct, frozen=True, tag="del", array_like=True):
    key: str


class OpGet(msgspec.Struct, frozen=True, tag="get", array_like=True):
    key: str


class OpRange(msgspec.Struct, frozen=True, tag="range", array_like=True):
    prefix: str


TxnOp = OpPut | OpDelete | OpGet | OpRange


class Txn(msgspec.Struct, frozen=True, tag="txn", array_like=True):
    """If every compare holds, run ``success`` in order, else ``failure``:
    all in this one entry, so at one revision and all or nothing."""

    compare: list[Compare]
    success: list[TxnOp]
    failure: list[TxnOp]
    token: str | None = None
    ts: int = 0
    caller: Caller | None = None


class LeaseGrant(msgspec.Struct, frozen=True, tag="lgrant", array_like=True):
    """Create a lease of ``ttl`` seconds. Its id is the revision of this
    entry: unique for the life of the cluster, and the same on every
    replica without anyone choosing it."""

    ttl: int
    token: str | None = None
    ts: int = 0
    caller: Caller | None = None


class LeaseRevoke(msgspec.Struct, frozen=True, tag="lrevoke", array_like=True):
    """End a lease and delete its keys, all at this entry's revision: by a
    client's request, or by the leader once its TTL ran out."""

    id: int
    token: str | None = None
    ts: int = 0
    #: None when the leader revokes an expired lease itself.
    caller: Caller | None = None


#: What a client may ask for: keys, transactions and leases, and auth
#: management (raft_trio.kv._auth_commands).
Command = Put | Delete | Txn | LeaseGrant | LeaseRevoke | AuthCommand


class Started(msgspec.Struct, frozen=True, tag="started", array_like=True):
    """Written by a leader the first time ``member`` acknowledges entries:
    that member has started once and holds a term, a vote and a log. A new
    (empty) data directory for it is refused from then on
    (:mod:`raft_trio.node.first_start`), as etcd refuses a member that
    "has already been bootstrapped". Not a client's command."""

    member: str


class LeaseCheckpoint(msgspec.Struct, frozen=True, tag="lcheckpoint", array_like=True):
    """Written by a leader: how long each of these leases had left on its
    clock, ``(lease id, milliseconds)``, so that the next leader counts
    from there instead of a full TTL (etcd's lease checkpoints); 0 clears
    a recorded time (a keep-alive came). Not a client's command."""

    leases: list[tuple[int, int]]


#: What a log entry may hold: a client's command, or a record the leader
#: writes itself.
LogCommand = Command | Started | LeaseCheckpoint

# -- results: what applying a command gave ------------------------------------


class Written(msgspec.Struct, frozen=True, tag="written", array_like=True):
    key: str
    value: str
    #: The revision of this write (its ``mod_revision``).
    index: int
    create_revision: int = 0
    version: int = 0
    lease: int = 0


class CasFailed(msgspec.Struct, frozen=True, tag="cas_failed", array_like=True):
    key: str
    current: str | None
    #: The revision at which the compare was decided.
    index: int


class Deleted(msgspec.Struct, frozen=True, tag="deleted", array_like=True):
    key: str
    deleted: bool
    #: The revision of the delete (decided there, also when nothing existed).
    index: int
    #: The value it removed (None: nothing existed).
    prev_value: str | None = None


class KeyValue(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A key as it stands, with its revisions: what the store holds for
    each key (immutable, so handed out as it is) and what it answers."""

    key: str
    value: str
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


class Got(msgspec.Struct, frozen=True, tag="got", array_like=True):
    """A transaction's ``get``: the key as it stood at that point of the
    transaction, or None; ``more``: not read, because the transaction's
    reads had taken what one range request may (read it with a GET)."""

    key: str
    kv: KeyValue | None
    more: bool = False


class Ranged(msgspec.Struct, frozen=True, tag="ranged", array_like=True):
    """A transaction's ``range``: the first page of keys under the prefix,
    in key order, as a range request would answer it."""

    prefix: str
    kvs: list[KeyValue]
    count: int
    more: bool


class TxnDone(msgspec.Struct, frozen=True, tag="txn", array_like=True):
    succeeded: bool
    results: list[Written | Deleted | Got | Ranged]
    #: The revision of the transaction's entry.
    revision: int


class LeaseNotFound(msgspec.Struct, frozen=True, tag="lease_not_found", array_like=True):
    """A put (or a transaction with one) named a lease that does not exist
    (never granted, expired or revoked): nothing was changed."""

    lease: int
    index: int


class LeaseGranted(msgspec.Struct, frozen=True, tag="lgranted", array_like=True):
    id: int
    ttl: int


class KeyReused(msgspec.Struct, frozen=True, tag="key_reused", array_like=True):
    """A command whose idempotency token answered an earlier, different
    request (:func:`request_fingerprint`): not applied, and not a retry,
    so the earlier answer is not given either. Never remembered."""

    index: int


class LeaseRevoked(msgspec.Struct, frozen=True, tag="lrevoked", array_like=True):
    id: int
    #: False if the lease no longer existed (expired or revoked before).
    found: bool
    #: The keys it deleted, in key order.
    keys: list[str]
    index: int


Result = (
    Written
    | CasFailed
    | Deleted
    | TxnDone
    | LeaseNotFound
    | LeaseGranted
    | LeaseRevoked
    | AuthChanged
    | AuthRefused
    | PermissionDenied
    | KeyReused
)

_command_encoder = msgspec.msgpack.Encoder()

#: What a proposer adds to every command: no part of the client's request.
_ADDED_BY_THE_NODE = {"token": None, "ts": 0, "caller": None}


def request_fingerprint(command: Command) -> bytes:
    """What the client asked for in ``command``, as 16 bytes: equal for a
    retry of the same request, different for another request sent under
    the same idempotency token (IETF's Idempotency-Key draft and Stripe
    refuse that rather than answer it with the first request's outcome).

    Left out is what the node adds (the token itself, its clock, who
    asked: a retry may come with a fresh login) or chooses (a salted
    password hash, a new signing key): a retry of a password change
    counts as the same request whatever password it carries. Computed
    from the log entry alone, so every replica finds the same."""
    chosen: dict[str, object] = dict(_ADDED_BY_THE_NODE)
    if isinstance(command, UserAdd | UserPassword):
        chosen["password_hash"] = "" if command.password_hash is not None else None
    elif isinstance(command, AuthEnable):
        chosen["signing_key"] = b""
    request = msgspec.structs.replace(command, **chosen)
    return hashlib.blake2b(_command_encoder.encode(request), digest_size=16).digest()


_command_decoder: msgspec.msgpack.Decoder[LogCommand] = msgspec.msgpack.Decoder(LogCommand)


def encode_command(command: LogCommand) -> bytes:
    return _command_encoder.encode(command)


def decode_command(data: bytes) -> LogCommand:
    return _command_decoder.decode(data)


def format_lease_id(lease: int) -> str:
    """A lease id as clients see it: 16 hex digits, as etcd prints them."""
    return f"{lease:016x}"


def parse_lease_id(text: str) -> int | None:
    """The lease id a client gave (1 to 16 hex digits, nothing else: not
    the ``0x``, sign or underscores ``int`` takes), or None if it is not
    one."""
    if not 1 <= len(text) <= 16 or not all(c in string.hexdigits for c in text):
        return None
    lease = int(text, 16)
    return lease if lease > 0 else None
