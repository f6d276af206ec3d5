"""The requests of the API, each built once as a :class:`~._calls.Call`
(what the blocking and the Trio client send alike), and the pieces of
their answers that both clients take apart alike."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable

import msgspec

from .. import schema
from ._calls import Call, json_body, kv_path
from ._errors import ClientError

UNSET = msgspec.UNSET


def new_idempotency_key() -> str:
    """A fresh ``Idempotency-Key``: 128 random bits."""
    return secrets.token_hex(16)


def get(key: str, stale: bool) -> Call[schema.KeyAnswer]:
    params = (("consistency", "stale"),) if stale else ()
    return Call("GET", kv_path(key), schema.KeyAnswer, params, repeatable=True, leader=not stale)


def put(
    key: str, value: str, lease: str | None, expect: str | msgspec.UnsetType | None = UNSET
) -> Call[schema.KeyAnswer]:
    body = json_body(schema.PutRequest(value, expect, lease))
    return Call("PUT", kv_path(key), schema.KeyAnswer, body=body, leader=True, write=True)


def delete(key: str) -> Call[schema.DeleteAnswer]:
    return Call("DELETE", kv_path(key), schema.DeleteAnswer, leader=True, write=True)


@dataclasses.dataclass(frozen=True)
class RangeSpec:
    """Which keys a range reads: those under ``prefix``, or from ``start``
    (inclusive) to ``end`` (exclusive), or every key."""

    prefix: str | None = None
    start: str | None = None
    end: str | None = None
    limit: int | None = None
    keys_only: bool = False
    count_only: bool = False
    stale: bool = False

    def call(self, after: str | None = None) -> Call[schema.RangeAnswer]:
        params: list[tuple[str, str]] = []
        for name, value in (
            ("prefix", self.prefix),
            ("start", self.start),
            ("end", self.end),
            ("after", after),
        ):
            if value is not None:
                params.append((name, value))
        if self.limit is not None:
            params.append(("limit", str(self.limit)))
        if self.keys_only:
            params.append(("keys_only", "true"))
        if self.count_only:
            params.append(("count_only", "true"))
        if self.stale:
            params.append(("consistency", "stale"))
        return Call("GET", "/kv", schema.RangeAnswer, tuple(params), repeatable=True, leader=not self.stale)


def txn(
    compare: Iterable[schema.Compare], success: Iterable[schema.Op], failure: Iterable[schema.Op]
) -> Call[schema.TxnAnswer]:
    body = json_body(schema.TxnRequest(list(compare), list(success), list(failure)))
    return Call("POST", "/txn", schema.TxnAnswer, body=body, leader=True, write=True)


def lease_path(lease: str) -> str:
    return "/leases/" + schema.quote_path(lease, safe="")


def grant_lease(ttl: int) -> Call[schema.LeaseAnswer]:
    body = json_body(schema.LeaseRequest(ttl))
    return Call("POST", "/leases", schema.LeaseAnswer, body=body, leader=True, write=True)


def keep_alive(lease: str) -> Call[schema.LeaseAnswer]:
    # Extending a lease again is harmless: safe to repeat.
    return Call("POST", lease_path(lease) + "/keepalive", schema.LeaseAnswer, repeatable=True, leader=True)


def lease_info(lease: str) -> Call[schema.LeaseInfoAnswer]:
    return Call("GET", lease_path(lease), schema.LeaseInfoAnswer, repeatable=True, leader=True)


def revoke_lease(lease: str) -> Call[schema.LeaseRevokedAnswer]:
    return Call("DELETE", lease_path(lease), schema.LeaseRevokedAnswer, leader=True, write=True)


def status() -> Call[schema.Status]:
    return Call("GET", "/status", schema.Status, repeatable=True)


def members() -> Call[schema.MembersAnswer]:
    return Call("GET", "/members", schema.MembersAnswer, repeatable=True)


def add_member(member_id: str, url: str) -> Call[schema.MemberChangeAnswer]:
    body = json_body(schema.AddMemberRequest(member_id, url))
    return Call("POST", "/members", schema.MemberChangeAnswer, body=body, leader=True, admin=True)


def remove_member(member_id: str) -> Call[schema.MemberChangeAnswer]:
    path = "/members/" + schema.quote_path(member_id, safe="")
    return Call("DELETE", path, schema.MemberChangeAnswer, leader=True, admin=True)


def transfer_leadership(to: str | None) -> Call[schema.TransferAnswer]:
    body = json_body(schema.TransferRequest(to))
    return Call("POST", "/leadership/transfer", schema.TransferAnswer, body=body, leader=True, admin=True)


def health() -> Call[schema.Health]:
    return Call("GET", "/healthz", schema.Health, repeatable=True, root=True)


def readiness() -> Call[schema.Readiness]:
    return Call("GET", "/readyz", schema.Readiness, repeatable=True, root=True, also_ok=(503,))


@dataclasses.dataclass(frozen=True)
class MemberStatus:
    """A member as the cluster lists it, and its own ``/api/status``
    (None, with ``error`` saying why, when it did not answer)."""

    member: schema.Member
    status: schema.Status | None
    error: str | None = None


def node_event(name: str, data: str) -> schema.NodeEvent | None:
    """One event of ``/api/events`` (None for a name this client does not
    know: a newer node's)."""
    model: type[schema.Status] | type[schema.NodeEventData]
    if name == "status":
        model = schema.Status
    elif name in ("role", "term", "leader", "membership", "commit"):
        model = schema.NodeEventData
    else:
        return None
    try:
        return schema.NodeEvent(name, msgspec.json.decode(data, type=model))
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise ClientError(f"a malformed {name} event: {error}") from None


# -- auth --------------------------------------------------------------------------


def auth_status() -> Call[schema.AuthStatus]:
    return Call("GET", "/auth/status", schema.AuthStatus, repeatable=True)


def auth_switch(on: bool) -> Call[schema.AuthChangeAnswer]:
    path = "/auth/enable" if on else "/auth/disable"
    # Enabling twice, or disabling twice, changes nothing the second time.
    return Call("POST", path, schema.AuthChangeAnswer, repeatable=True, leader=True)


def _name(name: str) -> str:
    return schema.quote_path(name, safe="")


def users() -> Call[schema.UsersAnswer]:
    return Call("GET", "/auth/users", schema.UsersAnswer, repeatable=True, leader=True)


def user(name: str) -> Call[schema.UserAnswer]:
    return Call("GET", f"/auth/users/{_name(name)}", schema.UserAnswer, repeatable=True, leader=True)


def add_user(name: str, password: str | None) -> Call[schema.AuthChangeAnswer]:
    body = json_body(schema.UserRequest(name, password))
    return Call("POST", "/auth/users", schema.AuthChangeAnswer, body=body, leader=True)


def delete_user(name: str) -> Call[schema.AuthChangeAnswer]:
    return Call("DELETE", f"/auth/users/{_name(name)}", schema.AuthChangeAnswer, leader=True)


def set_password(name: str, password: str | None) -> Call[schema.AuthChangeAnswer]:
    body = json_body(schema.PasswordRequest(password))
    path = f"/auth/users/{_name(name)}/password"
    return Call("PUT", path, schema.AuthChangeAnswer, body=body, leader=True)


def user_role(name: str, role: str, grant: bool) -> Call[schema.AuthChangeAnswer]:
    path = f"/auth/users/{_name(name)}/roles/{_name(role)}"
    # Granting a role held, or revoking one not held, changes nothing: safe to repeat.
    return Call("PUT" if grant else "DELETE", path, schema.AuthChangeAnswer, repeatable=True, leader=True)


def roles() -> Call[schema.RolesAnswer]:
    return Call("GET", "/auth/roles", schema.RolesAnswer, repeatable=True, leader=True)


def role(name: str) -> Call[schema.RoleAnswer]:
    return Call("GET", f"/auth/roles/{_name(name)}", schema.RoleAnswer, repeatable=True, leader=True)


def add_role(name: str) -> Call[schema.AuthChangeAnswer]:
    body = json_body(schema.RoleRequest(name))
    return Call("POST", "/auth/roles", schema.AuthChangeAnswer, body=body, leader=True)


def delete_role(name: str) -> Call[schema.AuthChangeAnswer]:
    return Call("DELETE", f"/auth/roles/{_name(name)}", schema.AuthChangeAnswer, leader=True)


def grant_permission(role: str, permission: schema.Permission) -> Call[schema.AuthChangeAnswer]:
    path = f"/auth/roles/{_name(role)}/permissions"
    # A grant replaces the one on the same target: safe to repeat.
    body = json_body(permission)
    return Call("POST", path, schema.AuthChangeAnswer, body=body, repeatable=True, leader=True)


def revoke_permission(role: str, revoke: schema.RevokeRequest) -> Call[schema.AuthChangeAnswer]:
    path = f"/auth/roles/{_name(role)}/revoke"
    return Call("POST", path, schema.AuthChangeAnswer, body=json_body(revoke), leader=True)
