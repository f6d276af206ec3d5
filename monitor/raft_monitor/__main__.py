"""``raft-monitor`` / ``python -m raft_monitor``: the monitor on its own.

Flags win over the environment: ``--listen`` over ``BIND_HOST`` (port
8000), ``--discover`` over ``RAFT_SERVICE_NAME``, ``--templates-dir`` over
``TEMPLATES_DIR``, ``--refresh-ms`` over ``REFRESH_RATE_MILLIS``,
``--node-port`` over ``NODE_PORT``; ``API_PREFIX`` is the nodes' API prefix
and ``LOGGING`` the log level, as for a node.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import NoReturn

import trio

from raft_trio.asgi import CannotServe, bind_listener

from ._run import MonitorSettings, run_monitor
from ._state import normalize_url
from ._watch import WatchSettings

DEFAULT_PORT = 8000
DEFAULT_NODE = "http://127.0.0.1:9001"


def fail(message: str) -> NoReturn:
    """A usage error: one line on stderr, exit status 2."""
    print(f"raft-monitor: {message}", file=sys.stderr)
    raise SystemExit(2)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(message)


def build_parser() -> argparse.ArgumentParser:
    """The flags; no environment is read here (:func:`settings_from_args`
    puts each variable under its flag), so ``--help`` is the same anywhere."""
    parser = Parser(
        prog="raft-monitor",
        description="Serve the live web page of a raft-trio cluster: roles, terms, leader, commit rates.",
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"where to serve the page (default: $BIND_HOST or 127.0.0.1, port {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--nodes",
        metavar="URL,...",
        help=f"the nodes to watch; the members they list join them (default {DEFAULT_NODE})",
    )
    parser.add_argument(
        "--discover",
        metavar="NAME",
        help="find the nodes by DNS: the A records of NAME (default: $RAFT_SERVICE_NAME)",
    )
    parser.add_argument(
        "--node-port",
        type=int,
        help="the nodes' port for --discover (default: $NODE_PORT or 9001)",
    )
    parser.add_argument(
        "--templates-dir",
        metavar="DIR",
        help="serve index.html, app.js and style.css from DIR instead (default: $TEMPLATES_DIR)",
    )
    parser.add_argument(
        "--user",
        metavar="NAME:PASSWORD",
        help="with auth on, log in to the nodes as NAME (default: $RAFT_TRIO_USER; "
        "else $RAFT_ADMIN_TOKEN, if set, is sent)",
    )
    parser.add_argument(
        "--refresh-ms",
        type=int,
        help="how often the page's chart takes a sample of commit rates and lags "
        "(default: $REFRESH_RATE_MILLIS or 500)",
    )
    return parser


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        fail(f"{name} must be an integer, not {raw!r}")


def settings_from_args(args: argparse.Namespace) -> MonitorSettings:
    """The settings: each flag, else its environment variable, else the default."""
    env = os.environ
    listen = args.listen or f"{env.get('BIND_HOST') or '127.0.0.1'}:{DEFAULT_PORT}"
    discover = args.discover or env.get("RAFT_SERVICE_NAME") or None
    node_port = args.node_port if args.node_port is not None else _env_int("NODE_PORT", 9001)
    templates_dir = args.templates_dir or env.get("TEMPLATES_DIR") or None
    refresh_ms = args.refresh_ms if args.refresh_ms is not None else _env_int("REFRESH_RATE_MILLIS", 500)
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        fail(f"--listen must be HOST:PORT, not {listen!r}")
    host = host.strip("[]") or "0.0.0.0"
    nodes: list[str] = []
    for raw in (args.nodes or "").split(","):
        if raw.strip():
            url = normalize_url(raw)
            if not url.startswith(("http://", "https://")):
                fail(f"--nodes wants http(s) URLs, not {raw!r}")
            nodes.append(url)
    if not nodes and not discover:
        nodes = [DEFAULT_NODE]
    if refresh_ms < 50:
        fail("the refresh rate must be at least 50 ms")
    templates = Path(templates_dir) if templates_dir else None
    if templates is not None and not templates.is_dir():
        fail(f"templates dir {templates} does not exist")
    user, password = _credentials(args.user or env.get("RAFT_TRIO_USER") or None)
    return MonitorSettings(
        user=user,
        password=password,
        admin_token=_admin_token(),
        host=host,
        port=int(port),
        nodes=tuple(nodes),
        discover=discover,
        node_port=node_port,
        api_prefix=os.environ.get("API_PREFIX", "/api") or "/api",
        templates_dir=templates,
        refresh_ms=refresh_ms,
        watch=WatchSettings(refresh=refresh_ms / 1000),
        tls_ca=_tls_ca(),
    )


def _credentials(given: str | None) -> tuple[str | None, str | None]:
    if given is None:
        return None, None
    name, colon, password = given.partition(":")
    if not name or not colon:
        fail("--user (or RAFT_TRIO_USER) must be NAME:PASSWORD")
    return name, password


def _admin_token() -> str | None:
    """``RAFT_ADMIN_TOKEN`` or the file ``RAFT_ADMIN_TOKEN_FILE`` names, as
    the nodes read it (the surrounding whitespace is not part of it)."""
    path = os.environ.get("RAFT_ADMIN_TOKEN_FILE") or None
    if path is None:
        return (os.environ.get("RAFT_ADMIN_TOKEN") or "").strip() or None
    try:
        return Path(path).read_text().strip() or None
    except OSError as error:
        print(f"raft-monitor: cannot read RAFT_ADMIN_TOKEN_FILE {path}: {error.strerror}", file=sys.stderr)
        raise SystemExit(2) from None


def _tls_ca() -> str | None:
    path = os.environ.get("RAFT_TLS_CA") or None
    if path is not None and not os.path.isfile(path):
        fail(f"RAFT_TLS_CA {path} is not a file")
    return path


def configure_logging() -> None:
    level = os.environ.get("LOGGING", "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        level = "INFO"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s monitor %(name)s: %(message)s")
    logging.getLogger("hypercorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


async def _main(settings: MonitorSettings, listener: socket.socket) -> None:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signals, stop)
        await run_monitor(settings, stop, listener=listener)
        nursery.cancel_scope.cancel()


async def _stop_on_signals(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            stop.set()
            return


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    try:
        # The port first: a busy one is one line and exit status 2.
        listener = bind_listener(settings.host, settings.port)
    except CannotServe as error:
        fail(str(error))
    configure_logging()
    where = f"DNS name {settings.discover}" if settings.discover else ", ".join(settings.nodes)
    logging.getLogger("raft_monitor").info("watching %s", where)
    try:
        with listener:
            trio.run(partial(_main, settings, listener))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
