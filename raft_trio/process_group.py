"""A command in a process group of its own, and how to end all of it.

The node's payload scripts and the command that ``raft-trio lock`` and
``raft-trio elect`` run share these rules: the command starts as the
leader of a new session (so of its own process group, out of reach of the
terminal's Ctrl-C), and ending it ends the whole group, grandchildren
included: SIGTERM, then SIGKILL after a grace period, then the command is
reaped. Nothing it started outlives it. The group is taken with its
session: a child that moves to a process group of its own stays in the
command's session (coreutils ``timeout`` does, and a shell's job control),
and a review found such children left running after the lock was
released. Only a child that starts a session of its own (``setsid``)
leaves it, as a daemon means to.

:class:`GroupProcess` is the seam: :class:`OsProcess` is a real process,
and tests on Trio's fake clock use fakes with the same methods.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import trio

log = logging.getLogger(__name__)

#: How long a group has between SIGTERM and SIGKILL, unless told otherwise.
GRACE_SECONDS = 2.0
#: How often the group is checked while it winds down.
GROUP_POLL_SECONDS = 0.05
#: How often ``stop_group`` given ``slept`` looks whether the machine slept
#: (as a lease's holder does, ``raft_trio.client._session.SUSPEND_CHECK_S``).
SLEEP_LOOK_SECONDS = 0.5


class GroupProcess(Protocol):
    """One started command: the leader of its own process group."""

    @property
    def pid(self) -> int: ...

    @property
    def output(self) -> trio.abc.ReceiveStream | None:
        """Its stdout and stderr, merged (None: not captured)."""

    async def wait(self) -> int:
        """Wait for the command itself to exit and reap it; its exit status
        (``-N`` when signal N ended it)."""

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the whole process group; nothing if it is gone."""

    def group_alive(self) -> bool:
        """Whether any process of the group still runs (zombies do not)."""

    def reap_orphans(self) -> None:
        """Reap the group's zombies that were handed to this process (when
        it is PID 1 of a container or a child subreaper)."""

    async def aclose(self) -> None:
        """Release the output pipe."""


class OsProcess:
    """A real command started with :func:`spawn`."""

    def __init__(self, process: trio.Process) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def output(self) -> trio.abc.ReceiveStream | None:
        return self._process.stdout

    async def wait(self) -> int:
        return await self._process.wait()

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)
        # Those of its session in groups of their own, once each: the
        # group's members had the signal already.
        for pid, _, _ in group_members(self.pid) or []:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(pid) != self.pid:
                    os.kill(pid, signum)

    def group_alive(self) -> bool:
        members = group_members(self.pid)
        if members is not None:
            return any(state != "Z" for _, state, _ in members)
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def reap_orphans(self) -> None:
        me = os.getpid()
        for pid, state, parent in group_members(self.pid) or []:
            if state == "Z" and parent == me and pid != self.pid:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)

    async def aclose(self) -> None:
        if self._process.stdout is not None:
            with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
                await self._process.stdout.aclose()


def group_members(pgid: int) -> list[tuple[int, str, int]] | None:
    """(pid, state, parent pid) of every process in group ``pgid``, or in
    the session of that id (the command leads both), read from /proc; None
    where there is no /proc."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 4 and pgid in (int(fields[2]), int(fields[3])):
            found.append((int(entry.name), fields[0], int(fields[1])))
    return found


def reap_adopted(keep: Collection[int]) -> int:
    """Reap this process's zombie children other than ``keep`` (those
    Trio waits for): the orphans a process adopts as PID 1 of a container,
    whose parents did not wait for them (a payload script's ``(cmd &)``,
    or one that called ``setsid``). How many were reaped; nothing where
    there is no /proc."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return 0
    me, reaped = os.getpid(), 0
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in keep:
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 2 and fields[0] == "Z" and int(fields[1]) == me:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(int(entry.name), os.WNOHANG)
                reaped += 1
    return reaped


async def spawn(argv: Sequence[str], env: Mapping[str, str], *, capture: bool) -> OsProcess:
    """Start ``argv`` as the leader of a new session (so of its own process
    group). ``capture``: stdout and stderr into one pipe (:attr:`output`),
    no stdin; else it shares this process's stdin, stdout and stderr."""
    if capture:
        process = await trio.lowlevel.open_process(
            list(argv),
            env=dict(env),
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    else:
        process = await trio.lowlevel.open_process(list(argv), env=dict(env), start_new_session=True)
    return OsProcess(process)


async def stop_group(
    process: GroupProcess, grace: float = GRACE_SECONDS, slept: Callable[[], float] | None = None
) -> None:
    """SIGTERM the group; SIGKILL whatever of it still runs after ``grace``
    seconds; reap the command. Run it shielded: it must finish.
    ``slept``: how long the machine has been suspended (``CLOCK_BOOTTIME``
    ahead of Trio's clock); given, a suspend meanwhile counts against the
    grace (a lease's end does not wait for the machine to wake)."""
    process.signal_group(signal.SIGTERM)
    with trio.move_on_after(grace) as waiting:
        async with trio.open_nursery() as nursery:
            if slept is not None:
                nursery.start_soon(_count_sleep_against, waiting, slept)
            await process.wait()
            while process.group_alive():  # noqa: ASYNC110 (a process group's end has no event)
                await trio.sleep(GROUP_POLL_SECONDS)
            nursery.cancel_scope.cancel()
        process.reap_orphans()
        return
    # Killed first, then said: a write to stderr may block (a terminal
    # paused with Ctrl-S, a pipe nobody drains) and must not hold it back.
    process.signal_group(signal.SIGKILL)
    log.warning("process group %d still runs %.1f s after SIGTERM: SIGKILL", process.pid, grace)
    await process.wait()
    with trio.move_on_after(1.0):  # SIGKILL cannot be caught; the kernel is quick
        while process.group_alive():  # noqa: ASYNC110 (a process group's end has no event)
            await trio.sleep(GROUP_POLL_SECONDS / 5)
    process.reap_orphans()


async def _count_sleep_against(scope: trio.CancelScope, slept: Callable[[], float]) -> None:
    """Bring ``scope``'s deadline forward by each suspend of the machine
    that ``slept`` reports (Trio's clock did not count it)."""
    seen = slept()
    while True:
        await trio.sleep(SLEEP_LOOK_SECONDS)
        now = slept()
        scope.deadline -= max(0.0, now - seen)
        seen = now


def exit_status(code: int) -> int:
    """A command's exit status as a shell reports it: ``128 + N`` when
    signal N ended it."""
    return 128 - code if code < 0 else code


def describe_exit(code: int) -> str:
    """``status 1``, or ``status 143 (SIGTERM)`` for a process a signal
    ended (Trio's return code for it is ``-15``, which a reader of the log
    would not take for a signal)."""
    if code >= 0:
        return f"status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"status {exit_status(code)} ({name})"
