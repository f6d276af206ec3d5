"""``raft-trio lock NAME -- COMMAND`` and ``raft-trio elect NAME``: run a
command on exactly one machine at a time, as ``consul lock`` and
``etcdctl lock``/``elect`` do. Their parsers and settings are here; what
runs is :mod:`.holding` (loaded only by these two commands: it brings
Trio).

Exit statuses (also in ``--help`` and docs/coordination.md):

- the command's own status (128 + N when signal N ended it);
- 1: the lock (or leadership) was lost while held; the command was ended;
- 2: bad usage, or the cluster could not be asked (no endpoint answered,
  or it refused);
- 126, 127: the command cannot be run (not executable, not found);
- 128 + N: signal N (Ctrl-C: 130, SIGTERM: 143) ended ``raft-trio`` while
  it ran a command; the command was ended and the lock released. Without a
  command, Ctrl-C is the normal end: 0.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any

from ..client import lock_prefix
from .errors import UsageError

if TYPE_CHECKING:
    from .argv import GlobalOptions

#: Seconds a lock outlives a holder that vanished (its lease's TTL).
DEFAULT_TTL_S = 10
#: Seconds between SIGTERM and SIGKILL when a command must end.
DEFAULT_GRACE_S = 2.0
#: The subcommands whose arguments after ``--`` are a command to run.
RUNS_A_COMMAND = ("lock", "elect")

EXIT_STATUSES = """\
exit status:
  N      the command's own (128+N when signal N ended it)
  1      the lock was lost while held (the command was ended)
  2      bad usage, or the cluster could not be asked
  126    the command is not executable; 127: it was not found
  128+N  signal N ended raft-trio while the command ran (Ctrl-C: 130); the
         command was ended and the lock released. Without a command,
         Ctrl-C is the normal end: 0."""

LOCK_DESCRIPTION = """\
Wait for the lock NAME, then run COMMAND while holding it, in a process
group of its own, with RAFT_LOCK_NAME and RAFT_FENCING_TOKEN (the revision
at which the lock was acquired; larger for every later holder) in its
environment. The lock is released when COMMAND exits.

If the lock is lost (its lease expired, the cluster was unreachable for
too long, or its key was deleted), COMMAND's process group gets SIGTERM,
and SIGKILL --grace seconds later, at the moment the lease could run out
(at once if that moment has passed or the cluster said the lock is gone):
it is gone before anyone else can get the lock. Without COMMAND, the lock
is held until Ctrl-C."""

ELECT_DESCRIPTION = """\
Campaign to lead the election NAME with PROPOSAL and print the leader's
proposal each time the leader changes ("-" while there is none). With
COMMAND, run it while leading instead, as raft-trio lock does: with
RAFT_LOCK_NAME and RAFT_FENCING_TOKEN in its environment, ended when
leadership is lost; leadership is resigned when it exits. With --listen,
do not campaign: only print the leader each time it changes."""


def add_parsers(sub: argparse._SubParsersAction[Any], client: argparse.ArgumentParser) -> None:
    """``lock`` and ``elect``, below the subcommands of ``raft-trio``."""
    lock = sub.add_parser(
        "lock",
        parents=[client],
        help="run a command while holding a lock (on exactly one machine at a time)",
        description=LOCK_DESCRIPTION,
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="raft-trio lock NAME [--ttl S] [--grace S] [-- COMMAND [ARGS...]]",
    )
    lock.add_argument("name", help="the lock; holders put their keys under NAME/")
    _add_lease_flags(lock)

    elect = sub.add_parser(
        "elect",
        parents=[client],
        help="campaign in an election (and run a command while leading), or follow one",
        description=ELECT_DESCRIPTION,
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="raft-trio elect NAME [--proposal V | --listen] [--ttl S] [--grace S] [-- COMMAND [ARGS...]]",
    )
    elect.add_argument("name", help="the election; candidates put their keys under NAME/")
    elect.add_argument(
        "--proposal", metavar="V", help="this candidate's value, shown as the leader (default: the host name)"
    )
    elect.add_argument(
        "--listen", action="store_true", help="do not campaign: print each leader as it changes"
    )
    _add_lease_flags(elect)


def _add_lease_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ttl",
        type=int,
        metavar="S",
        default=DEFAULT_TTL_S,
        help=f"seconds the lock outlives a holder that vanished: its lease's TTL (default {DEFAULT_TTL_S}; "
        "the cluster grants at least its minimum)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        metavar="S",
        default=DEFAULT_GRACE_S,
        help=f"seconds between SIGTERM and SIGKILL when the command must end (default {DEFAULT_GRACE_S:g})",
    )


def take_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Split ``lock``'s and ``elect``'s line at the first ``--``: what
    ``raft-trio`` parses, and the command to run (None: no ``--``). Other
    subcommands keep their ``--`` (``kv put KEY -- -value``)."""
    if not argv or argv[0] not in RUNS_A_COMMAND or "--" not in argv:
        return argv, None
    at = argv.index("--")
    return argv[:at], argv[at + 1 :]


@dataclasses.dataclass(frozen=True)
class HoldSettings:
    """What ``lock`` and ``elect`` were asked to do."""

    verb: str  # "lock" or "elect"
    name: str
    ttl: int
    grace: float
    #: The command to run while holding (None: none).
    command: list[str] | None
    #: ``elect`` only: the proposal, and whether only to follow.
    proposal: str | None = None
    listen: bool = False


def hold_settings(args: argparse.Namespace, command: list[str] | None) -> HoldSettings:
    try:
        lock_prefix(args.name)
    except ValueError as error:
        raise UsageError(f"{args.command} {args.name!r}: {error}") from None
    if command is not None and not command:
        raise UsageError("nothing to run after --")
    if args.ttl < 1:
        raise UsageError(f"--ttl must be at least 1 second, got {args.ttl}")
    if not 0 <= args.grace < args.ttl:
        raise UsageError(f"--grace must be at least 0 and less than --ttl ({args.ttl}), got {args.grace:g}")
    listen = getattr(args, "listen", False)
    if listen and command is not None:
        raise UsageError("elect --listen runs no command (it does not campaign)")
    if listen and getattr(args, "proposal", None) is not None:
        # Taken silently, the user would believe this machine a candidate.
        raise UsageError("elect --listen does not campaign: --proposal is for a candidate")
    return HoldSettings(
        args.command, args.name, args.ttl, args.grace, command, getattr(args, "proposal", None), listen
    )


def run_lock_command(args: argparse.Namespace, options: GlobalOptions, command: list[str] | None) -> int:
    # Loaded here: the parser imports this module, and only these two
    # commands need Trio.
    import sys

    from . import settings
    from .client_commands import ask_password
    from .holding import Credentials, run_holding

    hold = hold_settings(args, command)
    endpoints = settings.endpoints(options.endpoints)
    identity = settings.client_identity(options.identity, ask_password if sys.stdin.isatty() else None)
    credentials = Credentials(
        settings.client_security(options.identity.get("cacert")),
        settings.api_prefix(),
        identity.user,
        identity.password,
        identity.cert,
    )
    return run_holding(hold, endpoints, options.output or "table", credentials)
