"""``raft-trio``: run a node or a local cluster, and talk to a cluster.

Bad flags or an unreachable cluster give one clear line on stderr and exit
code 2, never a traceback. Client commands print the API's JSON answer and
exit 0 on a 2xx answer, 1 otherwise.

One concern per module: :mod:`.argv` (the parser), :mod:`.settings` (flags
and environment variables, read in one place), :mod:`.commands`, and the
two commands with a module of their own, :mod:`.up` and :mod:`.leave`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from . import settings
from .argv import build_parser, extract_cluster
from .commands import Client, cmd_kv, cmd_leave, cmd_members, cmd_node, cmd_status, cmd_transfer, cmd_up
from .errors import UsageError, fail


def main(argv: Sequence[str] | None = None) -> int:
    try:
        rest, cluster = extract_cluster(list(sys.argv[1:] if argv is None else argv))
        args = build_parser().parse_args(rest)
        if args.command == "node":
            return cmd_node(args)
        if args.command == "up":
            return cmd_up(args)
        if args.command == "leave":
            return cmd_leave(args, cluster)
        client = Client(settings.cluster_urls(cluster), security=settings.client_security())
        handlers = {
            "kv": cmd_kv,
            "status": cmd_status,
            "members": cmd_members,
            "transfer-leader": cmd_transfer,
        }
        return handlers[args.command](args, client)
    except UsageError as error:
        fail(str(error))
    except KeyboardInterrupt:
        return 130


__all__ = ["build_parser", "main"]
