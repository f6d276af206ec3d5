"""``raft-trio``: run a node or a local cluster, and talk to a cluster.

Bad flags or an unreachable cluster give one clear line on stderr and exit
code 2, never a traceback. Client commands print a table or the API's JSON
answer (``-o table|json``) and exit 0 when the cluster did what they asked,
1 when it answered that it did not.

One concern per module: :mod:`.argv` (the parser), :mod:`.settings` (flags
and environment variables, read in one place), :mod:`.commands` (node, up,
leave), :mod:`.client_commands` and :mod:`.output` (the commands that talk
to a cluster, and how they print), and the two commands with a module of
their own, :mod:`.up` and :mod:`.leave`.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence

from .argv import build_parser, extract_globals
from .client_commands import run_client_command
from .commands import cmd_leave, cmd_node, cmd_up
from .errors import UsageError, fail
from .lock import RUNS_A_COMMAND, run_lock_command, take_command
from .output import output_for
from .snapshot import cmd_snapshot_restore

#: Exit status when whoever reads the output stops early (``| head``):
#: what a shell reports for a process ended by SIGPIPE, 128 + 13.
EXIT_BROKEN_PIPE = 141

#: Flags whose value may hold a password, never shown in a message.
SECRET_FLAGS = ("--user", "--password")


def main(argv: Sequence[str] | None = None) -> int:
    # A table holding a character the terminal's encoding lacks shows it
    # escaped rather than failing (JSON is written as UTF-8 bytes).
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        status = run(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # here, where a closed pipe can still be caught
        return status
    except BrokenPipeError:
        # The reader has what it wanted: no message, as for any Unix tool,
        # and nothing more written (stdout goes nowhere from here on, so
        # the interpreter's last flush cannot fail either).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return 130


def run(argv: list[str]) -> int:
    try:
        rest, options = extract_globals(argv)
        rest, command = take_command(rest)
        check_text(argv if command is None else argv[: argv.index("--")])
        args = build_parser().parse_args(rest)
        if args.command is None:
            return print_usage()
        if args.command in RUNS_A_COMMAND:
            return run_lock_command(args, options, command)
        if args.command == "node":
            return cmd_node(args)
        if args.command == "up":
            return cmd_up(args, options.identity.get("user") or os.environ.get("RAFT_TRIO_USER") or None)
        if args.command == "leave":
            return cmd_leave(args, options.endpoints)
        if args.command == "snapshot" and args.snapshot_command == "restore":
            # Makes data directories; talks to no cluster.
            return cmd_snapshot_restore(args, output_for("snapshot", options.output))
        return run_client_command(args, options)
    except UsageError as error:
        fail(str(error))


def check_text(argv: list[str]) -> None:
    """Refuse an argument that is not UTF-8: Python holds its bad bytes as
    lone surrogates, which no key, name, value or URL can be sent with
    (encoding one raised a traceback). The message shows the argument but
    not a password. What ``lock`` and ``elect`` run, after ``--``, is not
    raft-trio's and not checked."""
    for at, arg in enumerate(argv):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            flag = arg.partition("=")[0] if arg.startswith("--") else argv[at - 1] if at else ""
            shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            what = f"the value of {flag}" if flag in SECRET_FLAGS else f"argument '{shown}'"
            raise UsageError(f"{what} is not UTF-8 text (keys, names and values are text)") from None


def print_usage() -> int:
    """A bare ``raft-trio``: the help, as ``docker`` and ``etcdctl`` give it."""
    build_parser().print_help()
    return 0


__all__ = ["build_parser", "main"]
