"""The client commands of ``raft-trio`` (``kv``, ``status``, ``members``,
``transfer-leader``), on :class:`raft_trio.client.Client`: the endpoints
are tried in turn and the leader followed. Each prints a table or the
API's JSON answer (``-o``), exits 0 when the cluster did it, 1 when it
answered that it did not, and 2 when no endpoint answered (naming each,
and why).

This module loads the client only: no Quart, no node, no server, so that
a command starts quickly."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import Any

from .. import schema
from ..client import ApiError, Client, MemberStatus, NoEndpointAnswered
from . import settings
from .argv import GlobalOptions, check_url
from .auth_commands import cmd_auth, cmd_role, cmd_user
from .errors import UsageError
from .output import output_for, print_error, print_json, print_table, show
from .snapshot import cmd_snapshot_save

Command = Callable[[argparse.Namespace, Client, str], int]


def run_client_command(args: argparse.Namespace, options: GlobalOptions) -> int:
    endpoints = settings.endpoints(options.endpoints)
    output = output_for(args.command, "json" if getattr(args, "json", False) else options.output)
    command = COMMANDS[args.command]
    identity = settings.client_identity(options.identity, ask_password if sys.stdin.isatty() else None)
    with Client(
        endpoints.urls,
        security=settings.client_security(options.identity.get("cacert")),
        api_prefix=settings.api_prefix(),
        user=identity.user,
        password=identity.password,
        cert=identity.cert,
    ) as client:
        try:
            return command(args, client, output)
        except ApiError as error:
            return print_error(error, output)
        except NoEndpointAnswered as error:
            raise UsageError(f"{error} (endpoints from {endpoints.source})") from None


# -- kv -------------------------------------------------------------------------


def cmd_kv(args: argparse.Namespace, client: Client, output: str) -> int:
    if not args.key:
        raise UsageError("the key is empty")
    if args.kv_command == "get":
        found = client.get(args.key, stale=args.stale)
        show(output, found, ["KEY", "VALUE", "REVISION", "VERSION", "LEASE"], [key_row(found, value=True)])
        return 0
    if args.kv_command == "del":
        deleted = client.delete(args.key)
        show(output, deleted, ["KEY", "DELETED", "REVISION"], [[deleted.key, deleted.deleted, deleted.index]])
        return 0
    if args.kv_command == "put":
        written = client.put(args.key, args.value)
    else:
        if args.expected is None and not args.expected_absent:
            raise UsageError("kv cas needs EXPECTED (or --absent)")
        written = client.compare_and_set(args.key, None if args.expected_absent else args.expected, args.new)
    show(output, written, ["KEY", "REVISION", "VERSION", "LEASE"], [key_row(written, value=False)])
    return 0


def key_row(answer: schema.KeyAnswer, value: bool) -> list[Any]:
    head = [answer.key, answer.value] if value else [answer.key]
    return [*head, answer.mod_revision, answer.version, answer.lease]


# -- the cluster -------------------------------------------------------------------


def cmd_status(args: argparse.Namespace, client: Client, output: str) -> int:
    """Every member of the cluster (as the first endpoint that answers
    lists them), each asked for its own status."""
    found = client.member_statuses()
    if output == "json":
        print_json([status_row(entry) for entry in found])
        return 0
    columns = ["id", "role", "term", "leader_id", "commit_index", "applied_index", "url"]
    rows = [[status_row(entry).get(column) for column in columns] for entry in found]
    print_table(["ID", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "URL"], rows)
    return 0


def status_row(entry: MemberStatus) -> dict[str, Any]:
    """A member's own status with its URL and vote (``role`` says why
    there is none: unreachable, or the HTTP status it answered)."""
    member = entry.member
    if entry.status is not None:
        row: dict[str, Any] = schema.to_builtins(entry.status)
    else:
        reason = entry.error or "unreachable"
        row = {
            "id": member.id,
            "role": reason if reason.startswith("http ") else "unreachable",
            "error": reason,
        }
    row["url"], row["voter"] = member.url, member.voter
    return row


def cmd_members(args: argparse.Namespace, client: Client, output: str) -> int:
    if args.members_command in (None, "list"):
        members = client.members()
        answer: Any = schema.MembersAnswer(members)
    elif args.members_command == "add":
        check_url(args.url, "members add")
        answer = client.add_member(args.id, args.url)
        members = answer.members
    else:
        answer = client.remove_member(args.id)
        members = answer.members
    show(output, answer, ["ID", "URL", "VOTER"], [[m.id, m.url, m.voter] for m in members])
    return 0


def cmd_transfer(args: argparse.Namespace, client: Client, output: str) -> int:
    answer = client.transfer_leadership(args.to)
    show(output, answer, ["LEADER"], [[answer.leader_id]])
    return 0


COMMANDS: dict[str, Command] = {
    "kv": cmd_kv,
    "status": cmd_status,
    "members": cmd_members,
    "transfer-leader": cmd_transfer,
    "snapshot": cmd_snapshot_save,
    "user": cmd_user,
    "role": cmd_role,
    "auth": cmd_auth,
}


def ask_password(prompt: str) -> str:
    """The password, typed on the terminal without echo."""
    return getpass.getpass(prompt)
