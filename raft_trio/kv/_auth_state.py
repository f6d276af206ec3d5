"""The replicated auth state: users, roles and their grants, whether auth
is on, the auth revision and the token-signing key. Deterministic, like
the rest of the state machine: commands in, results out, a snapshot part.

Invariants (kept by :meth:`AuthState.apply`):

- ``revision`` is the log index of the last entry that changed anything
  here (0: none ever did), as etcd's auth revision.
- The role ``root`` always exists and has no grants (it may do
  everything). While auth is on, the user ``root`` exists and holds it.
- A user's ``revision`` is the index at which it was created or its
  password last changed: tokens name it, so a token outlives neither the
  user nor its password.
- ``signing_key`` is set by the first ``AuthEnable`` and never changes.
"""

from __future__ import annotations

import msgspec

from ._auth_commands import (
    ROOT,
    AuthChanged,
    AuthCommand,
    AuthDisable,
    AuthEnable,
    AuthFailure,
    AuthRefused,
    Grant,
    RoleAdd,
    RoleDelete,
    RoleGrant,
    RoleRevoke,
    UserAdd,
    UserDelete,
    UserGrantRole,
    UserPassword,
    UserRevokeRole,
)


class User(msgspec.Struct, frozen=True, array_like=True):
    name: str
    #: Salted scrypt hash (raft_trio.auth.passwords); None: no password.
    password_hash: str | None
    roles: tuple[str, ...]
    revision: int


class Role(msgspec.Struct, frozen=True, array_like=True):
    name: str
    grants: tuple[Grant, ...] = ()


class AuthSnapshot(msgspec.Struct, frozen=True):
    """The auth part of a state machine snapshot (a map, so fields can be
    added later and old snapshots still read)."""

    enabled: bool = False
    revision: int = 0
    signing_key: bytes = b""
    users: list[User] = []
    roles: list[Role] = []


def _same_target(grant: Grant, key: str, scope: str, end: str | None) -> bool:
    return grant.key == key and grant.scope == scope and (scope != "range" or grant.end == end)


class AuthState:
    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        #: Moves on every change and restore: what caches of derived facts
        #: (raft_trio.kv.Permissions) compare against.
        self.generation = getattr(self, "generation", 0) + 1
        self.enabled = False
        self.revision = 0
        self.signing_key = b""
        self.users: dict[str, User] = {}
        self.roles: dict[str, Role] = {ROOT: Role(ROOT)}

    # -- reads -----------------------------------------------------------------

    def user(self, name: str) -> User | None:
        return self.users.get(name)

    def is_root(self, name: str) -> bool:
        user = self.users.get(name)
        return user is not None and ROOT in user.roles

    def grants_of(self, name: str) -> list[Grant]:
        """Every grant of every role the user holds (unknown user: none)."""
        user = self.users.get(name)
        if user is None:
            return []
        return [grant for role in user.roles if role in self.roles for grant in self.roles[role].grants]

    # -- applying ----------------------------------------------------------------

    def apply(self, index: int, command: AuthCommand) -> AuthChanged | AuthRefused:
        """Apply an auth command committed at ``index``."""
        outcome = self._execute(index, command)
        if isinstance(outcome, AuthRefused):
            return outcome
        if outcome:
            self.revision = index
            self.generation += 1
        return AuthChanged(self.revision, outcome)

    def _execute(self, index: int, command: AuthCommand) -> bool | AuthRefused:
        """Whether anything changed, or why nothing could."""

        def refuse(code: AuthFailure, error: str) -> AuthRefused:
            return AuthRefused(code, error, index)

        if isinstance(command, AuthEnable):
            root = self.users.get(ROOT)
            if root is None or ROOT not in root.roles:
                return refuse("root_missing", "auth needs a user 'root' holding the role 'root' first")
            if not self.signing_key:
                self.signing_key = command.signing_key
            changed = not self.enabled
            self.enabled = True
            return changed
        if isinstance(command, AuthDisable):
            changed = self.enabled
            self.enabled = False
            return changed
        if isinstance(command, UserAdd):
            if command.name in self.users:
                return refuse("user_exists", f"user {command.name!r} exists already")
            roles: tuple[str, ...] = (ROOT,) if command.name == ROOT else ()
            self.users[command.name] = User(command.name, command.password_hash, roles, index)
            return True
        if isinstance(command, RoleAdd):
            if command.name in self.roles:
                return refuse("role_exists", f"role {command.name!r} exists already")
            self.roles[command.name] = Role(command.name)
            return True
        if isinstance(command, (UserDelete, UserPassword, UserGrantRole, UserRevokeRole)):
            user = self.users.get(command.name)
            if user is None:
                return refuse("user_not_found", f"user {command.name!r} not found")
            return self._change_user(user, index, command)
        role = self.roles.get(command.name)
        if role is None:
            return refuse("role_not_found", f"role {command.name!r} not found")
        if command.name == ROOT:
            return refuse("root_protected", "the role 'root' may do everything; it cannot be changed")
        if isinstance(command, RoleDelete):
            del self.roles[command.name]
            for name, user in list(self.users.items()):
                if command.name in user.roles:
                    roles = tuple(r for r in user.roles if r != command.name)
                    self.users[name] = msgspec.structs.replace(user, roles=roles)
            return True
        if isinstance(command, RoleGrant):
            new = command.grant
            kept = [g for g in role.grants if not _same_target(g, new.key, new.scope, new.end)]
            grants = tuple(sorted([*kept, new], key=lambda g: (g.key, g.scope, g.end or "")))
            self.roles[command.name] = Role(role.name, grants)
            return grants != role.grants
        assert isinstance(command, RoleRevoke)
        kept = [g for g in role.grants if not _same_target(g, command.key, command.scope, command.end)]
        if len(kept) == len(role.grants):
            what = command.key if command.scope == "key" else f"{command.scope} {command.key!r}"
            return refuse("grant_not_found", f"role {command.name!r} has no permission on {what}")
        self.roles[command.name] = Role(role.name, tuple(kept))
        return True

    def _change_user(
        self,
        user: User,
        index: int,
        command: UserDelete | UserPassword | UserGrantRole | UserRevokeRole,
    ) -> bool | AuthRefused:
        name = user.name
        if isinstance(command, UserDelete):
            if name == ROOT and self.enabled:
                return AuthRefused(
                    "root_protected", "the user 'root' cannot be deleted while auth is enabled", index
                )
            del self.users[name]
            return True
        if isinstance(command, UserPassword):
            # A new revision: tokens issued under the old password stop working.
            self.users[name] = msgspec.structs.replace(
                user, password_hash=command.password_hash, revision=index
            )
            return True
        if command.role not in self.roles:
            return AuthRefused("role_not_found", f"role {command.role!r} not found", index)
        if isinstance(command, UserGrantRole):
            if command.role in user.roles:
                return False
            self.users[name] = msgspec.structs.replace(user, roles=tuple(sorted({*user.roles, command.role})))
            return True
        if command.role not in user.roles:
            return False
        if name == ROOT and command.role == ROOT and self.enabled:
            return AuthRefused(
                "root_protected", "the user 'root' keeps the role 'root' while auth is enabled", index
            )
        self.users[name] = msgspec.structs.replace(
            user, roles=tuple(r for r in user.roles if r != command.role)
        )
        return True

    # -- snapshots -----------------------------------------------------------------

    def snapshot(self) -> AuthSnapshot | None:
        """None while nothing was ever configured (snapshots stay as before)."""
        if self.revision == 0 and not self.users and len(self.roles) == 1:
            return None
        return AuthSnapshot(
            enabled=self.enabled,
            revision=self.revision,
            signing_key=self.signing_key,
            users=sorted(self.users.values(), key=lambda u: u.name),
            roles=sorted((r for r in self.roles.values() if r.name != ROOT), key=lambda r: r.name),
        )

    def restore(self, snapshot: AuthSnapshot | None) -> None:
        self._clear()
        if snapshot is None:
            return
        self.enabled = snapshot.enabled
        self.revision = snapshot.revision
        self.signing_key = snapshot.signing_key
        self.users = {user.name: user for user in snapshot.users}
        self.roles.update({role.name: role for role in snapshot.roles if role.name != ROOT})
