"""What a client call raises instead of returning: no endpoint answered,
or the cluster answered that it did not do it (an :class:`ApiError`
carrying the answer's status, ``code`` and body)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from .. import schema

Code = schema.Code


class ClientError(Exception):
    """Base of everything a client call raises on purpose."""


class NoEndpointAnswered(ClientError):
    """No endpoint gave an answer; ``tried`` lists each with the reason."""

    def __init__(self, tried: Sequence[tuple[str, str]]) -> None:
        self.tried = list(tried)
        listed = "; ".join(f"{url} ({reason})" for url, reason in self.tried) or "no endpoints"
        super().__init__(f"no cluster node answered; tried {listed}")


class StreamBroken(ClientError):
    """A stream that had begun (a backup being downloaded) broke off."""


class LockLost(ClientError):
    """A lock (or an election's leadership) that was held is lost: its
    lease expired or was revoked, no keep-alive was answered in time for
    the holder to vouch for it, or its key was deleted. The block that
    held it was cancelled. ``name``, ``token`` (the fencing token it was
    held with) and ``reason`` say which."""

    def __init__(self, name: str, token: int, reason: str) -> None:
        super().__init__(f"lost the lock {name!r} (fencing token {token}): {reason}")
        self.name = name
        self.token = token
        self.reason = reason


class ApiError(ClientError):
    """The cluster answered with an error: ``status`` (None when no answer
    came at all), ``code`` (one of :class:`raft_trio.schema.Code`),
    ``message`` and the decoded ``answer``; ``url`` is the node that gave
    it."""

    def __init__(
        self,
        status: int | None,
        answer: schema.ErrorBody,
        url: str | None = None,
    ) -> None:
        super().__init__(answer.error)
        self.status = status
        self.answer = answer
        self.code = answer.code
        self.message = answer.error
        self.url = url


class BadRequest(ApiError):
    """400 (or 413): the request is invalid; nothing changed."""


class Unauthorized(ApiError):
    """401: an admin request without the right admin token; with auth on,
    a request without a valid token or certificate, or a failed login."""


class PermissionDenied(ApiError):
    """403: with auth on, the user lacks the permission; nothing changed."""


class TooManyAttempts(ApiError):
    """429: too many failed logins for this name or from this address;
    the node says how long to wait in ``Retry-After``."""


class AuthConflict(ApiError):
    """409 of an auth change: ``code`` says which (``user_exists``,
    ``role_exists``, ``root_protected``, ``root_missing``; ``name_taken``:
    a user named like a member, or a member like a user)."""


class NotFound(ApiError):
    """404: no such route."""


class KeyNotFound(NotFound):
    """404: the key does not exist."""


class LeaseNotFound(NotFound):
    """404: the lease does not exist (never granted, expired or revoked)."""


class CompareFailed(ApiError):
    """409 of a compare-and-set: ``current`` is what the key holds (None:
    absent), ``index`` the revision at which it was decided."""

    @property
    def current(self) -> str | None:
        return self.answer.current if isinstance(self.answer, schema.CasConflict) else None

    @property
    def index(self) -> int | None:
        return self.answer.index if isinstance(self.answer, schema.CasConflict) else None


class MembershipConflict(ApiError):
    """409 of a membership change: ``code`` says which (``already_member``,
    ``not_member``, ``change_rejected``)."""


class Compacted(ApiError):
    """410: the revisions asked for are older than the history the node
    keeps; ``compact_revision`` is the oldest still available."""

    @property
    def compact_revision(self) -> int | None:
        answer = self.answer
        return answer.compact_revision if isinstance(answer, schema.CompactedAnswer) else None


class Unavailable(ApiError):
    """503 that certainly had no effect (no leader, a transfer under way,
    backlog), still so when the call's time ran out."""


class Indeterminate(ApiError):
    """A write whose fate is unknown: it may or may not take effect (503
    ``indeterminate``, or the connection broke after the request went out
    and the write carried no ``Idempotency-Key`` to retry it with, or its
    retries with the key got no definite answer before the timeout).

    ``idempotency_key`` is the key the write carried (the one the client
    made, if the caller gave none): retried with it, the write takes
    effect once."""

    idempotency_key: str | None = None


_BY_CODE: dict[str, type[ApiError]] = {
    Code.BAD_REQUEST: BadRequest,
    Code.TOO_LARGE: BadRequest,
    Code.UNAUTHORIZED: Unauthorized,
    Code.PERMISSION_DENIED: PermissionDenied,
    Code.TOO_MANY_ATTEMPTS: TooManyAttempts,
    Code.AUTH_NOT_ENABLED: BadRequest,
    Code.IDEMPOTENCY_KEY_REUSED: BadRequest,
    Code.USER_EXISTS: AuthConflict,
    Code.ROLE_EXISTS: AuthConflict,
    Code.ROOT_PROTECTED: AuthConflict,
    Code.ROOT_MISSING: AuthConflict,
    Code.NAME_TAKEN: AuthConflict,
    Code.USER_NOT_FOUND: NotFound,
    Code.ROLE_NOT_FOUND: NotFound,
    Code.GRANT_NOT_FOUND: NotFound,
    Code.NOT_FOUND: NotFound,
    Code.KEY_NOT_FOUND: KeyNotFound,
    Code.LEASE_NOT_FOUND: LeaseNotFound,
    Code.COMPARE_FAILED: CompareFailed,
    Code.ALREADY_MEMBER: MembershipConflict,
    Code.NOT_MEMBER: MembershipConflict,
    Code.CHANGE_REJECTED: MembershipConflict,
    Code.COMPACTED: Compacted,
    Code.NO_LEADER: Unavailable,
    Code.UNAVAILABLE: Unavailable,
    Code.INDETERMINATE: Indeterminate,
}


class NotANode(ApiError):
    """An error answer not in the API's shape: from another server at the
    endpoint's address (a wrong port, the monitor's) or a proxy's page. Not
    the cluster saying no, so a caller goes on to the next endpoint."""


def is_node_answer(body: bytes) -> bool:
    """Whether an error answer's ``body`` is one a node gives."""
    try:
        schema.decode_error(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False
    return True


def error_answer(status: int, body: bytes) -> schema.ErrorBody:
    """The error answer in ``body``; one made up from the status if the
    body is not one (a proxy's page, say)."""
    try:
        return schema.decode_error(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = body[:200].decode("utf-8", "replace").strip()
        return schema.ErrorAnswer(f"HTTP {status}" + (f": {text}" if text else ""), Code.INTERNAL)


def api_error(status: int | None, answer: schema.ErrorBody, url: str | None = None) -> ApiError:
    """The exception for an error answer, by its code."""
    return _BY_CODE.get(answer.code, ApiError)(status, answer, url)


def indeterminate(message: str, url: str | None = None) -> Indeterminate:
    return Indeterminate(None, schema.UnavailableAnswer(message, Code.INDETERMINATE, True), url)
