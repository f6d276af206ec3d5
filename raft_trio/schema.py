"""Every wire shape of a node's client API, defined once (msgspec).

The node builds its answers from these types (:mod:`raft_trio.node` returns
:class:`Status`, :class:`Readiness` and :class:`NodeEventData`;
:mod:`raft_trio.http` encodes them and documents them in ``/openapi.json``),
and the client (:mod:`raft_trio.client`, the CLI, the monitor, discovery)
decodes answers into them. Decoding validates: a document that breaks a
type or a constraint here raises ``msgspec.ValidationError`` naming the
field.

Conventions:

- An answer that is not a success carries ``error`` (a sentence for people)
  and ``code`` (a word for programs, one of :class:`Code`). Programs match
  the code, never the sentence.
- A field that some answers leave out defaults to ``msgspec.UNSET`` and is
  then absent from the JSON, not ``null``.
- Field names and meanings are those of the HTTP API documented in the
  README; a field is only ever added, never renamed.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal
from urllib.parse import quote

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "ERROR_MODELS",
    "IDEMPOTENCY_HEADER",
    "LEADER_HEADER",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "MAX_MEMBER_ID_LENGTH",
    "REVISION_HEADER",
    "UNSET",
    "Access",
    "AddMemberRequest",
    "AuthChangeAnswer",
    "AuthStatus",
    "Bootstrap",
    "CasConflict",
    "Code",
    "CompactedAnswer",
    "Compare",
    "DeleteAnswer",
    "ErrorAnswer",
    "Health",
    "KeyAnswer",
    "KeyOp",
    "LeaseAnswer",
    "LeaseInfoAnswer",
    "LeaseRequest",
    "LeaseRevokedAnswer",
    "Member",
    "MemberChangeAnswer",
    "MembersAnswer",
    "NodeEvent",
    "NodeEventData",
    "Op",
    "PasswordRequest",
    "Permission",
    "PutOp",
    "PutRequest",
    "RangeAnswer",
    "RangeItem",
    "RangeOp",
    "RangeQuery",
    "ReadQuery",
    "Readiness",
    "RedirectAnswer",
    "RevokeRequest",
    "Role",
    "RoleAnswer",
    "RoleRequest",
    "RolesAnswer",
    "Status",
    "TokenAnswer",
    "TokenRequest",
    "TransferAnswer",
    "TransferRequest",
    "TxnAnswer",
    "TxnRequest",
    "TxnResult",
    "UnavailableAnswer",
    "UnsetType",
    "UserAnswer",
    "UserRequest",
    "UsersAnswer",
    "WatchChange",
    "WatchEvent",
    "WatchQuery",
    "decode_error",
    "quote_path",
]

#: A write carrying this header (1 to 256 bytes), retried to the same
#: or a new leader, is applied once and answered with its first outcome.
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_LENGTH = 256
#: The longest id ``POST /api/members`` adds (a DNS name's 253 fit).
MAX_MEMBER_ID_LENGTH = 256
#: On every answer about keys: the revision the answering node stands at.
REVISION_HEADER = "X-Raft-Revision"
#: On a 307: the id of the leader the ``Location`` points to.
LEADER_HEADER = "X-Raft-Leader"

#: Path segments that URL parsers (httpx, curl, browsers; RFC 3986 5.2.4)
#: remove or fold into the one before, spelled so that none does.
_DOT_SEGMENTS = {".": "%2E", "..": "%2E%2E"}


def quote_path(text: str, safe: str = "/") -> str:
    """``text`` (a key, a name, or a whole path) quoted for a URL path, its
    ``.`` and ``..`` segments escaped too: ``quote`` leaves dots as they
    are, and a client that sends ``/api/kv/a/../b`` as written has it read
    as ``/api/kv/b``. A node decodes ``%2E`` back to ``.``."""
    quoted = quote(text, safe=safe)
    return "/".join(_DOT_SEGMENTS.get(part, part) for part in quoted.split("/"))


#: A node's role as it reports it (a pre-candidate reports ``candidate``).
Role = Literal["leader", "follower", "candidate", "learner"]
Count = Annotated[int, msgspec.Meta(ge=0)]
NodeId = Annotated[str, msgspec.Meta(min_length=1)]
HttpUrl = Annotated[str, msgspec.Meta(pattern=r"^https?://")]


# -- errors -------------------------------------------------------------------


class Code(enum.StrEnum):
    """The machine-readable ``code`` of every answer that is not a success.

    A client decides by the code (and the HTTP status) alone; the set is
    small on purpose, and a code is only ever added. Whether retrying can
    help: ``not_leader`` (follow the ``Location``), ``no_leader``,
    ``unavailable`` (certainly no effect: retry, maybe elsewhere) and
    ``indeterminate`` (maybe applied: retry only with the same
    ``Idempotency-Key``)."""

    #: 400: the request is malformed or asks for something invalid.
    BAD_REQUEST = "bad_request"
    #: 401: an admin request without the admin token; with auth on, a
    #: request without a valid token (or certificate), or a failed login.
    UNAUTHORIZED = "unauthorized"
    #: 403: with auth on, the user lacks the permission (nothing changed).
    PERMISSION_DENIED = "permission_denied"
    #: 429: too many failed logins for this name or from this address
    #: (``Retry-After`` says how long to wait).
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    #: 400: an ``Idempotency-Key`` sent before with a different request
    #: (nothing was applied, and the first request's answer is not given).
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    #: 400: a token asked for while auth is off.
    AUTH_NOT_ENABLED = "auth_not_enabled"
    #: 409: the user or role to add exists already.
    USER_EXISTS = "user_exists"
    ROLE_EXISTS = "role_exists"
    #: 404: no such user, role, or permission of a role.
    USER_NOT_FOUND = "user_not_found"
    ROLE_NOT_FOUND = "role_not_found"
    GRANT_NOT_FOUND = "grant_not_found"
    #: 409: a user may not be named like a member of the cluster, nor a
    #: member like a user: with mutual TLS both are certificate CNs.
    NAME_TAKEN = "name_taken"
    #: 409: root cannot be taken apart while auth is on.
    ROOT_PROTECTED = "root_protected"
    #: 409: auth cannot be enabled before a user ``root`` exists.
    ROOT_MISSING = "root_missing"
    #: 404: no such route (or method on it).
    NOT_FOUND = "not_found"
    #: 404: the key does not exist.
    KEY_NOT_FOUND = "key_not_found"
    #: 404: the lease does not exist (never granted, expired or revoked).
    LEASE_NOT_FOUND = "lease_not_found"
    #: 405: the route does not take this method.
    METHOD_NOT_ALLOWED = "method_not_allowed"
    #: 409: a compare-and-set whose key did not hold the expected value.
    COMPARE_FAILED = "compare_failed"
    #: 409: the member to add is already one.
    ALREADY_MEMBER = "already_member"
    #: 409: the member to remove is not one.
    NOT_MEMBER = "not_member"
    #: 409: any other membership change refused now (one at a time; a new
    #: leader first commits an entry of its term; the last voter stays).
    CHANGE_REJECTED = "change_rejected"
    #: 410: the revision asked for is older than the history a node keeps.
    COMPACTED = "compacted"
    #: 413: a body, key or value over its limit.
    TOO_LARGE = "too_large"
    #: 307: this node does not lead; ``Location`` is the same request on
    #: the leader.
    NOT_LEADER = "not_leader"
    #: 503: no leader is known right now (``Retry-After``).
    NO_LEADER = "no_leader"
    #: 503: the request certainly had no effect (a transfer under way,
    #: backlog, the node stopping, leadership lost before a read).
    UNAVAILABLE = "unavailable"
    #: 503: a write whose fate is unknown: it may or may not take effect.
    INDETERMINATE = "indeterminate"
    #: 507: a new value refused, having changed nothing, while a member's
    #: free space is short (below its reserve and the room its next
    #: snapshot needs; deletes and reads go on).
    NO_SPACE = "no_space"
    #: Any other failure (should not happen; the ``error`` says what).
    INTERNAL = "internal"


class ErrorAnswer(msgspec.Struct, frozen=True):
    """Every answer that is not a success has at least these two fields."""

    error: str
    code: str


class UnavailableAnswer(msgspec.Struct, frozen=True):
    """503 (and 507): ``indeterminate`` false means the request certainly
    had no effect (with ``Retry-After``); true means a write whose fate is
    unknown."""

    error: str
    code: str
    indeterminate: bool


class RedirectAnswer(msgspec.Struct, frozen=True):
    """307: the body of a redirect to the leader."""

    error: str
    code: str
    leader_id: str


class CasConflict(msgspec.Struct, frozen=True):
    """409 of a compare-and-set: what the key holds (``null``: absent) and
    the revision at which the compare was decided."""

    error: str
    code: str
    current: str | None
    index: int


class CompactedAnswer(msgspec.Struct, frozen=True):
    """410 for a watch (and its ``error`` event): the oldest revision still
    available."""

    error: str
    code: str
    compact_revision: int


ErrorBody = ErrorAnswer | UnavailableAnswer | RedirectAnswer | CasConflict | CompactedAnswer
#: The model of an error answer by its code (others: :class:`ErrorAnswer`).
ERROR_MODELS: dict[str, type[ErrorBody]] = {
    Code.NOT_LEADER: RedirectAnswer,
    Code.NO_LEADER: UnavailableAnswer,
    Code.UNAVAILABLE: UnavailableAnswer,
    Code.INDETERMINATE: UnavailableAnswer,
    Code.COMPARE_FAILED: CasConflict,
    Code.COMPACTED: CompactedAnswer,
}


def decode_error(body: bytes) -> ErrorBody:
    """An error answer as its most specific model (raises
    ``msgspec.DecodeError``/``ValidationError`` if it is none)."""
    plain = msgspec.json.decode(body, type=ErrorAnswer)
    model = ERROR_MODELS.get(plain.code)
    if model is None:
        return plain
    try:
        specific: ErrorBody = msgspec.json.decode(body, type=model)
    except msgspec.ValidationError:
        return plain
    return specific


# -- cluster ------------------------------------------------------------------


class Member(msgspec.Struct, frozen=True):
    id: NodeId
    url: HttpUrl
    voter: bool = True
    #: It has acknowledged entries once: a new, empty data directory for
    #: it is refused.
    started: bool = False


class Bootstrap(msgspec.Struct, frozen=True):
    """While a discovered node waits for its cluster to form: how many
    replicas it expects, the seed it acked, the ids it has seen."""

    expect: int
    ack: str | None
    seen: list[str]


class FirstStart(msgspec.Struct, frozen=True):
    """While a node with a new data directory asks its cluster whether it
    has started before: the members it asks."""

    asking: list[str]


class Status(msgspec.Struct, frozen=True):
    """``GET /api/status``, and the data of the ``status`` event."""

    id: NodeId
    role: Role
    term: Count
    leader_id: str | None
    leader_url: str | None
    commit_index: Count
    applied_index: Count
    last_log_index: Count
    members: list[Member]
    #: Only while the node waits for its cluster to form (discovery).
    bootstrap: Bootstrap | UnsetType = UNSET
    #: Only while a new data directory asks its cluster (first start).
    first_start: FirstStart | UnsetType = UNSET
    #: How the others reach this node (its advertised URL).
    url: str | None = None
    #: This node's alarms: ``"NOSPACE"`` while its free space is below its
    #: reserve.
    alarms: list[str] = msgspec.field(default_factory=list)
    #: A ``candidate`` that is only asking for pre-votes (§9.6): its term
    #: has not moved, and it becomes a real candidate once a majority
    #: would vote for it.
    pre_vote: bool = False
    #: Seconds since this node started (a first start tells a member that
    #: started moments ago from one cut off since long ago).
    uptime_s: float | None = None
    #: The cluster id its data directory records (None: none): discovery
    #: tells another cluster's replicas in the same DNS name by it.
    cluster_id: str | None = None


class NodeEventData(msgspec.Struct, frozen=True):
    """The data of the ``role``, ``term``, ``leader``, ``membership`` and
    ``commit`` events of ``/api/events``; ``members`` comes with
    ``membership``."""

    id: NodeId
    role: Role
    term: Count
    leader_id: str | None
    commit_index: Count
    applied_index: Count
    members: list[Member] | UnsetType = UNSET
    #: As in :class:`Status`: a ``candidate`` asking for pre-votes only.
    pre_vote: bool = False


class NodeEvent(msgspec.Struct, frozen=True):
    """One event of ``/api/events``: its name and data (a client's value;
    on the wire the name is the SSE ``event:`` line)."""

    name: str
    data: Status | NodeEventData


class Readiness(msgspec.Struct, frozen=True):
    """``GET /readyz``: ``ready``, and in words why (not);
    ``leader_commit_index`` is the leader's commit index as last heard
    (null: none heard)."""

    ready: bool
    reason: str
    id: str
    role: Role
    term: Count
    leader_id: str | None
    applied_index: Count
    leader_commit_index: int | None


class Health(msgspec.Struct, frozen=True):
    """``GET /healthz``."""

    ok: bool


class MembersAnswer(msgspec.Struct, frozen=True):
    members: list[Member]


class AddMemberRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: At most MAX_MEMBER_ID_LENGTH characters: a longer id could be added
    #: but neither join nor be removed (its X-Raft-From header and the
    #: path of DELETE /api/members/{id} pass the 64 KiB request head).
    id: Annotated[str, msgspec.Meta(max_length=MAX_MEMBER_ID_LENGTH)]
    url: str


class MemberChangeAnswer(msgspec.Struct, frozen=True):
    """The configuration after the change, and the change's log index."""

    members: list[Member]
    index: int


class TransferRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``to``: the voter to hand leadership to (null: the most caught-up)."""

    to: str | None = None


class TransferAnswer(msgspec.Struct, frozen=True):
    leader_id: str


# -- keys ---------------------------------------------------------------------


class ReadQuery(msgspec.Struct, frozen=True):
    consistency: str = "linearizable"


class PutRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``value`` to write; with ``expect`` present, a compare-and-set:
    the key must hold ``expect`` (``null``: must be absent); with
    ``lease``, the key is attached to that lease and goes with it."""

    value: str
    expect: str | UnsetType | None = UNSET
    lease: str | None = None


class KeyAnswer(msgspec.Struct, frozen=True, omit_defaults=True):
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


class DeleteAnswer(msgspec.Struct, frozen=True):
    """``deleted``: whether the key existed; ``index``: the revision at
    which the delete was decided."""

    key: str
    deleted: bool
    index: int


class RangeQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    prefix: str | None = None
    start: str | None = None
    end: str | None = None
    limit: int = 1000
    after: str | None = None
    keys_only: bool = False
    count_only: bool = False
    consistency: Literal["linearizable", "stale"] = "linearizable"


class RangeItem(msgspec.Struct, frozen=True, omit_defaults=True):
    key: str
    create_revision: int
    mod_revision: int
    version: int
    #: Left out with ``keys_only``.
    value: str | UnsetType = UNSET
    lease: str | None = None


class RangeAnswer(msgspec.Struct, frozen=True):
    """``count``: keys matching from the page's start on; ``more``: whether
    keys beyond this page match; ``revision``: the node's revision."""

    kvs: list[RangeItem]
    count: int
    more: bool
    revision: int


# -- watches ------------------------------------------------------------------


#: A revision a cluster can reach: 1 to etcd's int64 (the log encodes
#: commands as MessagePack, whose integers end at 64 bits).
Revision = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class WatchQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    prefix: str | None = None
    key: str | None = None
    #: Past int64, a watch would wait for a revision no cluster reaches.
    start_revision: Revision | None = None
    prev_value: bool = False


class WatchChange(msgspec.Struct, frozen=True, kw_only=True):
    """The data of a ``put`` or ``delete`` event of ``/api/watch`` (the
    event's ``id`` is ``mod_revision``)."""

    key: str
    #: Put events only.
    value: str | UnsetType = UNSET
    create_revision: int
    mod_revision: int
    version: int
    lease: str | UnsetType = UNSET
    #: With ``prev_value=true``: the value before (null: none).
    prev_value: str | UnsetType | None = UNSET


class WatchEvent(msgspec.Struct, frozen=True):
    """One change as a client sees it: ``kind`` is the event's name."""

    kind: Literal["put", "delete"]
    change: WatchChange

    @property
    def revision(self) -> int:
        return self.change.mod_revision


# -- transactions ---------------------------------------------------------------


class Compare(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key: str
    target: Literal["value", "version", "create_revision", "mod_revision", "exists"]
    op: Literal["=", "!=", "<", ">"]
    value: str | int | bool


class PutOp(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key: str
    value: str
    lease: str | None = None


class KeyOp(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key: str


class RangeOp(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    prefix: str


class Op(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Exactly one of ``put``, ``delete``, ``get`` or ``range`` (build one
    with :meth:`of_put` and its siblings)."""

    put: PutOp | None = None
    delete: KeyOp | None = None
    get: KeyOp | None = None
    range: RangeOp | None = None

    @classmethod
    def of_put(cls, key: str, value: str, lease: str | None = None) -> Op:
        return cls(put=PutOp(key, value, lease))

    @classmethod
    def of_delete(cls, key: str) -> Op:
        return cls(delete=KeyOp(key))

    @classmethod
    def of_get(cls, key: str) -> Op:
        return cls(get=KeyOp(key))

    @classmethod
    def of_range(cls, prefix: str) -> Op:
        return cls(range=RangeOp(prefix))


class TxnRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """If every compare holds, run ``success`` in order, else ``failure``;
    all in one log entry, at one revision."""

    compare: list[Compare] = []
    success: list[Op] = []
    failure: list[Op] = []


class TxnResult(msgspec.Struct, frozen=True, kw_only=True):
    """One result of a transaction: the fields the single-key request
    (:class:`KeyAnswer`, :class:`DeleteAnswer`, a get's 404 ``error`` and
    ``code``) or the range request (:class:`RangeAnswer`) would answer.
    The reads of one transaction share what one range request may return
    (10,000 keys, about 4 MiB of values): a range past that has fewer keys
    or none, and ``more``; a get past it only its ``key`` and ``more``."""

    key: str | UnsetType = UNSET
    value: str | UnsetType = UNSET
    index: int | UnsetType = UNSET
    create_revision: int | UnsetType = UNSET
    mod_revision: int | UnsetType = UNSET
    version: int | UnsetType = UNSET
    lease: str | UnsetType = UNSET
    deleted: bool | UnsetType = UNSET
    error: str | UnsetType = UNSET
    code: str | UnsetType = UNSET
    kvs: list[RangeItem] | UnsetType = UNSET
    count: int | UnsetType = UNSET
    more: bool | UnsetType = UNSET
    revision: int | UnsetType = UNSET


class TxnAnswer(msgspec.Struct, frozen=True):
    succeeded: bool
    #: One per operation run.
    results: list[TxnResult]
    revision: int


# -- leases -------------------------------------------------------------------


class LeaseRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ttl: int


class LeaseAnswer(msgspec.Struct, frozen=True):
    id: str
    ttl: int


class LeaseInfoAnswer(msgspec.Struct, frozen=True):
    id: str
    #: Seconds left before the leader revokes it.
    ttl: int
    granted_ttl: int
    keys: list[str]


class LeaseRevokedAnswer(msgspec.Struct, frozen=True):
    id: str
    #: The keys it deleted.
    keys: list[str]
    index: int


# -- auth ---------------------------------------------------------------------


class TokenRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    password: str


class TokenAnswer(msgspec.Struct, frozen=True):
    #: For ``Authorization: Bearer <token>``, on any node of the cluster.
    token: str
    #: Seconds until it expires.
    expires_in: int


class AuthStatus(msgspec.Struct, frozen=True):
    enabled: bool
    #: The log index of the last change to users, roles or the switch.
    revision: int
    #: Who asked (absent while auth is off).
    user: str | UnsetType = UNSET
    root: bool | UnsetType = UNSET


class AuthChangeAnswer(msgspec.Struct, frozen=True):
    #: The auth revision after the change.
    revision: int
    #: False when it was so already (a role granted twice, auth enabled twice).
    changed: bool


class UserRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    #: None: the user logs in with a client certificate only.
    password: str | None = None


class PasswordRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    password: str | None


class UserAnswer(msgspec.Struct, frozen=True):
    name: str
    roles: list[str]
    has_password: bool


class UsersAnswer(msgspec.Struct, frozen=True):
    users: list[UserAnswer]


class RoleRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str


Access = Literal["read", "write", "readwrite"]


class Permission(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """``key`` alone: exactly that key; ``prefix`` true: every key starting
    with ``key`` (``""``: every key); ``end``: the keys from ``key`` up to
    ``end``, exclusive (``""``: to the last key; a grant refuses an ``end``
    not after ``key``, a range of no key)."""

    access: Access
    key: str
    prefix: bool = False
    end: str | None = None


class RevokeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The permission on exactly this key, prefix or range goes."""

    key: str
    prefix: bool = False
    end: str | None = None


class RoleAnswer(msgspec.Struct, frozen=True):
    name: str
    permissions: list[Permission]


class RolesAnswer(msgspec.Struct, frozen=True):
    roles: list[RoleAnswer]


#: Models that are only ever nested in others (``/openapi.json`` lists
#: their components too).
NESTED_MODELS: tuple[type[msgspec.Struct], ...] = (
    UserAnswer,
    Permission,
    RoleAnswer,
    Member,
    Bootstrap,
    RangeItem,
    Compare,
    Op,
    PutOp,
    KeyOp,
    RangeOp,
    TxnResult,
)


def to_builtins(value: Any) -> Any:
    """A value of this module as plain JSON types (dicts, lists, ...)."""
    return msgspec.to_builtins(value)
