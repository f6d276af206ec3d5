"""The auth API: log in for a token, and manage users, roles and the
auth switch (etcd's ``auth``, ``user`` and ``role`` commands over HTTP).

- ``POST {api}/auth/token {"name", "password"}`` → ``{"token",
  "expires_in"}``: open, and slowed after failures
  (:class:`raft_trio.auth.LoginThrottle`; 429 with ``Retry-After``).
- ``GET {api}/auth/status``: whether auth is on, and who is asking.
- ``POST {api}/auth/enable`` / ``disable``; ``{api}/auth/users[/NAME
  [/password | /roles/ROLE]]``; ``{api}/auth/roles[/NAME[/permissions |
  /revoke]]``.

Changes go through the log like any write: answered once applied, by the
leader (a follower redirects, 307). The leader hashes a password before it
proposes (in a thread: scrypt is CPU-heavy), so no replica hashes on apply.
Who may call what is the gate's business (:mod:`raft_trio.http.auth`).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio
from quart import request
from quart_schema import document_response
from quart_trio import QuartTrio

from .. import schema
from ..auth import (
    BadHash,
    LoginThrottle,
    hash_password,
    issue_token,
    password_problem,
    token_key,
    verify_password,
)
from ..kv import (
    MAX_KEY_BYTES,
    AuthCommand,
    AuthDisable,
    AuthEnable,
    Grant,
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
from ..node import NotLeaderError, RaftNode
from ..node import metrics as node_metrics
from ._principal import caller, principal_of
from ._respond import answered
from .answers import (
    Answer,
    Target,
    bad_request,
    confirm_read,
    error,
    name_taken,
    not_leader,
    retry_later,
    write,
)
from .auth import admission_refusal
from .bodies import validate_body

Code = schema.Code
T = TypeVar("T")

#: Where :func:`add_auth_routes` leaves the app's failed-login limit.
LOGIN_THROTTLE_KEY = "raft_trio.login_throttle"
#: scrypt computations at once: each holds 32 MiB and a core for a quarter second.
MAX_CONCURRENT_HASHES = 2


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
        return "the key is empty (with prefix true, the empty prefix is every key)"
    return key, "key", None


def _permission(grant: Grant) -> schema.Permission:
    if grant.scope == "prefix":
        return schema.Permission(grant.access, grant.key, prefix=True)
    if grant.scope == "range":
        return schema.Permission(grant.access, grant.key, end=grant.end or "")
    return schema.Permission(grant.access, grant.key)


def target() -> Target:
    return Target.of_scope(dict(request.scope))


def add_auth_routes(
    app: QuartTrio, node: RaftNode, prefix: str, throttle: LoginThrottle | None = None
) -> None:
    throttle = throttle if throttle is not None else LoginThrottle()
    app.extensions[LOGIN_THROTTLE_KEY] = throttle
    hashing = trio.CapacityLimiter(MAX_CONCURRENT_HASHES)
    #: Verified against when the user does not exist, so that the answer
    #: takes as long and says as little as for a wrong password.
    decoy: list[str] = []

    async def run_hash(function: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(function, *args, limiter=hashing)

    async def decoy_hash() -> str:
        if not decoy:
            decoy.append(await run_hash(hash_password, secrets.token_urlsafe(16)))
        return decoy[0]

    async def change(command: AuthCommand) -> Answer:
        return await write(node, command, target(), caller(request.scope))

    async def on_leader(make: Callable[[], Awaitable[Answer]]) -> Answer:
        """Hash only on the leader: a follower sends the client there first
        (held while its leader is quiet, as a write is)."""
        try:
            await node.require_leadership()
        except NotLeaderError as exc:
            return not_leader(node, target(), exc)
        return await make()

    async def hashed(password: str | None) -> str | Answer | None:
        if password is None:
            return None
        problem = password_problem(password)
        if problem is not None:
            return bad_request(problem)
        return await run_hash(hash_password, password)

    async def read_barrier() -> Answer | None:
        """None once users and roles may be read here (a linearizable
        read), by a caller still allowed to after the barrier; else the
        answer (307, 503, 403)."""
        if (refused := await confirm_read(node, "linearizable", target())) is not None:
            return refused
        return admission_refusal(request.scope, node)

    def unauthorized(message: str) -> Answer:
        node_metrics.CLIENT_REQUESTS_REFUSED.labels("401").inc()
        return error(401, Code.UNAUTHORIZED, message, ("WWW-Authenticate", 'Bearer realm="raft-trio"'))

    # -- logging in ------------------------------------------------------------------

    @app.post(f"{prefix}/auth/token")
    @validate_body(schema.TokenRequest)
    @document_response(schema.TokenAnswer, 200)
    @document_response(schema.ErrorAnswer, 400)
    @document_response(schema.ErrorAnswer, 401)
    @document_response(schema.ErrorAnswer, 429)
    @answered
    async def token(data: schema.TokenRequest) -> Answer:
        """A token for ``Authorization: Bearer``, good on every node of the
        cluster for ``expires_in`` seconds. After five failed attempts for
        a name (or from an address) each further one must wait (429,
        ``Retry-After``): 1 s, then twice as long each time, up to 60 s."""
        state = node.kv.auth
        if not state.enabled:
            return error(400, Code.AUTH_NOT_ENABLED, "auth is not enabled: no token is needed")
        if (out_of_touch := node.out_of_touch()) is not None:
            return retry_later(f"this node cannot check passwords now: {out_of_touch}")
        address = ("address", str(request.remote_addr))
        # A name no user may have is not remembered (a body may hold a name
        # of megabytes, and the limit remembers thousands of subjects): it
        # fails as a wrong password would, counted against the address.
        subjects = (("name", data.name), address) if valid_name(data.name) else (address,)
        wait = throttle.wait_s(*subjects)
        if wait > 0:
            node_metrics.LOGINS.labels("throttled").inc()
            message = "too many failed attempts: wait before trying again"
            return error(429, Code.TOO_MANY_ATTEMPTS, message, ("Retry-After", str(math.ceil(wait))))
        user = state.user(data.name)
        stored = user.password_hash if user is not None else None
        # Counted as a failure while checked: a burst of guesses sent at
        # once is slowed as the same guesses one at a time.
        with throttle.attempt(*subjects):
            try:
                matches = await run_hash(verify_password, data.password, stored or await decoy_hash())
            except BadHash:
                matches = False
            if not matches or user is None or stored is None or node.kv.auth.user(data.name) != user:
                # (The last: the user changed while its password was checked.)
                throttle.failed(*subjects)
                node_metrics.LOGINS.labels("failed").inc()
                return unauthorized("wrong user name or password")
            throttle.succeeded(("name", data.name))
        node_metrics.LOGINS.labels("ok").inc()
        ttl = node.security.token_ttl_s
        key = token_key(node.kv.auth.signing_key, node.security.cluster_secret)
        issued = issue_token(key, user.name, user.revision, ttl, time.time())
        return Answer(200, schema.TokenAnswer(issued, ttl), (("Cache-Control", "no-store"),))

    @app.get(f"{prefix}/auth/status")
    @document_response(schema.AuthStatus, 200)
    @answered
    async def auth_status() -> Answer:
        """Whether auth is on, its revision, and who is asking."""
        state = node.kv.auth
        principal = principal_of(request.scope)
        if principal is None:
            return Answer(200, schema.AuthStatus(state.enabled, state.revision))
        return Answer(200, schema.AuthStatus(state.enabled, state.revision, principal.user, principal.root))

    # -- the switch -----------------------------------------------------------------------

    @app.post(f"{prefix}/auth/enable")
    @document_response(schema.AuthChangeAnswer, 200)
    @document_response(schema.ErrorAnswer, 409)
    @answered
    async def enable() -> Answer:
        """Turn auth on: needs a user ``root`` (which holds the role
        ``root``). The first enable also makes the cluster's token key."""
        return await change(AuthEnable(secrets.token_bytes(32)))

    @app.post(f"{prefix}/auth/disable")
    @document_response(schema.AuthChangeAnswer, 200)
    @answered
    async def disable() -> Answer:
        """Turn auth off: every request is allowed again."""
        return await change(AuthDisable())

    # -- users ------------------------------------------------------------------------------

    def user_answer(name: str) -> schema.UserAnswer | None:
        user = node.kv.auth.user(name)
        if user is None:
            return None
        return schema.UserAnswer(user.name, list(user.roles), user.password_hash is not None)

    @app.get(f"{prefix}/auth/users")
    @document_response(schema.UsersAnswer, 200)
    @answered
    async def list_users() -> Answer:
        """Every user, its roles and whether it has a password (a linearizable read)."""
        if (refused := await read_barrier()) is not None:
            return refused
        names = sorted(node.kv.auth.users)
        return Answer(200, schema.UsersAnswer([u for name in names if (u := user_answer(name)) is not None]))

    @app.get(f"{prefix}/auth/users/<name>")
    @document_response(schema.UserAnswer, 200)
    @document_response(schema.ErrorAnswer, 404)
    @answered
    async def get_user(name: str) -> Answer:
        """One user, its roles and whether it has a password; 404 if there is none."""
        if (refused := await read_barrier()) is not None:
            return refused
        found = user_answer(name)
        if found is None:
            return error(404, Code.USER_NOT_FOUND, f"user {name!r} not found")
        return Answer(200, found)

    @app.post(f"{prefix}/auth/users")
    @validate_body(schema.UserRequest)
    @document_response(schema.AuthChangeAnswer, 200)
    @document_response(schema.ErrorAnswer, 400)
    @document_response(schema.ErrorAnswer, 409)
    @answered
    async def add_user(data: schema.UserRequest) -> Answer:
        """Add a user (``password`` null: it logs in with a client
        certificate only). The user ``root`` holds the role ``root``."""
        if not valid_name(data.name):
            return bad_request(f"{data.name!r} is not a user name (letters, digits, . _ @ -; up to 128)")
        if data.name in node.membership.ids:
            return name_taken(f"{data.name!r} is a member of the cluster")

        async def add() -> Answer:
            password_hash = await hashed(data.password)
            if isinstance(password_hash, Answer):
                return password_hash
            return await change(UserAdd(data.name, password_hash))

        return await on_leader(add)

    @app.delete(f"{prefix}/auth/users/<name>")
    @document_response(schema.AuthChangeAnswer, 200)
    @document_response(schema.ErrorAnswer, 404)
    @answered
    async def delete_user(name: str) -> Answer:
        """Delete a user: its tokens stop working at once."""
        return await change(UserDelete(name))

    @app.put(f"{prefix}/auth/users/<name>/password")
    @validate_body(schema.PasswordRequest)
    @document_response(schema.AuthChangeAnswer, 200)
    @document_response(schema.ErrorAnswer, 400)
    @document_response(schema.ErrorAnswer, 404)
    @answered
    async def set_password(name: str, data: schema.PasswordRequest) -> Answer:
        """A new password (null: none); the user's earlier tokens stop working."""

        async def set_it() -> Answer:
            password_hash = await hashed(data.password)
            if isinstance(password_hash, Answer):
                return password_hash
            return await change(UserPassword(name, password_hash))

        return await on_leader(set_it)

    @app.put(f"{prefix}/auth/users/<name>/roles/<role>")
    @document_response(schema.AuthChangeAnswer, 200)
    @document_response(schema.ErrorAnswer, 404)
    @answered
    async def grant_role(name: str, role: str) -> Answer:
        """Give the user the role (both must exist)."""
        return await change(UserGrantRole(name, role))

    @app.delete(f"{prefix}/auth/users/<name>/roles/<role>")
    @document_response(schema.AuthChangeAnswer, 200)
    @document_response(schema.ErrorAnswer, 404)
    @answered
    async def revoke_role(name: str, role: str) -> Answer:
        """Take the role from the user."""
        return await change(UserRevokeRole(name, role))

    # -- roles --------------------------------------------------------------------------------

    def role_answer(name: str) -> schema.RoleAnswer | None:
        role = node.kv.auth.roles.get(name)
        if role is None:
            return None
        return schema.RoleAnswer(role.name, [_permission(grant) for grant in role.grants])

    @app.get(f"{prefix}/auth/roles")
    @document_response(schema.RolesAnswer, 200)
    @answered
    async def list_roles() -> Answer:
        """Every role and its permissions (a linearizable read)."""
        if (refused := await read_barrier()) is not None:
            return refused
        names = sorted(node.kv.auth.roles)
        return Answer(200, schema.RolesAnswer([r for name in names if (r := role_answer(name)) is not None]))

    @app.get(f"{prefix}/auth/roles/<name>")
    @document_response(schema.RoleAnswer, 200)
    @document_response(schema.ErrorAnswer, 404)
    @answered
    async def get_role(name: str) -> Answer:
        """One role and its permissions; 404 if there is none."""
        if (refused := await read_barrier()) is not None:
            return refused
        found = role_answer(name)
        if found is None:
            return error(404, Code.ROLE_NOT_FOUND, f"role {name!r} not found")
        return Answer(200, found)

    @app.post(f"{prefix}/auth/roles")
    @validate_body(schema.RoleRequest)
    @document_response(schema.AuthChangeAnswer, 200)
    @document_response(schema.ErrorAnswer, 400)
    @document_response(schema.ErrorAnswer, 409)
    @answered
    async def add_role(data: schema.RoleRequest) -> Answer:
        """Add a role, with no permission yet (``role grant`` gives it some)."""
        if not valid_name(data.name):
            return bad_request(f"{data.name!r} is not a role name (letters, digits, . _ @ -; up to 128)")
        return await change(RoleAdd(data.name))

    @app.delete(f"{prefix}/auth/roles/<name>")
    @document_response(schema.AuthChangeAnswer, 200)
    @document_response(schema.ErrorAnswer, 404)
    @answered
    async def delete_role(name: str) -> Answer:
        """Delete a role; users holding it lose it."""
        return await change(RoleDelete(name))

    @app.post(f"{prefix}/auth/roles/<name>/permissions")
    @validate_body(schema.Permission)
    @document_response(schema.AuthChangeAnswer, 200)
    @document_response(schema.ErrorAnswer, 400)
    @document_response(schema.ErrorAnswer, 404)
    @answered
    async def grant_permission(name: str, data: schema.Permission) -> Answer:
        """Give the role read, write or readwrite on a key, a prefix or a
        range; it replaces the role's permission on that same target."""
        found = _target(data.key, data.prefix, data.end)
        if isinstance(found, str):
            return bad_request(found)
        key, scope, end = found
        if end is not None and end <= key:
            # A range of no key: stored, it let the role do nothing (etcd
            # refuses it too). Revoking one stays possible: older grants.
            return bad_request(
                f"end must sort after key ({end!r} is not after {key!r}), or be '' for every key from key on"
            )
        return await change(RoleGrant(name, Grant(data.access, key, scope, end)))

    @app.post(f"{prefix}/auth/roles/<name>/revoke")
    @validate_body(schema.RevokeRequest)
    @document_response(schema.AuthChangeAnswer, 200)
    @document_response(schema.ErrorAnswer, 400)
    @document_response(schema.ErrorAnswer, 404)
    @answered
    async def revoke_permission(name: str, data: schema.RevokeRequest) -> Answer:
        """Take the role's permission on exactly this key, prefix or range."""
        found = _target(data.key, data.prefix, data.end)
        if isinstance(found, str):
            return bad_request(found)
        key, scope, end = found
        return await change(RoleRevoke(name, key, scope, end))
