"""What ``raft-trio lock`` and ``raft-trio elect`` run, on Trio: wait for
the lock (or leadership), run the command while holding it, and end the
command's whole process group when the lock is lost.

The command runs in a process group of its own (so the terminal's Ctrl-C
reaches ``raft-trio`` only, which then ends the command and releases the
lock), sharing ``raft-trio``'s stdin, stdout and stderr. Its environment
adds ``RAFT_LOCK_NAME`` and ``RAFT_FENCING_TOKEN``.

When the lock is lost the command gets SIGTERM ``grace`` seconds before
its lease could run out (the lock is held with that margin) and SIGKILL
when it could: as long as ``raft-trio`` itself runs, nothing of the
command is left by the time the cluster can hand the lock to anyone else.
A ``raft-trio`` that is stopped (SIGSTOP, a frozen machine) cannot do
that; the fencing token is for that case (docs/coordination.md).

Exit statuses: see :mod:`.lock`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shlex
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence

import trio

from ..client import ApiError, ClientError, Leader, LockLost, NoEndpointAnswered, TrioClient, suspend
from ..process_group import GroupProcess, exit_status, spawn, stop_group
from ..security import Security
from .errors import UsageError
from .lock import HoldSettings
from .output import print_json, print_table
from .settings import Endpoints

EXIT_LOST = 1
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
#: Signals that end ``raft-trio lock``/``elect`` cleanly: the command is
#: ended and the lock released first. Every signal whose default would
#: kill or stop it while its command, in a session of its own, runs on:
#: Ctrl-\ would leave the command orphaned, Ctrl-Z would stop the holder
#: and not the command, which would then run past the lease (a review's
#: finding). A holder cannot be suspended safely, so Ctrl-Z ends it too.
STOP_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGTSTP,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
)

Spawn = Callable[[Sequence[str], Mapping[str, str]], Awaitable[GroupProcess]]


async def spawn_sharing_terminal(argv: Sequence[str], env: Mapping[str, str]) -> GroupProcess:
    return await spawn(argv, env, capture=False)


def note(verb: str, message: str) -> None:
    print(f"raft-trio {verb}: {message}", file=sys.stderr, flush=True)


def holder_value() -> str:
    """What a holder's key says about it, for people reading the keys."""
    return f"{socket.gethostname()} pid {os.getpid()}"


def command_environment(name: str, token: int) -> dict[str, str]:
    return {**os.environ, "RAFT_LOCK_NAME": name, "RAFT_FENCING_TOKEN": str(token)}


async def run_command(
    verb: str,
    command: Sequence[str],
    env: Mapping[str, str],
    grace: float,
    spawn: Spawn,
    safe_until: Callable[[], float] = lambda: math.inf,
) -> int:
    """Run ``command`` in its own process group until it exits (its exit
    status) or this is cancelled (the group gets SIGTERM, then SIGKILL
    after ``grace``, and no later than ``safe_until()``: when another may
    hold the lock; at once if that has passed, after a pause, or when the
    cluster said the lock is gone). What the command left running in its
    group is ended either way: nothing of it outlives the lock."""
    try:
        process = await spawn(command, env)
    except OSError as error:
        note(verb, f"cannot run {command[0]}: {error.strerror or error}")
        return EXIT_NOT_FOUND if isinstance(error, FileNotFoundError) else EXIT_CANNOT_EXECUTE
    try:
        code = await process.wait()
    finally:
        with trio.CancelScope(shield=True):
            left = max(0.0, min(grace, safe_until() - trio.current_time()))
            await stop_group(process, left, slept=suspend.machine_slept_s)
            await process.aclose()
    return exit_status(code)


async def until_signalled(work: Callable[[], Awaitable[int]]) -> tuple[int | None, int | None]:
    """Run ``work`` until it returns or one of ``STOP_SIGNALS`` comes:
    (its result, None) or (None, the signal). A signal cancels it; what it
    does shielded (ending the command, releasing the lock) still runs."""
    result: int | None = None
    signalled: int | None = None
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:

            async def on_signal() -> None:
                nonlocal signalled
                async for signum in signals:
                    signalled = signum
                    nursery.cancel_scope.cancel()
                    return

            async def run() -> None:
                nonlocal result
                result = await work()
                nursery.cancel_scope.cancel()

            nursery.start_soon(on_signal)
            nursery.start_soon(run)
    return result, signalled


class Holder:
    """``lock`` or ``elect``, as asked, on one client."""

    def __init__(
        self, client: TrioClient, hold: HoldSettings, output: str, spawn: Spawn = spawn_sharing_terminal
    ) -> None:
        self.client = client
        self.hold = hold
        self.output = output
        self.spawn = spawn
        #: Whether the command was started (so had to be ended).
        self.ran = False

    @property
    def margin(self) -> float:
        """With a command, the lock is given up ``grace`` early: by the time
        the lease could run out, the command is SIGKILLed."""
        return self.hold.grace if self.hold.command is not None else 0.0

    async def run(self) -> int:
        hold = self.hold
        try:
            if hold.verb == "lock":
                return await self.lock()
            if hold.listen:
                return await self.follow()
            if hold.command is None:
                return await self.campaign_and_follow()
            return await self.campaign()
        except LockLost as lost:
            return self.lost(lost)

    def lost(self, lost: LockLost) -> int:
        ended = "; the command was ended" if self.ran else ""
        note(self.hold.verb, f"{lost}{ended}")
        return EXIT_LOST

    async def lock(self) -> int:
        hold = self.hold
        async with self.client.hold(
            hold.name, ttl=hold.ttl, margin=self.margin, value=holder_value()
        ) as holding:
            if hold.command is None:
                self.print_holding(holding.token)
                await trio.sleep_forever()
            return await self.run_while_held(holding.token, lambda: holding.session.safe_until)

    @property
    def proposal(self) -> str:
        return self.hold.proposal if self.hold.proposal is not None else socket.gethostname()

    async def campaign(self) -> int:
        hold = self.hold
        async with self.client.campaign(
            hold.name, self.proposal, ttl=hold.ttl, margin=self.margin
        ) as leading:
            return await self.run_while_held(leading.token, lambda: leading.safe_until)

    async def campaign_and_follow(self) -> int:
        """Print the leader as it is, then campaign, and print every leader
        meanwhile (this one too). The campaign waits for the first line:
        begun together, a quick win could come before the observer's first
        read, and the line saying who led before would be missing."""
        hold = self.hold
        async with trio.open_nursery() as nursery:
            await nursery.start(self.follow)
            try:
                async with self.client.campaign(hold.name, self.proposal, ttl=hold.ttl) as leading:
                    note(hold.verb, f"leading {hold.name} (fencing token {leading.token})")
                    await trio.sleep_forever()
            except LockLost as lost:
                nursery.cancel_scope.cancel()
                return self.lost(lost)
        raise AssertionError("unreachable")  # pragma: no cover

    async def follow(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> int:
        """Print every leader, starting with the one now (reported started
        once that is printed)."""
        async with self.client.observe(self.hold.name) as leaders:
            async for leader in leaders:
                self.print_leader(leader)
                task_status.started()
                task_status = trio.TASK_STATUS_IGNORED
        return 0  # pragma: no cover (observing ends with an error or a signal)

    async def run_while_held(self, token: int, safe_until: Callable[[], float]) -> int:
        hold = self.hold
        assert hold.command is not None
        holding, releasing = ("holding", "releasing") if hold.verb == "lock" else ("leading", "resigning")
        note(hold.verb, f"{holding} {hold.name} (fencing token {token}); running {shlex.join(hold.command)}")
        env = command_environment(hold.name, token)
        self.ran = True
        status = await run_command(hold.verb, hold.command, env, hold.grace, self.spawn, safe_until)
        note(hold.verb, f"the command exited with status {status}; {releasing} {hold.name}")
        return status

    def print_holding(self, token: int) -> None:
        if self.output == "json":
            print_json({"name": self.hold.name, "token": token})
        else:
            print_table(["NAME", "TOKEN"], [[self.hold.name, token]])
        sys.stdout.flush()

    def print_leader(self, leader: Leader | None) -> None:
        if self.output == "json":
            shown = (
                None if leader is None else {"key": leader.key, "value": leader.value, "token": leader.token}
            )
            print_json({"name": self.hold.name, "leader": shown})
        else:
            print("-" if leader is None else leader.value)
        sys.stdout.flush()


@dataclasses.dataclass(frozen=True)
class Credentials:
    """How the client proves itself and what it trusts (see
    :func:`.settings.client_identity`)."""

    security: Security
    api_prefix: str
    user: str | None = None
    password: str | None = None
    cert: tuple[str, str] | None = None


def run_holding(hold: HoldSettings, endpoints: Endpoints, output: str, credentials: Credentials) -> int:
    """``raft-trio lock`` or ``elect``: its exit status."""

    async def main() -> tuple[int | None, int | None, bool]:
        async with TrioClient(
            endpoints.urls,
            security=credentials.security,
            api_prefix=credentials.api_prefix,
            user=credentials.user,
            password=credentials.password,
            cert=credentials.cert,
        ) as client:
            holder = Holder(client, hold, output)
            result, signalled = await until_signalled(holder.run)
            return result, signalled, holder.ran

    # What the process-group code logs (a SIGKILL after the grace) is a
    # note of this command's, said as its own notes are.
    logging.basicConfig(format=f"raft-trio {hold.verb}: %(message)s", level=logging.WARNING)
    try:
        result, signalled, ran = trio.run(main)
    except BaseException as error:
        found = client_error_in(error)
        if isinstance(found, NoEndpointAnswered):
            raise UsageError(f"{found} (endpoints from {endpoints.source})") from None
        if isinstance(found, ApiError):
            raise UsageError(f"the cluster refused: {found.message} ({found.code})") from None
        if found is not None:
            raise UsageError(str(found)) from None
        raise
    if signalled is None:
        assert result is not None
        return result
    if hold.command is None:
        return 0  # Ctrl-C is how a lock without a command, or an elect, ends
    # A command runs once the lock is held: one that never ran was in line.
    ended = f"the command was ended, {hold.name} released" if ran else f"left the line for {hold.name}"
    note(hold.verb, f"stopped by {signal.Signals(signalled).name}: {ended}")
    return 128 + signalled


def client_error_in(error: BaseException) -> ClientError | None:
    """The client error that ended the run, also from inside the exception
    groups of the nurseries it passed through."""
    if isinstance(error, ClientError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if (found := client_error_in(inner)) is not None:
                return found
    return None
