"""The commands of ``raft-trio`` that run something: ``node``, ``up`` and
``leave`` (the client commands are in :mod:`.client_commands`)."""

from __future__ import annotations

import argparse
import logging

from . import settings
from .errors import UsageError, fail


def cmd_node(args: argparse.Namespace) -> int:
    from ..asgi import CannotServe
    from ..server import run_node_process
    from ..storage import first_error, storage_error_in

    node = settings.node_settings(args)
    configure_logging(node.node_id, settings.log_level())
    try:
        run_node_process(node)
    except BaseException as error:
        # The node's nursery wraps what its tasks raise in exception groups.
        storage_error = storage_error_in(error)
        if storage_error is not None:
            # sysexits codes, documented in the README: 65 damaged, 66 the
            # directory vanished, 73 disk full, 74 I/O error, 75 in use,
            # 78 not this node's directory (or this member cannot start empty).
            fail(f"data dir {node.data_dir}: {storage_error}", storage_error.exit_code)
        bind_error = first_error(error, CannotServe)
        if bind_error is not None:
            fail(str(bind_error))  # exit status 2, before anything was created
        raise
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


def cmd_up(args: argparse.Namespace, monitor_user: str | None = None) -> int:
    from .up import run_up

    if monitor_user is not None and ":" not in monitor_user:
        raise UsageError("up --user takes NAME:PASSWORD (the monitor cannot be asked for a password)")
    return run_up(args.nodes, args.base_port, args.monitor_port, args.data_dir, monitor_user)
