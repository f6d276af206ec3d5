"""Node processes on this machine: plan their ports, start them, signal
them, restart them on their data directories, stop them, read their logs,
and wait for their leader through the public client.

The one launcher of the project: the integration, crash and Jepsen tests,
the benches and ``raft-trio up`` all start their processes here.

- Every process runs in a session of its own, so a Ctrl-C on the terminal
  (or a signal to a test run) reaches only its starter, and each can be
  signalled as a group: :meth:`Process.kill` (SIGKILL, a crash) takes a
  stopped (SIGSTOP) process and anything it started with it.
- Its stdout and stderr are appended to a log file, one per process, that
  outlives restarts; :meth:`Process.note` writes the starter's own lines
  (``=== test: ...``) into it, so a failure's log tells what was done.
- Nothing here touches a process it did not start.

Signals, starts and kills are plain system calls, the same for a Trio
program and a blocking one. What waits comes twice: awaited in Trio
(:meth:`Process.exited`, :meth:`NodeCluster.leader_elected`, through
:class:`~raft_trio.client.TrioClient`), and blocking for threads and
scripts (:meth:`Process.wait`, :meth:`NodeCluster.wait_for_leader`,
through :class:`~raft_trio.client.Client`). Every blocking wait is
bounded; the caller bounds a Trio wait (``trio.fail_after``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import trio

from .. import schema
from ..client import Client, ClientError, TrioClient
from . import ports
from .waiting import POLL_S, wait_until

#: Elections in well under a second (a heartbeat of 50 ms): what tests
#: use, so that a failover is quick to wait for.
FAST_TIMING = {
    "ELECTION_TIMEOUT_LOWER_MILLIS": "300",
    "ELECTION_TIMEOUT_UPPER_MILLIS": "600",
    "HEARTBEAT_REPEAT_MILLIS": "50",
}
#: The largest election timeout of :data:`FAST_TIMING`, in seconds.
FAST_ELECTION_MAX_S = 0.6

HOST = "127.0.0.1"
#: A fresh cluster's first leader: three interpreters start on 2 busy cores.
START_S = 20.0
#: A new leader after a failure.
ELECTION_S = 10.0
#: Between SIGTERM (or SIGINT) and SIGKILL in :meth:`Process.stop`.
STOP_GRACE_S = 10.0
#: Reaping a process after SIGKILL (the kernel is quick; a loaded machine less so).
KILL_WAIT_S = 10.0
#: One status request while waiting for a leader: a node that does not
#: answer within it counts as not answering.
STATUS_TIMEOUT_S = 1.0
STATUS_CONNECT_S = 0.5
LOG_TAIL_LINES = 40


# -- addresses ------------------------------------------------------------------------


def free_ports(count: int, host: str = HOST) -> list[int]:
    """``count`` different ports, free on ``host`` when asked, from below
    the kernel's ephemeral range (:mod:`.ports`): a process started soon
    after, or restarted on one of them later, finds it still free."""
    return ports.free_ports(count, host)


def free_port(host: str = HOST) -> int:
    (port,) = free_ports(1, host)
    return port


def consecutive_free_ports(count: int, host: str = HOST) -> int:
    """A base port with ``count`` free ports from it (for what numbers its
    ports from a base, as ``raft-trio up`` does)."""
    return ports.consecutive_free_ports(count, host)


# -- commands and environments ---------------------------------------------------------


def python_module(module: str) -> list[str]:
    """``python -m MODULE`` with this interpreter."""
    return [sys.executable, "-m", module]


#: How a node process is started: this interpreter, so the venv's raft_trio.
NODE_COMMAND = python_module("raft_trio.cli")


def cli_command() -> list[str]:
    """The installed console script (next to this interpreter), else the
    module: what a user types, for tests of the CLI itself."""
    script = Path(sys.executable).with_name("raft-trio")
    return [str(script)] if script.exists() else NODE_COMMAND


def inherited_env(
    *, drop: Iterable[str] = (), drop_prefixes: tuple[str, ...] = (), extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """This process's environment without ``drop`` and the variables that
    start with ``drop_prefixes``, with ``extra`` on top."""
    dropped = set(drop)
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in dropped and not (drop_prefixes and name.startswith(drop_prefixes))
    }
    env.update(extra or {})
    return env


def peers_flag(urls: Mapping[str, str]) -> str:
    """The value of ``--peers``: ``id=url,...``."""
    return ",".join(f"{node_id}={url}" for node_id, url in urls.items())


def node_argv(node_id: str, listen: str, data_dir: Path, *args: str) -> list[str]:
    """``raft-trio node`` for ``node_id`` serving on ``listen`` (host:port)
    with its data in ``data_dir``; ``args`` are its other flags."""
    return [
        *NODE_COMMAND, "node", "--id", node_id, "--listen", listen, "--data-dir", str(data_dir), *args,
    ]  # fmt: skip


# -- one process -------------------------------------------------------------------------


class Process:
    """A command in a session of its own, its output appended to ``log_path``.

    Not running when made: :meth:`start` starts it, and starts it again
    (the same command, environment and log) once it has exited. ``argv`` and ``env``
    may change between starts (a crash point armed for one run, say).
    ``notes``: whether what is done to it is noted in its log."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        *,
        cwd: Path | None = None,
        notes: bool = True,
    ) -> None:
        self.name = name
        #: Whether :meth:`note` writes (off: the log is the program's alone).
        self.notes = notes
        self.argv = list(argv)
        self.log_path = log_path
        #: None: this process's environment.
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None
        #: Where this run's output starts in the log (it is appended to).
        self.log_start = 0
        self.paused = False

    def command(self) -> list[str]:
        """The command line of the next start."""
        return self.argv

    def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        argv = self.command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.log_start = log.tell()
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        self.paused = False

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit status of the last run (``-N`` for signal N); None while it runs."""
        return self.popen.poll() if self.popen is not None else None

    # -- signals ---------------------------------------------------------------------

    def note(self, text: str) -> None:
        """A line of the starter's in the log (``=== test: text``)."""
        if not self.notes:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"=== test: {text}\n".encode())

    def send(self, sig: signal.Signals) -> bool:
        """``sig`` to the process (not its group), noted in the log; False,
        and nothing sent, when it is not running (it may exit at any time)."""
        if not self.running:
            return False
        self.note(f"sending {sig.name} to pid {self.pid}")
        # Not reaped until polled, so the pid is still ours even if it just exited.
        os.kill(self.pid, sig)
        return True

    def pause(self) -> None:
        """SIGSTOP: the process is frozen, its sockets stay open."""
        assert self.send(signal.SIGSTOP), f"{self.name} is not running"
        self.paused = True

    def resume(self) -> None:
        self.send(signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        """SIGKILL to the process group (a stopped process dies too), and
        reap it: a crash. Nothing when it is not running."""
        popen = self.popen
        if popen is None:
            return
        if popen.poll() is None:
            self.note(f"sending SIGKILL to the process group {popen.pid}")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
        try:
            popen.wait(timeout=KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(popen.pid, signal.SIGKILL)
            popen.wait(timeout=KILL_WAIT_S)
        self.paused = False

    def stop(self, sig: signal.Signals = signal.SIGTERM, grace: float = STOP_GRACE_S) -> int:
        """A clean stop: ``sig`` (SIGTERM: a node hands leadership over;
        SIGINT: a node's fast stop), SIGKILL to the group after ``grace``
        seconds; the exit status."""
        if self.running:
            if self.paused:
                self.resume()  # a stopped process must hear the signal
            self.send(sig)
            try:
                return self.wait(grace)
            except subprocess.TimeoutExpired:
                self.note(f"still running {grace:.1f} s after {sig.name}")
                self.kill()
        code = self.returncode
        assert code is not None
        return code

    # -- waiting ------------------------------------------------------------------------

    def wait(self, timeout: float) -> int:
        """Blocking: until the process exits (``subprocess.TimeoutExpired``
        after ``timeout`` seconds); its exit status."""
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.wait(timeout=timeout)

    async def exited(self) -> int:
        """Trio: until the process exits; its exit status. Bound it with
        ``trio.fail_after``."""
        popen = self.popen
        assert popen is not None, f"{self.name} was never started"
        if popen.poll() is not None:
            return popen.returncode
        try:
            fd = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):  # no pidfd here: look again and again
            while popen.poll() is None:  # noqa: ASYNC110 (nothing to await without a pidfd)
                await trio.sleep(POLL_S)
            return popen.returncode
        try:
            await trio.lowlevel.wait_readable(fd)
        finally:
            os.close(fd)
        return popen.wait()

    # -- logs and resources -------------------------------------------------------------

    def log_text(self, *, this_run: bool = False) -> str:
        """The whole log, or (``this_run``) what the last start wrote."""
        try:
            with open(self.log_path, "rb") as log:
                if this_run:
                    log.seek(self.log_start)
                return log.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        return self.log_text().splitlines()[-lines:]

    def rss(self) -> int:
        """Resident set size in bytes, from /proc (0 once it is gone)."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0
        match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
        return int(match.group(1)) * 1024 if match else 0

    def cpu_seconds(self) -> float:
        """utime + stime so far, from /proc (0 once it is gone)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_all(
    processes: Iterable[Process], sig: signal.Signals = signal.SIGTERM, grace: float = STOP_GRACE_S
) -> dict[str, int]:
    """:meth:`Process.stop` of every running one of ``processes``, all
    signalled at once and given the same ``grace``; name -> exit status."""
    running = [process for process in processes if process.running]
    for process in running:
        if process.paused:
            process.resume()
        process.send(sig)
    deadline = time.monotonic() + grace
    statuses = {}
    for process in running:
        try:
            statuses[process.name] = process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.note(f"still running {grace:.1f} s after {sig.name}")
            process.kill()
            statuses[process.name] = process.wait(KILL_WAIT_S)
    return statuses


class NodeProcess(Process):
    """A ``raft-trio node`` with its id, address and data directory
    (``root/ID``, kept across restarts), logging to ``root/ID.log``.
    ``args`` are its other flags (``--peers``, ``--join``, ...)."""

    def __init__(
        self,
        node_id: str,
        port: int,
        root: Path,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        *,
        scheme: str = "http",
        host: str = HOST,
    ) -> None:
        super().__init__(node_id, [], root / f"{node_id}.log", env)
        self.id = node_id
        self.port = port
        self.host = host
        self.scheme = scheme
        self.data_dir = root / node_id
        self.args = list(args)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return node_argv(self.id, f"{self.host}:{self.port}", self.data_dir, *self.args)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.note(f"starting {shlex.join(self.command())}")
        super().start()


# -- a cluster ------------------------------------------------------------------------------


class NodeCluster:
    """Nodes n1..nN with static ``--peers`` on free ports of ``host``
    (``ports`` to choose them), their data and logs under ``root``; more
    may join later (:meth:`add_node`). ``env`` is every node's whole
    environment (change one node's ``env`` before a start to differ).

    ``ca`` (a CA bundle) or ``verify`` (an SSL context): what the status
    requests trust, for nodes serving HTTPS (``scheme="https"``)."""

    def __init__(
        self,
        root: Path,
        size: int = 3,
        env: Mapping[str, str] | None = None,
        *,
        args: Sequence[str] = (),
        scheme: str = "http",
        host: str = HOST,
        ports: Sequence[int] | None = None,
        ca: str | None = None,
        verify: ssl.SSLContext | bool | None = None,
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.env = dict(env) if env is not None else inherited_env()
        self.scheme = scheme
        self.host = host
        self.verify = (
            verify if verify is not None else (ssl.create_default_context(cafile=ca) if ca else True)
        )
        chosen = list(ports) if ports is not None else free_ports(size, host)
        assert len(chosen) == size, f"{len(chosen)} ports for {size} nodes"
        urls = {f"n{i + 1}": f"{scheme}://{host}:{port}" for i, port in enumerate(chosen)}
        self.peers = peers_flag(urls)
        self.nodes: dict[str, NodeProcess] = {
            node_id: self._node(node_id, port, ["--peers", self.peers, *args])
            for node_id, port in zip(urls, chosen, strict=True)
        }
        self._http: httpx.Client | None = None
        self._client: Client | None = None
        #: Sent with :meth:`client`'s requests (:meth:`authenticate`).
        self._auth: httpx.Auth | None = None
        #: What :meth:`leader_elected` saw last.
        self.last_seen: Any = None

    def _node(self, node_id: str, port: int, args: Sequence[str]) -> NodeProcess:
        return NodeProcess(node_id, port, self.root, args, self.env, scheme=self.scheme, host=self.host)

    def __getitem__(self, node_id: str) -> NodeProcess:
        return self.nodes[node_id]

    @property
    def urls(self) -> dict[str, str]:
        return {node_id: node.url for node_id, node in self.nodes.items()}

    # -- processes ----------------------------------------------------------------------

    def start(self) -> tuple[str, int]:
        """Blocking: start every node, then wait :data:`START_S` for the
        first leader; (leader id, term). The node logs' tails are in the
        error when none comes. (Another bound: :meth:`start_processes`,
        then :meth:`wait_for_leader`.)"""
        self.start_processes()
        try:
            return self.wait_for_leader(timeout=START_S)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.tails()}") from None

    def start_processes(self) -> None:
        """Start every node that is not running (no wait)."""
        for node in self.nodes.values():
            if not node.running:
                node.start()

    def add_node(self, node_id: str, args: Sequence[str], port: int | None = None) -> NodeProcess:
        """A further node (``--join URL``, say), started."""
        node = self._node(node_id, port if port is not None else free_port(self.host), args)
        self.nodes[node_id] = node
        node.start()
        return node

    def live_ids(self) -> list[str]:
        """Nodes running and not paused."""
        return [node.id for node in self.nodes.values() if node.running and not node.paused]

    def stop(self, sig: signal.Signals = signal.SIGTERM, grace: float = STOP_GRACE_S) -> dict[str, int]:
        """A clean stop of every running node, all signalled at once; node
        id -> exit status."""
        return stop_all(self.nodes.values(), sig, grace)

    def close(self) -> None:
        """Kill every node, whatever state it is in (SIGKILL: a cluster
        thrown away), and close the status client."""
        try:
            for node in self.nodes.values():
                node.kill()
        finally:
            if self._http is not None:
                self._http.close()
            self._http = self._client = None

    def crashed(self) -> list[str]:
        """The nodes that exited by themselves (not by our SIGKILL)."""
        return [
            f"{node.id} exited with status {node.returncode}"
            for node in self.nodes.values()
            if node.returncode is not None and node.returncode != -signal.SIGKILL
        ]

    def tails(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of every node's log, for a failure's report."""
        out = []
        for node in self.nodes.values():
            out.append(f"---- last {lines} lines of {node.log_path} ----")
            out.extend("    " + line[:400] for line in node.log_tail(lines))
        return "\n".join(out)

    # -- the leader, through the public client ------------------------------------------------

    def client(self) -> Client:
        """A blocking client of the cluster (one attempt per call, short
        timeouts: for looking, not for load)."""
        if self._client is None:
            self._http = httpx.Client(
                trust_env=False,
                auth=self._auth,
                verify=self.verify,
                timeout=httpx.Timeout(STATUS_TIMEOUT_S, connect=STATUS_CONNECT_S),
            )
            self._client = Client(
                list(self.urls.values()),
                timeout=STATUS_TIMEOUT_S,
                connect_timeout=STATUS_CONNECT_S,
                retry=False,
                http=self._http,
            )
        return self._client

    def authenticate(self, auth: httpx.Auth) -> None:
        """Send ``auth`` with :meth:`client`'s requests (the status the
        waits read) from now on: the cluster turned auth on."""
        self._auth = auth
        if self._http is not None:
            self._http.auth = auth

    def node_status(self, node_id: str) -> schema.Status | None:
        """``node_id``'s own /api/status (None while it does not answer)."""
        try:
            return self.client().at(self.nodes[node_id].url).status()
        except ClientError:
            return None

    def agreed_leader(self, ids: Iterable[str] | None = None, min_term: int = 0) -> tuple[bool, Any]:
        """``(True, (leader id, term))`` when every node of ``ids`` (the live
        ones by default) answers, exactly one says leader, all agree on
        leader_id and term, and term >= ``min_term``; else ``(False, what
        was seen)``."""
        id_list = self.live_ids() if ids is None else list(ids)
        return agreement({node_id: self.node_status(node_id) for node_id in id_list}, min_term)

    def wait_for_leader(
        self, ids: Iterable[str] | None = None, min_term: int = 0, timeout: float = ELECTION_S
    ) -> tuple[str, int]:
        """Blocking: until :meth:`agreed_leader`; (leader id, term).
        AssertionError, with what was last seen, after ``timeout``."""
        id_list = list(ids) if ids is not None else None
        found: tuple[str, int] = wait_until(
            lambda: self.agreed_leader(id_list, min_term),
            timeout,
            f"one leader agreed on by {id_list or self.live_ids()} (term >= {min_term})",
        )
        return found

    async def leader_elected(self, ids: Iterable[str] | None = None, min_term: int = 0) -> tuple[str, int]:
        """Trio: :meth:`wait_for_leader` through the Trio client, until it
        holds (bound it with ``trio.fail_after``; :attr:`last_seen` then
        tells what the nodes said last)."""
        id_list = list(ids) if ids is not None else None
        http = httpx.AsyncClient(
            trust_env=False,
            verify=self.verify,
            timeout=httpx.Timeout(STATUS_TIMEOUT_S, connect=STATUS_CONNECT_S),
        )
        async with (
            http,
            TrioClient(
                list(self.urls.values()),
                timeout=STATUS_TIMEOUT_S,
                connect_timeout=STATUS_CONNECT_S,
                retry=False,
                http=http,
            ) as client,
        ):

            async def status(node_id: str) -> schema.Status | None:
                try:
                    return await client.at(self.nodes[node_id].url).status()
                except ClientError:
                    return None

            while True:
                asked = self.live_ids() if id_list is None else id_list
                done, self.last_seen = agreement(
                    {node_id: await status(node_id) for node_id in asked}, min_term
                )
                if done:
                    leader: tuple[str, int] = self.last_seen
                    return leader
                await trio.sleep(POLL_S)


def agreement(statuses: Mapping[str, schema.Status | None], min_term: int = 0) -> tuple[bool, Any]:
    """Whether ``statuses`` agree on one leader (see
    :meth:`NodeCluster.agreed_leader`)."""
    missing = [node_id for node_id, status in statuses.items() if status is None]
    if missing:
        return False, f"no status from {missing}"
    seen = {
        node_id: (status.role, status.term, status.leader_id)
        for node_id, status in statuses.items()
        if status is not None
    }
    leaders = [node_id for node_id, (role, _, _) in seen.items() if role == "leader"]
    if len(leaders) != 1:
        return False, seen
    leader = leaders[0]
    term = seen[leader][1]
    if any(t != term or said != leader for _, t, said in seen.values()) or term < min_term:
        return False, seen
    return True, (leader, term)
