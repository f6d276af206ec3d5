"""The auth API: log in for a token, and manage users, roles and the
auth switch (etcd's ``auth``, ``user`` and ``role`` commands over HTTP).

- ``POST {api}/auth/token {"name", "password"}`` → ``{"token",
  "expires_in"}``: open, and slowed after failures
  (:class:`raft_trio.auth.LoginThrottle`; 429 with ``Retry-After``).
- ``GET {api}/auth/status``: whether auth is on, and who is asking.
- ``POST {api}/auth/enable`` / ``disable``; ``{api}/auth/users[/NAME
  [/password | /roles/ROLE]]``; ``{api}/auth/roles[/NAME[/permissions]]``.

Changes go through the log like any write: answered once applied, by the
leader (a follower redirects, 307). The leader hashes a password before it
proposes (in a thread: scrypt is CPU-heavy), so no replica hashes on apply.
Who may call what is the gate's business (:mod:`raft_trio.http.auth`).
"""

from __future__ import annotations

import math
import secrets
import time
from typing import Any, Literal

import msgspec
import trio
from quart import request
from quart_schema import validate_request, validate_response
from quart_trio import QuartTrio

from ..auth import (
    BadHash,
    LoginThrottle,
    hash_password,
    issue_token,
    password_problem,
    token_key,
    verify_password,
)
from ..core import Role as RaftRole
from ..kv import (
    MAX_KEY_BYTES,
    AuthChanged,
    AuthCommand,
    AuthDisable,
    AuthEnable,
    AuthRefused,
    Grant,
    PermissionDenied,
    RoleAdd,
    RoleDelete,
    RoleGrant,
    RoleRevoke,
    Scope,
    UserAdd,
    UserDelete,
    UserGrantRole,
    UserPassword,
    UserRevokeRole,
    valid_name,
)
from ..node import NotLeaderError, RaftNode, ReadAborted
from ..node import metrics as node_metrics
from ._answers import error, not_leader, retry_later, write
from ._principal import caller, principal_of

#: scrypt computations at once: each holds 32 MiB and a core for a quarter second.
MAX_CONCURRENT_HASHES = 2
#: HTTP status of each way an auth change can be refused.
REFUSAL_STATUS = {
    "user_exists": 409,
    "role_exists": 409,
    "user_not_found": 404,
    "role_not_found": 404,
    "grant_not_found": 404,
    "root_protected": 409,
    "root_missing": 409,
}

# -- models ---------------------------------------------------------------------------


class CodedError(msgspec.Struct):
    """An auth answer that is not a success: ``code`` is for programs."""

    error: str
    code: str


class TokenRequest(msgspec.Struct):
    name: str
    password: str


class TokenAnswer(msgspec.Struct):
    token: str
    #: Seconds until the token expires.
    expires_in: int


class AuthStatusAnswer(msgspec.Struct):
    enabled: bool
    #: The log index of the last change to users, roles or the switch.
    revision: int
    #: Who asked (absent while auth is off).
    user: str | None = None
    root: bool = False


class ChangeAnswer(msgspec.Struct):
    #: The auth revision after the change.
    revision: int
    #: False when it was so already (a role granted twice).
    changed: bool


class UserRequest(msgspec.Struct):
    name: str
    #: None: the user can log in only with a client certificate.
    password: str | None = None


class PasswordRequest(msgspec.Struct):
    password: str | None


class UserAnswer(msgspec.Struct):
    name: str
    roles: list[str]
    has_password: bool


class UsersAnswer(msgspec.Struct):
    users: list[UserAnswer]


class RoleRequest(msgspec.Struct):
    name: str


class PermissionModel(msgspec.Struct):
    """``key`` alone: that key; ``prefix``: every key starting with it;
    ``end``: the range ``[key, end)`` (``""``: to the last key)."""

    access: Literal["read", "write", "readwrite"]
    key: str
    prefix: bool = False
    end: str | None = None


class RevokeRequest(msgspec.Struct):
    key: str
    prefix: bool = False
    end: str | None = None


class RoleAnswer(msgspec.Struct):
    name: str
    permissions: list[PermissionModel]


class RolesAnswer(msgspec.Struct):
    roles: list[RoleAnswer]


NESTED_MODELS: tuple[type[msgspec.Struct], ...] = (UserAnswer, PermissionModel, RoleAnswer)


def _target(key: str, prefix: bool, end: str | None) -> tuple[str, Scope, str | None] | str:
    """(key, scope, end) of a permission, or why it is not one."""
    if prefix and end is not None:
        return "give either prefix or end, not both"
    for text in (key, end or ""):
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            return "a key is not valid UTF-8"
        if size > MAX_KEY_BYTES:
            return f"a key is {size} bytes; at most {MAX_KEY_BYTES} are allowed"
    if prefix:
        return key, "prefix", None
    if end is not None:
        return key, "range", end or None
    if not key:
        return "the key is empty (an empty prefix, with prefix true, is every key)"
    return key, "key", None


def _permission(grant: Grant) -> PermissionModel:
    if grant.scope == "prefix":
        return PermissionModel(grant.access, grant.key, prefix=True)
    if grant.scope == "range":
        return PermissionModel(grant.access, grant.key, end=grant.end or "")
    return PermissionModel(grant.access, grant.key)


def add_auth_routes(
    app: QuartTrio, node: RaftNode, prefix: str, throttle: LoginThrottle | None = None
) -> None:
    throttle = throttle if throttle is not None else LoginThrottle()
    hashing = trio.CapacityLimiter(MAX_CONCURRENT_HASHES)
    #: Verified against when the user does not exist, so that the answer
    #: takes as long and says as little as for a wrong password.
    decoy: list[str] = []

    async def run_hash(function: Any, *args: Any) -> Any:
        return await trio.to_thread.run_sync(function, *args, limiter=hashing)

    async def decoy_hash() -> str:
        if not decoy:
            decoy.append(await run_hash(hash_password, secrets.token_urlsafe(16)))
        return decoy[0]

    async def change(command: AuthCommand) -> Any:
        result = await write(node, msgspec.structs.replace(command, caller=caller(request.scope)))
        if isinstance(result, AuthChanged):
            return ChangeAnswer(result.revision, result.changed), 200
        if isinstance(result, AuthRefused):
            return error(REFUSAL_STATUS[result.code], result.error, code=result.code)
        if isinstance(result, PermissionDenied):
            return error(403, result.error, code="permission_denied")
        return result

    async def confirm_read() -> Any:
        try:
            await node.linearizable_barrier()
        except NotLeaderError as exc:
            return not_leader(node, exc)
        except ReadAborted as exc:
            return retry_later(str(exc))
        return None

    def leader_first() -> Any:
        """Hash only on the leader: a follower sends the client there first."""
        if node.core.role is not RaftRole.LEADER:
            return not_leader(node)
        return None

    async def hashed(password: str | None) -> str | tuple[dict[str, Any], int] | None:
        if password is None:
            return None
        problem = password_problem(password)
        if problem is not None:
            return error(400, problem, code="bad_request")
        result: str = await run_hash(hash_password, password)
        return result

    # -- logging in ------------------------------------------------------------------

    @app.post(f"{prefix}/auth/token")
    @validate_request(TokenRequest)
    @validate_response(TokenAnswer, 200)
    @validate_response(CodedError, 401)
    @validate_response(CodedError, 429)
    async def token(data: TokenRequest) -> Any:
        """A token for ``Authorization: Bearer``, good on every node of the
        cluster for ``expires_in`` seconds. After five failed attempts for
        a name (or from an address) each further one waits longer (429,
        ``Retry-After``), doubling up to a minute."""
        state = node.kv.auth
        if not state.enabled:
            return error(400, "auth is not enabled: no token is needed", code="auth_not_enabled")
        if (out_of_touch := node.out_of_touch()) is not None:
            return retry_later(f"this node cannot check passwords now: {out_of_touch}")
        address = str(request.remote_addr)
        subjects = (("name", data.name), ("address", address))
        wait = throttle.wait_s(*subjects)
        if wait > 0:
            node_metrics.LOGINS.labels("throttled").inc()
            return (
                {"error": "too many failed attempts: wait before trying again", "code": "too_many_attempts"},
                429,
                {"Retry-After": str(math.ceil(wait))},
            )
        user = state.user(data.name)
        stored = user.password_hash if user is not None else None
        try:
            matches = await run_hash(verify_password, data.password, stored or await decoy_hash())
        except BadHash:
            matches = False
        now_user = node.kv.auth.user(data.name)  # the state may have moved while hashing
        if not matches or user is None or stored is None or now_user != user:
            throttle.failed(*subjects)
            node_metrics.LOGINS.labels("failed").inc()
            node_metrics.CLIENT_REQUESTS_REFUSED.labels("401").inc()
            return (
                {"error": "wrong user name or password", "code": "unauthorized"},
                401,
                {"WWW-Authenticate": 'Bearer realm="raft-trio"'},
            )
        throttle.succeeded(("name", data.name))
        node_metrics.LOGINS.labels("ok").inc()
        ttl = node.security.token_ttl_s
        key = token_key(node.kv.auth.signing_key, node.security.cluster_secret)
        answer = TokenAnswer(issue_token(key, user.name, user.revision, ttl, time.time()), ttl)
        return answer, 200, {"Cache-Control": "no-store"}

    @app.get(f"{prefix}/auth/status")
    @validate_response(AuthStatusAnswer, 200)
    async def auth_status() -> Any:
        """Whether auth is on, its revision, and who is asking."""
        state = node.kv.auth
        principal = principal_of(request.scope)
        if principal is None:
            return AuthStatusAnswer(state.enabled, state.revision), 200
        return AuthStatusAnswer(state.enabled, state.revision, principal.user, principal.root), 200

    # -- the switch -----------------------------------------------------------------------

    @app.post(f"{prefix}/auth/enable")
    @validate_response(ChangeAnswer, 200)
    @validate_response(CodedError, 409)
    async def enable() -> Any:
        """Turn auth on: needs a user ``root`` (which holds the role
        ``root``). The first enable also makes the cluster's token key."""
        return await change(AuthEnable(secrets.token_bytes(32)))

    @app.post(f"{prefix}/auth/disable")
    @validate_response(ChangeAnswer, 200)
    async def disable() -> Any:
        """Turn auth off: every request is allowed again."""
        return await change(AuthDisable())

    # -- users ------------------------------------------------------------------------------

    @app.get(f"{prefix}/auth/users")
    @validate_response(UsersAnswer, 200)
    async def list_users() -> Any:
        if (answer := await confirm_read()) is not None:
            return answer
        users = sorted(node.kv.auth.users.values(), key=lambda u: u.name)
        return UsersAnswer(
            [UserAnswer(u.name, list(u.roles), u.password_hash is not None) for u in users]
        ), 200

    @app.get(f"{prefix}/auth/users/<name>")
    @validate_response(UserAnswer, 200)
    @validate_response(CodedError, 404)
    async def get_user(name: str) -> Any:
        if (answer := await confirm_read()) is not None:
            return answer
        user = node.kv.auth.user(name)
        if user is None:
            return error(404, f"user {name!r} not found", code="user_not_found")
        return UserAnswer(user.name, list(user.roles), user.password_hash is not None), 200

    @app.post(f"{prefix}/auth/users")
    @validate_request(UserRequest)
    @validate_response(ChangeAnswer, 200)
    @validate_response(CodedError, 400)
    @validate_response(CodedError, 409)
    async def add_user(data: UserRequest) -> Any:
        """Add a user (``password`` null: it logs in with a client
        certificate only). The user ``root`` holds the role ``root``."""
        if not valid_name(data.name):
            return error(
                400,
                f"{data.name!r} is not a user name (letters, digits, . _ @ -; up to 128)",
                code="bad_request",
            )
        if (redirect := leader_first()) is not None:
            return redirect
        password_hash = await hashed(data.password)
        if isinstance(password_hash, tuple):
            return password_hash
        return await change(UserAdd(data.name, password_hash))

    @app.delete(f"{prefix}/auth/users/<name>")
    @validate_response(ChangeAnswer, 200)
    @validate_response(CodedError, 404)
    async def delete_user(name: str) -> Any:
        """Delete a user: its tokens stop working at once."""
        return await change(UserDelete(name))

    @app.put(f"{prefix}/auth/users/<name>/password")
    @validate_request(PasswordRequest)
    @validate_response(ChangeAnswer, 200)
    @validate_response(CodedError, 400)
    @validate_response(CodedError, 404)
    async def set_password(name: str, data: PasswordRequest) -> Any:
        """A new password: the user's earlier tokens stop working."""
        if (redirect := leader_first()) is not None:
            return redirect
        password_hash = await hashed(data.password)
        if isinstance(password_hash, tuple):
            return password_hash
        return await change(UserPassword(name, password_hash))

    @app.put(f"{prefix}/auth/users/<name>/roles/<role>")
    @validate_response(ChangeAnswer, 200)
    @validate_response(CodedError, 404)
    async def grant_role(name: str, role: str) -> Any:
        return await change(UserGrantRole(name, role))

    @app.delete(f"{prefix}/auth/users/<name>/roles/<role>")
    @validate_response(ChangeAnswer, 200)
    @validate_response(CodedError, 404)
    async def revoke_role(name: str, role: str) -> Any:
        return await change(UserRevokeRole(name, role))

    # -- roles --------------------------------------------------------------------------------

    @app.get(f"{prefix}/auth/roles")
    @validate_response(RolesAnswer, 200)
    async def list_roles() -> Any:
        if (answer := await confirm_read()) is not None:
            return answer
        roles = sorted(node.kv.auth.roles.values(), key=lambda r: r.name)
        return RolesAnswer([RoleAnswer(r.name, [_permission(g) for g in r.grants]) for r in roles]), 200

    @app.get(f"{prefix}/auth/roles/<name>")
    @validate_response(RoleAnswer, 200)
    @validate_response(CodedError, 404)
    async def get_role(name: str) -> Any:
        if (answer := await confirm_read()) is not None:
            return answer
        role = node.kv.auth.roles.get(name)
        if role is None:
            return error(404, f"role {name!r} not found", code="role_not_found")
        return RoleAnswer(role.name, [_permission(g) for g in role.grants]), 200

    @app.post(f"{prefix}/auth/roles")
    @validate_request(RoleRequest)
    @validate_response(ChangeAnswer, 200)
    @validate_response(CodedError, 400)
    @validate_response(CodedError, 409)
    async def add_role(data: RoleRequest) -> Any:
        if not valid_name(data.name):
            return error(
                400,
                f"{data.name!r} is not a role name (letters, digits, . _ @ -; up to 128)",
                code="bad_request",
            )
        return await change(RoleAdd(data.name))

    @app.delete(f"{prefix}/auth/roles/<name>")
    @validate_response(ChangeAnswer, 200)
    @validate_response(CodedError, 404)
    async def delete_role(name: str) -> Any:
        """Delete a role; users holding it lose it."""
        return await change(RoleDelete(name))

    @app.post(f"{prefix}/auth/roles/<name>/permissions")
    @validate_request(PermissionModel)
    @validate_response(ChangeAnswer, 200)
    @validate_response(CodedError, 400)
    @validate_response(CodedError, 404)
    async def grant_permission(name: str, data: PermissionModel) -> Any:
        """Give the role read, write or readwrite on a key, a prefix or a
        range; it replaces the role's permission on that same target."""
        target = _target(data.key, data.prefix, data.end)
        if isinstance(target, str):
            return error(400, target, code="bad_request")
        key, scope, end = target
        return await change(RoleGrant(name, Grant(data.access, key, scope, end)))

    @app.post(f"{prefix}/auth/roles/<name>/revoke")
    @validate_request(RevokeRequest)
    @validate_response(ChangeAnswer, 200)
    @validate_response(CodedError, 400)
    @validate_response(CodedError, 404)
    async def revoke_permission(name: str, data: RevokeRequest) -> Any:
        """Take the role's permission on exactly this key, prefix or range."""
        target = _target(data.key, data.prefix, data.end)
        if isinstance(target, str):
            return error(400, target, code="bad_request")
        key, scope, end = target
        return await change(RoleRevoke(name, key, scope, end))
