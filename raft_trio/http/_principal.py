"""Who a request was admitted as (set by the gate, raft_trio.http.auth),
and what the handlers derive from it: the stamp of a command, and whether
the request still passes its checks. Kept apart so that every module of
the package can read it without importing the gate."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ..kv import ROOT, Caller
from ..node import RaftNode

#: Where the principal, and the checks the request passed, live in its scope.
PRINCIPAL_KEY = "raft_trio.principal"
CHECKED_KEY = "raft_trio.checked"

Via = Literal["token", "certificate", "admin token", "node"]


@dataclasses.dataclass(frozen=True)
class Principal:
    user: str
    #: Holds the role root (or used the admin token).
    root: bool
    via: Via
    #: The user's revision when admitted (a new password ends its streams).
    revision: int = 0


def principal_of(scope: Any) -> Principal | None:
    principal = scope.get(PRINCIPAL_KEY)
    return principal if isinstance(principal, Principal) else None


def caller(scope: Any) -> Caller:
    """The stamp of a client's command: who asked (``""``: nobody logged
    in), and under which revision of the user its token was issued. The
    state machine checks the command against it on apply."""
    principal = principal_of(scope)
    if principal is None:
        return Caller("")
    if principal.via == "admin token":
        return Caller(ROOT)
    return Caller(principal.user, principal.revision if principal.via == "token" else 0)


def still_allowed(scope: Any, node: RaftNode) -> bool:
    """Whether the request's user still exists (with the revision it was
    admitted under), still holds root if admitted as root, and still
    passes every check it passed, under the auth state as it is now; a
    request admitted while auth was off, whether auth is still off."""
    principal = principal_of(scope)
    state = node.kv.auth
    if principal is None:
        return not state.enabled  # admitted while auth was off
    if principal.via in ("admin token", "node") or not state.enabled:
        return True
    user = state.user(principal.user)
    if user is None or (principal.via == "token" and user.revision != principal.revision):
        return False
    if principal.root:
        return state.is_root(principal.user)
    return all(
        node.kv.permissions.may(principal.user, need, start, end)
        for need, start, end in scope.get(CHECKED_KEY, ())
    )
