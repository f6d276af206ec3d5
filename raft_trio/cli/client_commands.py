"""The client commands of ``raft-trio`` (``kv``, ``watch``, ``status``,
``members``, ``transfer-leader``), on :class:`raft_trio.client.Client`: the endpoints
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
from ..client import ApiError, Client, ClientError, MemberStatus, NoEndpointAnswered
from ..kv import MAX_VALUE_BYTES
from . import settings
from .argv import GlobalOptions, check_url
from .auth_commands import cmd_auth, cmd_role, cmd_user
from .errors import UsageError
from .output import cell, output_for, print_bytes, print_error, print_json, print_line, print_table, show
from .snapshot import cmd_snapshot_save

Command = Callable[[argparse.Namespace, Client, str], int]

#: Keys asked for a page of ``kv get --prefix`` and ``kv ls`` (the node
#: also ends a page after about 4 MiB of values).
RANGE_PAGE_KEYS = 1000


def run_client_command(args: argparse.Namespace, options: GlobalOptions) -> int:
    endpoints = settings.endpoints(options.endpoints)
    words = " ".join(filter(None, [args.command, getattr(args, "kv_command", None)]))
    output = output_for(words, "json" if getattr(args, "json", False) else options.output)
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
        except ClientError as error:  # a stream that broke off: one line, as any refusal
            print(f"raft-trio: {error}", file=sys.stderr)
            return 1


# -- kv -------------------------------------------------------------------------


def cmd_kv(args: argparse.Namespace, client: Client, output: str) -> int:
    if args.kv_command == "ls":
        return show_range(client, output, args.prefix, None, keys_only=True, stale=args.stale, listing=True)
    if args.kv_command == "get" and (args.prefix is not None or args.limit is not None or args.keys_only):
        if args.prefix is None or args.key is not None:
            raise UsageError("kv get takes a KEY or --prefix P (--limit and --keys-only go with --prefix)")
        if args.print_value_only:
            raise UsageError("--print-value-only is for one KEY, not --prefix")
        return show_range(client, output, args.prefix, args.limit, keys_only=args.keys_only, stale=args.stale)
    if args.key is None:
        raise UsageError(f"kv {args.kv_command} needs a KEY")
    if not args.key:
        raise UsageError("the key is empty")
    if args.kv_command == "get":
        found = client.get(args.key, stale=args.stale)
        if args.print_value_only:
            print_bytes(found.value.encode("utf-8", "surrogatepass"))
            return 0
        show(output, found, ["KEY", "VALUE", "REVISION", "VERSION", "LEASE"], [key_row(found, value=True)])
        return 0
    if args.kv_command == "del":
        deleted = client.delete(args.key)
        show(output, deleted, ["KEY", "DELETED", "REVISION"], [[deleted.key, deleted.deleted, deleted.index]])
        return 0
    if args.kv_command == "put":
        written = client.put(args.key, put_value(args))
    else:
        if args.expected is None and not args.expected_absent:
            raise UsageError("kv cas needs EXPECTED (or --absent)")
        new = read_value(args.new, None)
        written = client.compare_and_set(args.key, None if args.expected_absent else args.expected, new)
    # The answer without the value: it is what was just sent, and may be a megabyte.
    shown = {name: field for name, field in schema.to_builtins(written).items() if name != "value"}
    show(output, shown, ["KEY", "REVISION", "VERSION", "LEASE"], [key_row(written, value=False)])
    return 0


def put_value(args: argparse.Namespace) -> str:
    """``kv put KEY VALUE``, ``KEY -`` (stdin) or ``KEY --file F``."""
    if (args.value is None) == (args.file is None):
        raise UsageError("kv put needs a VALUE, - (read it from stdin) or --file FILE: one of them")
    return read_value(args.value, args.file)


def read_value(value: str | None, file: str | None) -> str:
    """The value as given, or read from stdin (``-``) or a file: UTF-8
    text of at most 1 MiB, checked here so that nothing is sent (and the
    cluster changes nothing) when it is not."""
    if file is None and value != "-":
        assert value is not None
        data = value.encode("utf-8", "surrogateescape")
        where = "the value"
    elif file is not None:
        try:
            with open(file, "rb") as source:
                data = source.read(MAX_VALUE_BYTES + 1)
        except OSError as error:
            raise UsageError(f"cannot read --file {file}: {error.strerror or error}") from None
        where = f"--file {file}"
    else:
        data = sys.stdin.buffer.read(MAX_VALUE_BYTES + 1)
        where = "the value on stdin"
    if len(data) > MAX_VALUE_BYTES:
        raise UsageError(
            f"{where} is larger than {MAX_VALUE_BYTES:,} bytes (1 MiB), the most a value may hold"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"{where} is not UTF-8 text (byte {error.start}): values are strings") from None


def show_range(
    client: Client,
    output: str,
    prefix: str,
    limit: int | None,
    *,
    keys_only: bool,
    stale: bool,
    listing: bool = False,
) -> int:
    """``kv get --prefix`` and ``kv ls``: the keys in key order, page by
    page (each page a linearizable read of its own unless ``stale``), as
    one range answer: ``revision`` is the first page's, ``more`` whether
    keys beyond ``limit`` match."""
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    kvs: list[schema.RangeItem] = []
    after: str | None = None
    first: schema.RangeAnswer | None = None
    while True:
        want = RANGE_PAGE_KEYS if limit is None else min(limit - len(kvs), RANGE_PAGE_KEYS)
        page = client.range(prefix, limit=want, after=after, keys_only=keys_only, stale=stale)
        first = first or page
        kvs.extend(page.kvs)
        if not page.more or not page.kvs or (limit is not None and len(kvs) >= limit):
            break
        after = page.kvs[-1].key
    answer = schema.RangeAnswer(kvs, count=first.count, more=page.more, revision=first.revision)
    if output == "json":
        print_json(answer)
    elif listing:
        for item in kvs:
            print(cell(item.key))
    else:
        titles = ["KEY", *([] if keys_only else ["VALUE"]), "REVISION", "VERSION", "LEASE"]
        rows = [
            [item.key, *([] if keys_only else [item.value]), item.mod_revision, item.version, item.lease]
            for item in kvs
        ]
        print_table(titles, rows)
    if output != "json" and answer.more:
        # On stderr: the keys shown stay the only lines on stdout.
        print(f"({len(kvs)} of {answer.count} keys shown: --limit {limit})", file=sys.stderr)
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


def cmd_watch(args: argparse.Namespace, client: Client, output: str) -> int:
    """Every change as it commits, a line each (``-o json``: a JSON
    object a line, the event's name as ``event``), until Ctrl-C; the
    client moves to another endpoint when one fails, losing nothing."""
    if args.key is not None and args.prefix is not None:
        raise UsageError("watch takes a KEY or --prefix P, not both")
    if args.key == "":
        raise UsageError("the key is empty")
    if args.rev is not None and args.rev < 1:
        raise UsageError("--rev must be at least 1")
    if output == "table":
        print_line(
            f"{'REVISION':<9} {'EVENT':<6} {'KEY':<20} VALUE" + ("  PREVIOUS" if args.prev_value else "")
        )
    with client.watch(
        args.key, prefix=args.prefix, start_revision=args.rev, prev_value=args.prev_value
    ) as changes:
        for event in changes:
            change = event.change
            if output == "json":
                print_json({"event": event.kind, **schema.to_builtins(change)})
                sys.stdout.flush()
                continue
            line = f"{change.mod_revision:<9} {event.kind:<6} {cell(change.key):<20} {cell(change.value)}"
            if args.prev_value:
                line += f"  {cell(change.prev_value)}"
            print_line(line)
    return 0


COMMANDS: dict[str, Command] = {
    "kv": cmd_kv,
    "watch": cmd_watch,
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
