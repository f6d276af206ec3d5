"""``raft-trio user``, ``role`` and ``auth``: users, roles and the auth
switch, as etcdctl's commands of those names, through the client.

A new password comes from ``--password``, else from stdin: typed twice on
a terminal (without echo), else the first line of what is piped in."""

from __future__ import annotations

import argparse
import getpass
import sys

from .. import schema
from ..client import Client
from .errors import UsageError
from .output import show


def read_password(given: str | None, confirm: bool = True) -> str:
    if given is not None:
        return given
    if sys.stdin.isatty():
        password = getpass.getpass("New password: ")
        if confirm and getpass.getpass("Again: ") != password:
            raise UsageError("the passwords typed differ")
        return password
    line = sys.stdin.readline()
    if not line:
        raise UsageError("no password: give --password, or one line on stdin")
    return line.rstrip("\r\n")


def changed(output: str, answer: schema.AuthChangeAnswer, what: str) -> int:
    """A change's answer: its JSON, or one line saying what happened."""
    if output == "json":
        show(output, answer, [], [])
    else:
        state = what if answer.changed else "unchanged: " + what
        print(f"{state} (auth revision {answer.revision})")
    return 0


def cmd_user(args: argparse.Namespace, client: Client, output: str) -> int:
    command, name = args.user_command, str(getattr(args, "name", ""))
    if command == "list":
        users = client.users()
        rows = [[u.name, ",".join(u.roles) or "-", u.has_password] for u in users]
        show(output, schema.UsersAnswer(users), ["USER", "ROLES", "PASSWORD"], rows)
        return 0
    if command == "get":
        found = client.user(name)
        show(
            output,
            found,
            ["USER", "ROLES", "PASSWORD"],
            [[found.name, ",".join(found.roles) or "-", found.has_password]],
        )
        return 0
    if command == "add":
        if args.no_password and args.password is not None:
            raise UsageError("give --password or --no-password, not both")
        password = None if args.no_password else read_password(args.password)
        return changed(output, client.add_user(name, password), f"user {name!r} added")
    if command == "delete":
        return changed(output, client.delete_user(name), f"user {name!r} deleted")
    if command == "passwd":
        return changed(
            output, client.set_password(name, read_password(args.password)), f"password of {name!r} set"
        )
    if command == "grant-role":
        return changed(output, client.grant_role(name, args.role), f"role {args.role!r} granted to {name!r}")
    return changed(output, client.revoke_role(name, args.role), f"role {args.role!r} revoked from {name!r}")


def permission_rows(role: schema.RoleAnswer) -> list[list[object]]:
    if not role.permissions:
        return [[role.name, "-", "-", "-"]]
    rows: list[list[object]] = []
    for permission in role.permissions:
        if permission.prefix:
            scope = "prefix"
        elif permission.end is not None:
            scope = f"range to {permission.end!r}" if permission.end else "range to the end"
        else:
            scope = "key"
        rows.append([role.name, permission.access, permission.key, scope])
    return rows


def cmd_role(args: argparse.Namespace, client: Client, output: str) -> int:
    command, name = args.role_command, str(getattr(args, "name", ""))
    titles = ["ROLE", "ACCESS", "KEY", "SCOPE"]
    if command == "list":
        roles = client.roles()
        show(
            output,
            schema.RolesAnswer(roles),
            titles,
            [row for role in roles for row in permission_rows(role)],
        )
        return 0
    if command == "get":
        found = client.role(name)
        show(output, found, titles, permission_rows(found))
        return 0
    if command == "add":
        return changed(output, client.add_role(name), f"role {name!r} added")
    if command == "delete":
        return changed(output, client.delete_role(name), f"role {name!r} deleted")
    if not args.key and not args.prefix and args.end is None:
        raise UsageError("the key is empty (give --prefix for every key)")
    target = f"prefix {args.key!r}" if args.prefix else f"{args.key!r}"
    if command == "grant":
        answer = client.grant_permission(name, args.access, args.key, prefix=args.prefix, end=args.end)
        return changed(output, answer, f"role {name!r} may {args.access} {target}")
    answer = client.revoke_permission(name, args.key, prefix=args.prefix, end=args.end)
    return changed(output, answer, f"role {name!r} lost its permission on {target}")


def cmd_auth(args: argparse.Namespace, client: Client, output: str) -> int:
    if args.auth_command == "status":
        status = client.auth_status()
        row = [status.enabled, status.revision, status.user or "-", status.root]
        show(output, status, ["ENABLED", "REVISION", "USER", "ROOT"], [row])
        return 0
    if args.auth_command == "enable":
        return changed(output, client.enable_auth(), "auth enabled")
    return changed(output, client.disable_auth(), "auth disabled")
