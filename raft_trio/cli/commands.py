"""The commands of ``raft-trio``: ``node``, ``up``, ``leave``, and the
client commands that print the API's JSON answer and exit 0 on a 2xx
answer, 1 otherwise."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any
from urllib.parse import quote

import httpx

from ..security import Security
from . import settings
from .argv import check_url
from .errors import UsageError, fail


class Client:
    """Asks the first cluster URL that answers; follows leader redirects."""

    def __init__(self, urls: list[str], timeout: float = 10.0, security: Security | None = None) -> None:
        self.urls = urls
        security = security or Security()
        self.http = httpx.Client(
            follow_redirects=True,
            timeout=timeout,
            trust_env=False,
            verify=security.client_ssl(),
            event_hooks={"request": [security.sync_admin_hook()]},
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        errors = []
        for url in self.urls:
            try:
                return self.http.request(method, url + path, **kwargs)
            except httpx.HTTPError as error:
                errors.append(f"{url}: {type(error).__name__}")
        raise UsageError("no cluster node answered (" + "; ".join(errors) + ")")


def print_answer(response: httpx.Response) -> int:
    try:
        body = response.json()
    except ValueError:
        body = {"status": response.status_code, "body": response.text}
    print(json.dumps(body, indent=None))
    return 0 if response.is_success else 1


def kv_path(key: str) -> str:
    if not key:
        raise UsageError("the key is empty")
    return "/api/kv/" + quote(key, safe="/")


def cmd_kv(args: argparse.Namespace, client: Client) -> int:
    if args.kv_command == "put":
        return print_answer(client.request("PUT", kv_path(args.key), json={"value": args.value}))
    if args.kv_command == "get":
        params = {"consistency": "stale"} if args.stale else None
        return print_answer(client.request("GET", kv_path(args.key), params=params))
    if args.kv_command == "del":
        return print_answer(client.request("DELETE", kv_path(args.key)))
    expected = None if args.expected_absent else args.expected
    if expected is None and not args.expected_absent:
        raise UsageError("kv cas needs EXPECTED (or --absent)")
    body = {"value": args.new, "expect": expected}
    return print_answer(client.request("PUT", kv_path(args.key), json=body))


def cmd_status(args: argparse.Namespace, client: Client) -> int:
    first = client.request("GET", "/api/status")
    if not first.is_success:
        return print_answer(first)
    members = first.json().get("members", [])
    rows: list[dict[str, Any]] = []
    for member in members:
        try:
            answer = client.http.get(member["url"] + "/api/status", timeout=3)
            row = (
                answer.json()
                if answer.is_success
                else {"id": member["id"], "role": f"http {answer.status_code}"}
            )
        except (httpx.HTTPError, ValueError):
            row = {"id": member["id"], "role": "unreachable"}
        row["url"] = member["url"]
        row["voter"] = member["voter"]
        rows.append(row)
    if args.json:
        print(json.dumps(rows))
        return 0
    columns = ["id", "role", "term", "leader_id", "commit_index", "applied_index", "url"]
    titles = ["ID", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "URL"]
    table = [titles] + [
        [str(row.get(c, "")) if row.get(c) is not None else "-" for c in columns] for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return 0


def cmd_members(args: argparse.Namespace, client: Client) -> int:
    if args.members_command in (None, "list"):
        return print_answer(client.request("GET", "/api/members"))
    if args.members_command == "add":
        check_url(args.url, "members add")
        return print_answer(client.request("POST", "/api/members", json={"id": args.id, "url": args.url}))
    return print_answer(client.request("DELETE", "/api/members/" + quote(args.id, safe="")))


def cmd_transfer(args: argparse.Namespace, client: Client) -> int:
    return print_answer(client.request("POST", "/api/leadership/transfer", json={"to": args.to}))


def cmd_node(args: argparse.Namespace) -> int:
    from ..server import run_node_process
    from ..storage import DataDirError, StorageError

    node = settings.node_settings(args)
    configure_logging(node.node_id, settings.log_level())
    try:
        run_node_process(node)
    except (DataDirError, StorageError) as error:
        # sysexits codes: 78 not this node's directory, 75 in use, 65 damaged.
        fail(f"data dir {node.data_dir}: {error}", error.exit_code)
    except OSError as error:
        fail(f"cannot serve on {args.listen}: {error}")
    return 0


def configure_logging(node_id: str, level: str) -> None:
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s %(levelname)s node={node_id} %(name)s: %(message)s",
    )
    # One line per event: the HTTP access log is noise at INFO.
    logging.getLogger("hypercorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def cmd_leave(args: argparse.Namespace, cluster: list[str] | None) -> int:
    from .leave import LeaveError, run_leave

    try:
        return run_leave(settings.leave_settings(args, cluster))
    except LeaveError as error:
        raise UsageError(str(error)) from None


def cmd_up(args: argparse.Namespace) -> int:
    from .up import run_up

    return run_up(args.nodes, args.base_port, args.monitor_port, args.data_dir)
