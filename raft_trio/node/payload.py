"""The payload supervisor: runs ``SCRIPT_LEADER_PATH`` while this node
leads and ``SCRIPT_FOLLOWER_PATH`` while it does not.

Each script runs in its own process group (:mod:`raft_trio.process_group`)
inside a cancel scope of the supervisor's nursery, started when the role is entered.
Leaving the role cancels the scope: the whole group gets SIGTERM, then
SIGKILL after a grace period, and the process is reaped, so a leader script
never outlives leadership by more than the grace period, grandchildren
included. A script that exits while its role lasts is restarted with
back-off (whatever it left behind in its group is ended first). Its
standard output and error go to the node's log, one line at a time, tagged
with the script's name, including what it writes after SIGTERM.

The environment of a script is the node's, plus ``RAFT_NODE_ID``,
``RAFT_ROLE`` (the role when it started: ``leader``, ``follower``,
``candidate`` or ``learner``), ``RAFT_TERM`` and ``RAFT_LEADER_URL`` (empty
while no leader is known).

A follower script runs through every role but leader: it is not restarted
when the node goes from follower to candidate and back, or when the leader
changes. A leader script is restarted for every new leadership (a new term).

How processes are started is injectable (``spawn``), so that the timing can
be tested on Trio's fake clock with fake processes; :func:`spawn_process`
is the real one.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence

import trio

from ..process_group import GRACE_SECONDS, GroupProcess, describe_exit, reap_adopted, spawn, stop_group

log = logging.getLogger(__name__)
#: The scripts' own output, one record per line.
output_log = logging.getLogger("raft_trio.payload")

INITIAL_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
#: A run at least this long resets the back-off.
STABLE_RUN_SECONDS = 10.0
#: How often a node that is PID 1 reaps the orphans its scripts left.
REAP_INTERVAL_SECONDS = 0.5
#: A line longer than this is logged in pieces.
MAX_LINE_BYTES = 16 * 1024
#: Left out of a script's environment: the cluster secret lets its holder
#: sign peer messages, which a payload has no use for, and a script's
#: environment travels further than the node's (to its children, into the
#: crash reports and debug dumps of the tools it runs). The admin token
#: stays: a leader's script may manage the cluster with the CLI.
WITHHELD_FROM_SCRIPTS = ("RAFT_CLUSTER_SECRET",)
#: Lines logged before other tasks get a turn: one read of the pipe can
#: hold 32,000 short lines (``yes``), which took 1.5 s to log.
LINES_PER_TURN = 100


#: A started script (the name the supervisor's seams use).
PayloadProcess = GroupProcess
Spawn = Callable[[Sequence[str], Mapping[str, str]], Awaitable[PayloadProcess]]


async def spawn_process(argv: Sequence[str], env: Mapping[str, str]) -> PayloadProcess:
    """Start a script in its own process group, stdout and stderr into one
    pipe, no stdin."""
    return await spawn(argv, env, capture=True)


@dataclasses.dataclass(frozen=True)
class _Want:
    kind: str  # "leader" or "follower": which script
    role: str  # the role it was entered in
    term: int
    leader_url: str | None


class PayloadSupervisor:
    def __init__(
        self,
        leader_script: str | None,
        follower_script: str | None,
        node_id: str,
        *,
        spawn: Spawn = spawn_process,
        grace: float = GRACE_SECONDS,
        initial_backoff: float = INITIAL_BACKOFF_SECONDS,
        max_backoff: float = MAX_BACKOFF_SECONDS,
        stable_run: float = STABLE_RUN_SECONDS,
        adopts_orphans: bool | None = None,
    ) -> None:
        self.leader_script = leader_script
        #: Whether orphans come to this process to be reaped (PID 1 of a
        #: container); None: whether it is PID 1.
        self.adopts_orphans = os.getpid() == 1 if adopts_orphans is None else adopts_orphans
        self.follower_script = follower_script
        self.node_id = node_id
        self.grace = grace
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.stable_run = stable_run
        self._spawn = spawn
        self._desired = _Want("follower", "follower", 0, None)
        self._changed = trio.Event()
        #: How many times a script was started (for tests and metrics).
        self.runs = 0
        #: The script process running now, if any.
        self.current: PayloadProcess | None = None
        self._spawning = False
        self._stopping = False

    def starting_as(self, role: str, term: int, leader_url: str | None) -> None:
        """The node's role before :meth:`run`: its first script runs with
        this role, term and leader (a restarted node's own)."""
        kind = "leader" if role == "leader" else "follower"
        self._desired = _Want(kind, role, term, leader_url)

    def role_changed(self, role: str, term: int, leader_url: str | None) -> None:
        """Called by the runtime on every role change."""
        kind = "leader" if role == "leader" else "follower"
        current = self._desired
        if kind != current.kind or (kind == "leader" and term != current.term):
            self._desired = _Want(kind, role, term, leader_url)
            self._changed.set()

    def stopping(self) -> None:
        """The node is stopping: no script starts or restarts from now on.
        The one running runs on until its role is left or :meth:`run` is
        cancelled. A leader that hands leadership over on its way out
        becomes a follower, and would otherwise start its follower script
        only to end it moments later."""
        self._stopping = True

    def is_stopping(self) -> bool:
        """Whether :meth:`stopping` was called (asked afresh after each
        wait, where an attribute read would be narrowed by the checker)."""
        return self._stopping

    def _script_for(self, kind: str) -> str | None:
        return self.leader_script if kind == "leader" else self.follower_script

    async def run(self) -> None:
        if not self.leader_script and not self.follower_script:
            return
        async with trio.open_nursery() as reaping:
            if self.adopts_orphans:
                reaping.start_soon(self._reap_adopted)
            while True:
                want = self._desired
                self._changed = trio.Event()
                script = self._script_for(want.kind)
                async with trio.open_nursery() as nursery:
                    if script:
                        nursery.start_soon(self._keep_running, script, want)
                    await self._changed.wait()
                    # Leaving the role: the script's scope is cancelled, and
                    # the nursery exits only once its process group is gone.
                    nursery.cancel_scope.cancel()

    async def _reap_adopted(self) -> None:
        """As PID 1, what the scripts left behind comes here when its parent
        exits without waiting (``(cmd &)`` in a loop, or ``setsid``): reaped
        every ``REAP_INTERVAL_SECONDS``, except the script Trio waits for.
        Left alone, the zombies would fill the container's PID limit."""
        while True:
            await trio.sleep(REAP_INTERVAL_SECONDS)
            if not self._spawning:
                current = self.current
                reap_adopted({current.pid} if current is not None else set())

    def _environment(self, want: _Want) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if k not in WITHHELD_FROM_SCRIPTS}
        return {
            **inherited,
            "RAFT_NODE_ID": self.node_id,
            "RAFT_ROLE": want.role,
            "RAFT_TERM": str(want.term),
            "RAFT_LEADER_URL": want.leader_url or "",
        }

    async def _keep_running(self, script: str, want: _Want) -> None:
        name = os.path.basename(script)
        backoff = self.initial_backoff
        while not self.is_stopping():
            started = trio.current_time()
            self.runs += 1
            try:
                code = await self._run_once(script, name, want)
            except OSError as error:
                log.error("payload %s cannot start: %s", name, error)
            else:
                log.warning("payload %s exited with %s while %s", name, describe_exit(code), want.kind)
            if self.is_stopping():
                return  # the node stops: nothing restarts
            if trio.current_time() - started >= self.stable_run:
                backoff = self.initial_backoff
            log.info("payload %s restarts in %.1f s", name, backoff)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def _run_once(self, script: str, name: str, want: _Want) -> int:
        self._spawning = True  # its pid is not known yet: the reaper keeps off
        try:
            process = await self._spawn([script], self._environment(want))
        finally:
            self._spawning = False
        self.current = process
        log.info("payload %s started (pid %d) as %s in term %d", name, process.pid, want.role, want.term)
        stopped = False
        try:
            async with trio.open_nursery() as nursery:
                if process.output is not None:
                    nursery.start_soon(_log_lines, process.output, name)
                code = await process.wait()
                # The script ended: end what it left running in its group too,
                # so that restarts do not pile up orphans.
                with trio.CancelScope(shield=True):
                    await stop_group(process, self.grace)
                stopped = True
                # The output ends once the last writer is gone; do not wait
                # for a writer that escaped the group.
                nursery.cancel_scope.deadline = trio.current_time() + 1.0
            return code
        finally:
            with trio.CancelScope(shield=True):
                if not stopped:
                    # Leaving the role (or the node stopping): what the
                    # script says on SIGTERM (a trap's last words) is
                    # still logged, until its output ends.
                    async with trio.open_nursery() as drain:
                        if process.output is not None:
                            drain.start_soon(_log_lines, process.output, name)
                        await stop_group(process, self.grace)
                        drain.cancel_scope.deadline = trio.current_time() + 1.0
                await process.aclose()
            self.current = None
            log.info("payload %s (pid %d) stopped", name, process.pid)


def _pieces(line: bytes) -> list[bytes]:
    """``line`` in pieces of at most ``MAX_LINE_BYTES``, each cut between
    two UTF-8 characters (a cut inside one logged two replacement marks)."""
    pieces = []
    while len(line) > MAX_LINE_BYTES:
        cut = MAX_LINE_BYTES
        while cut > MAX_LINE_BYTES - 3 and line[cut] & 0xC0 == 0x80:  # a continuation byte
            cut -= 1
        pieces.append(line[:cut])
        line = line[cut:]
    pieces.append(line)
    return pieces


async def _log_lines(stream: trio.abc.ReceiveStream, name: str) -> None:
    """Log what the script writes, one record per line, tagged with its name.

    A script that floods its output is logged at the pace the node can
    afford: other tasks get a turn every ``LINES_PER_TURN`` lines (never a
    cancellation point, so that a chunk read is logged whole), and the pipe
    is read no faster, so the script waits on it rather than the node's
    heartbeats waiting on the script."""
    pending = b""
    try:
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            lines = [piece for line in complete for piece in _pieces(line)]
            if len(pending) > MAX_LINE_BYTES:
                *cut, pending = _pieces(pending)
                lines.extend(cut)
            for count, line in enumerate(lines, 1):
                output_log.info("[%s] %s", name, line.decode("utf-8", "replace").rstrip("\r"))
                if count % LINES_PER_TURN == 0:
                    await trio.lowlevel.cancel_shielded_checkpoint()
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        pass
    finally:
        if pending:
            output_log.info("[%s] %s", name, pending.decode("utf-8", "replace").rstrip("\r"))
