"""Who is asking, and may they: the gate in front of every client request.

:class:`AuthGate` wraps the whole app (the lean routes and Quart). While
auth is off it lets everything through as before (auth management then
needs the admin token when one is configured). While auth is on:

1. ``/healthz``, ``/readyz``, ``/metrics`` (but those named by
   ``RAFT_AUTH_PROTECT``: any user), the docs, the peer endpoints
   (signed by the cluster secret, and with ``peer_cert_auth`` holding a
   certificate whose CN is the sender's id) and ``POST {api}/auth/token``
   (the login) are open.
2. Any other request proves its user (else 401): ``Authorization: Bearer``
   with a token from the login (:mod:`raft_trio.auth`) or with the admin
   token (which acts as ``root``), or a client certificate signed by the
   cluster's CA whose CN names a user. Another node of the cluster may
   read the status and the member list with its own credential (made from
   the cluster secret: ``Security.node_credential``).
3. A node out of touch with the cluster refuses anything that needs a
   decision on permissions (503): see ``RaftNode.out_of_touch``. Watching
   the node itself (status, events, the member list) needs only a user.
4. What the path names is checked (else 403): a key's read or write, a
   lease's keys, root for backups, membership, leadership and auth
   management. What only the handler knows is checked there with
   :func:`refusal` (ranges and watches, after parsing; a lease's keys, as
   its answer lists them: :func:`lease_keys_refusal`), and every write is
   checked again where it applies (the state machine, with the
   :class:`~raft_trio.kv.Caller` the handler stamps from :func:`caller`).

The user a request was admitted as stays in its ASGI scope. A stream
(server-sent events) is checked again before every chunk once users or
roles changed: a watcher whose read permission went, or whose user went,
gets an ``error`` event and the stream ends.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

import trio

from .. import schema
from ..asgi import certificate_name, client_certificate
from ..auth import MAX_TOKEN_CHARS, TokenError, token_user
from ..kv import ROOT, Need, Txn, key_interval, parse_lease_id
from ..node import RaftNode
from ..node import metrics as node_metrics
from ..peer.auth import RefusalLog
from ..peer.wire import PEER_PATHS
from ._principal import CHECKED_KEY, PRINCIPAL_KEY, Principal, principal_of, still_allowed
from .answers import Answer, error, forbidden, retry_later, route_path, sse
from .lean import peer_certificate_refusal, request_headers, send_answer

log = logging.getLogger(__name__)
Code = schema.Code

#: The login: open, rate-limited (raft_trio.auth.LoginThrottle).
TOKEN_PATH = "/auth/token"
#: Open with auth on (the contract's list); the docs are added by the app.
OPEN_PATHS = ("/healthz", "/readyz", "/metrics")


# -- what a request needs -----------------------------------------------------------

Kind = Literal["open", "observe", "user", "keys", "lease", "root", "manage"]


@dataclasses.dataclass(frozen=True)
class Rule:
    """What a request needs, from its method and path alone.

    - ``open``: nothing; ``observe``: a user (no decision on keys);
      ``user``: a user, and the handler checks the rest;
    - ``keys``: ``need`` on ``[start, end)``; ``lease``: ``need`` on every
      key attached to ``lease`` (its id as the client wrote it): write, to
      keep it alive or revoke it (the handler of ``GET`` checks read on
      the keys its answer lists, after the read barrier);
    - ``root``: the role root (backups, membership, leadership);
      ``manage``: auth management, root (the admin token while auth is off).
    """

    kind: Kind
    need: Need = "read"
    start: str = ""
    end: str | None = None
    lease: str = ""


def rule_for(
    method: str,
    path: str,
    api_prefix: str,
    open_extra: tuple[str, ...] = (),
    protected: tuple[str, ...] = (),
) -> Rule:
    """The rule of a request (``path`` as routed: without the root path);
    ``protected``: which of the open paths (named without their slash)
    need a user."""
    method = method.upper()
    if path in OPEN_PATHS:
        return Rule("observe" if path[1:] in protected else "open")
    if path in PEER_PATHS or any(under(path, extra) for extra in open_extra):
        return Rule("open")
    api = api_prefix.rstrip("/")
    if not path.startswith(api + "/"):
        return Rule("user")  # nothing of the API: Quart answers 404
    rest = path[len(api) :]
    if rest == TOKEN_PATH:
        return Rule("open")
    if rest.startswith("/kv/") and len(rest) > len("/kv/"):
        key = rest[len("/kv/") :]
        need: Need = "read" if method in ("GET", "HEAD") else "write"
        return Rule("keys", need, *key_interval(key))
    if rest.startswith("/leases/"):
        lease, _, tail = rest[len("/leases/") :].partition("/")
        if method in ("GET", "HEAD") and not tail:
            return Rule("user")  # lease_info checks the keys it found (lease_keys_refusal)
        return Rule("lease", "write", lease=lease)
    if rest == "/snapshot" or rest.startswith("/leadership/"):
        return Rule("root")
    if rest == "/members" or rest.startswith("/members/"):
        return Rule("observe" if method in ("GET", "HEAD") else "root")
    if rest == "/auth/status":
        return Rule("observe")
    if rest.startswith("/auth/"):
        return Rule("manage")
    if rest in ("/status", "/events"):
        return Rule("observe")
    return Rule("user")


def under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or below it, segment by segment: the
    docs at ``/a`` do not open ``/api``."""
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


# -- helpers for the handlers ------------------------------------------------------------


def unauthorized(message: str) -> Answer:
    """401: who are you? (Says how to answer in ``WWW-Authenticate``.)"""
    return error(401, Code.UNAUTHORIZED, message, ("WWW-Authenticate", 'Bearer realm="raft-trio"'))


def _forbidden(message: str) -> Answer:
    node_metrics.CLIENT_REQUESTS_REFUSED.labels("403").inc()
    return forbidden(message)


def _lapsed(scope: Any) -> Answer:
    """The 403 for a request whose admission no longer holds when its
    handler decides, after its read barrier (the gate decided before it):
    auth turned on meanwhile for a request admitted without a user, its
    user gone or its password changed, root taken from a user admitted as
    root. A single key's read and a stream make the same test
    (:func:`still_allowed`)."""
    principal = principal_of(scope)
    who = "auth was turned on" if principal is None else f"user {principal.user!r}"
    return _forbidden(f"{who}: what admitted this request no longer holds")


def admission_refusal(scope: Any, node: RaftNode) -> Answer | None:
    """None while what admitted the request still holds, else the 403: for
    a handler that read after a barrier what the gate let it read (a
    backup, the users and roles) before the barrier."""
    return None if still_allowed(scope, node) else _lapsed(scope)


def refusal(scope: Any, node: RaftNode, need: Need, start: str, end: str | None) -> Answer | None:
    """None when the request's user may ``need`` every key of ``[start,
    end)`` (remembered, so a stream is checked again when roles change),
    and still passes what admitted it, else the 403 answer."""
    principal = principal_of(scope)
    if principal is not None and not principal.root:
        scope.setdefault(CHECKED_KEY, []).append((need, start, end))
    if still_allowed(scope, node):
        return None
    if principal is None or principal.root or node.kv.permissions.may(principal.user, need, start, end):
        return _lapsed(scope)
    what = f"every key from {start!r}" + (f" to {end!r}" if end is not None else " on")
    return _forbidden(f"user {principal.user!r} has no {need} permission on {what}")


def lease_keys_refusal(scope: Any, node: RaftNode, need: Need, keys: Iterable[str]) -> Answer | None:
    """The 403 when the request's user may not ``need`` one of ``keys``
    (a lease's, as its answer would list them: etcd's LeaseTimeToLive
    refuses rather than leave out what the caller may not read)."""
    if (lapsed := admission_refusal(scope, node)) is not None:
        return lapsed
    principal = principal_of(scope)
    if principal is None or principal.root:
        return None
    if all(node.kv.permissions.may_key(principal.user, need, key) for key in keys):
        return None
    # Not which key: the caller may not know it exists.
    return _forbidden(f"user {principal.user!r} has no {need} permission on every key attached to the lease")


def txn_refusal(scope: Any, node: RaftNode, txn: Txn) -> Answer | None:
    """The 403 for a transaction with a compare or an operation the user
    may not do (checked again on apply)."""
    principal = principal_of(scope)
    if principal is None or principal.root:
        return None
    reason = node.kv.permissions.txn_denial(principal.user, txn)
    return None if reason is None else _forbidden(f"user {principal.user!r}: {reason}")


# -- the gate ---------------------------------------------------------------------------------


class AuthGate:
    def __init__(
        self,
        app: Any,
        node: RaftNode,
        api_prefix: str,
        open_paths: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.node = node
        self.api_prefix = api_prefix.rstrip("/")
        self.open_paths = open_paths
        self.clock = clock
        self.refusals = RefusalLog(log)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        decision = self.admit(scope)
        if isinstance(decision, Answer):
            await self._refuse(scope, send, decision)
        elif decision == "open":
            await self.app(scope, receive, send)
        else:
            await self._serve(scope, receive, send)

    def admit(self, scope: Any) -> Answer | Literal["open", "admitted"]:
        """The gate's decision on an HTTP request: its refusal, or
        ``"open"`` (it passes untouched) or ``"admitted"`` (with the user
        it was admitted as in ``scope``, checked again while it streams).
        Says nothing and counts nothing, so that it may be asked on a copy
        of the scope (:mod:`raft_trio.http.front`)."""
        path = route_path(scope)
        security = self.node.security
        rule = rule_for(scope["method"], path, self.api_prefix, self.open_paths, security.protected)
        if path in PEER_PATHS and security.peer_cert_auth:
            refused = self._peer_refusal(scope)
            if refused is not None:
                return unauthorized(refused)
        if rule.kind == "open":
            return "open"
        if not self.node.kv.auth.enabled:
            if rule.kind == "manage" and not security.admin_allowed(
                request_headers(scope).get("authorization")
            ):
                return unauthorized("auth management needs the admin token while auth is off")
            # A stream begun now ends when auth is turned on.
            return "admitted"
        principal = self._authenticate(scope, request_headers(scope))
        if isinstance(principal, str):
            return unauthorized(principal)
        scope[PRINCIPAL_KEY] = principal
        if rule.kind != "observe" and principal.via != "admin token":
            out_of_touch = self.node.out_of_touch()
            if out_of_touch is not None:
                return retry_later(f"this node cannot decide on permissions now: {out_of_touch}")
        reason = self._authorize(principal, rule, scope)
        if reason is not None:
            return forbidden(reason)
        return "admitted"

    # -- who --------------------------------------------------------------------------

    def _authenticate(self, scope: Any, headers: dict[str, str]) -> Principal | str:
        """The request's principal, or why it has none (the 401's text)."""
        state = self.node.kv.auth
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, credential = authorization.partition(" ")
            credential = credential.strip()
            if scheme.lower() != "bearer" or not credential:
                return "Authorization must be 'Bearer <token>' (a token from POST /api/auth/token)"
            security = self.node.security
            if security.admin_token is not None and security.admin_allowed(authorization):
                return Principal(ROOT, True, "admin token")
            if (node_id := security.credential_node(credential, self.clock())) is not None:
                return Principal(f"node {node_id}", False, "node")
            if len(credential) > MAX_TOKEN_CHARS:
                return "malformed token: too long"
            try:
                name = token_user(state, self.node.security.cluster_secret, credential, self.clock())
            except TokenError as exc:
                return str(exc)
            user = state.user(name)
            assert user is not None
            return Principal(name, ROOT in user.roles, "token", user.revision)
        certificate = client_certificate(scope) if self.node.security.client_cert_auth else None
        if certificate is not None:
            common_name = certificate_name(certificate)
            if common_name in self.node.membership.ids:
                # A node's own certificate (or one made in its name) is no
                # user's, whatever users exist.
                return f"the client certificate's CN {common_name!r} is a member of the cluster, not a user"
            user = state.user(common_name) if common_name is not None else None
            if user is None:
                return f"the client certificate's CN {common_name!r} is not a user of this cluster"
            return Principal(user.name, ROOT in user.roles, "certificate", user.revision)
        return "authentication required: send Authorization: Bearer <token> (POST /api/auth/token)"

    def _peer_refusal(self, scope: Any) -> str | None:
        """Why a peer request lacks the certificate mutual TLS asks for."""
        return peer_certificate_refusal(client_certificate(scope), request_headers(scope))

    # -- may they ---------------------------------------------------------------------------

    def _authorize(self, principal: Principal, rule: Rule, scope: Any) -> str | None:
        """Why ``principal`` may not do what ``rule`` says (None: it may)."""
        if principal.via == "node":
            # A node's own credential reads the cluster's state, nothing else.
            return None if rule.kind == "observe" else f"{principal.user} may only read the cluster's status"
        if principal.root or rule.kind in ("observe", "user"):
            return None
        user = principal.user
        if rule.kind in ("root", "manage"):
            return f"user {user!r} lacks the role {ROOT!r}, which this request needs"
        permissions = self.node.kv.permissions
        if rule.kind == "keys":
            scope.setdefault(CHECKED_KEY, []).append((rule.need, rule.start, rule.end))
            if permissions.may(user, rule.need, rule.start, rule.end):
                return None
            return f"user {user!r} has no {rule.need} permission on {rule.start!r}"
        assert rule.kind == "lease"
        lease = parse_lease_id(rule.lease)
        held = self.node.kv.leases.get(lease) if lease is not None else None
        for key in sorted(held.keys) if held is not None else ():
            if not permissions.may_key(user, rule.need, key):
                # Not which key: the caller may not know it exists.
                return f"user {user!r} has no {rule.need} permission on every key attached to the lease"
        return None  # no such lease: the handler answers 404

    # -- answers -----------------------------------------------------------------------------

    async def _refuse(self, scope: Any, send: Any, answer: Answer) -> None:
        node_metrics.CLIENT_REQUESTS_REFUSED.labels(str(answer.status)).inc()
        if answer.status in (401, 403):
            client = scope.get("client")
            message = getattr(answer.body, "error", "")
            where = str(client[0]) if client else "unknown"
            self.refusals.refused(f"{scope['method']} {route_path(scope)}", where, message)
        await send_answer(send, answer)

    async def _serve(self, scope: Any, receive: Any, send: Any) -> None:
        # Streams (server-sent events) are GETs; the rest pass straight on.
        if scope["method"] == "GET":
            await self._serve_checked(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _serve_checked(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve, checking a stream again before each chunk once the auth
        state moved on: a revoked watcher gets an ``error`` event and the
        stream ends (its handler is cancelled)."""
        state = self.node.kv.auth
        checked_generation = state.generation
        streaming = False
        ended = False

        with trio.CancelScope() as scope_of_app:

            async def checked_send(message: Any) -> None:
                nonlocal checked_generation, streaming, ended
                if ended:
                    return
                if message["type"] == "http.response.start":
                    streaming = any(
                        name.lower() == b"content-type" and value.startswith(b"text/event-stream")
                        for name, value in message.get("headers", ())
                    )
                elif (
                    streaming
                    and message["type"] == "http.response.body"
                    and state.generation != checked_generation
                ):
                    checked_generation = state.generation
                    if not still_allowed(scope, self.node):
                        ended = True
                        body = schema.ErrorAnswer(
                            "permission revoked: the stream ends", Code.PERMISSION_DENIED
                        )
                        chunk = sse("error", body)
                        await send({"type": "http.response.body", "body": chunk, "more_body": False})
                        scope_of_app.cancel()
                        return
                await send(message)

            await self.app(scope, receive, checked_send)
