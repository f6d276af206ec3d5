"""Fake payload processes for the supervisor's tests on Trio's fake clock:
a script and one grandchild in a process group of their own, which record
when they got which signal and when they died."""

from __future__ import annotations

import itertools
import signal
from collections.abc import Mapping, Sequence

import trio
import trio.testing

_pids = itertools.count(1000)


class FakeProcess:
    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        exit_after: float | None = None,
        grandchild: bool = True,
        grandchild_ignores_term: bool = True,
        output: bytes = b"",
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self._pid = next(_pids)
        self.started_at = trio.current_time()
        self.exit_at = None if exit_after is None else self.started_at + exit_after
        self.alive = {"script": True, "grandchild": grandchild}
        self.died_at: dict[str, float] = {}
        self.signals: list[tuple[float, int]] = []
        self.code: int | None = None
        self._exited = trio.Event()
        self._ignores_term = grandchild_ignores_term
        self._send, self._receive = trio.testing.memory_stream_one_way_pair()
        self._pending_output = output

    @property
    def script(self) -> str:
        return self.argv[0]

    @property
    def term(self) -> int:
        return int(self.env["RAFT_TERM"])

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def output(self) -> trio.abc.ReceiveStream:
        return self._receive

    async def start(self) -> None:
        if self._pending_output:
            await self._send.send_all(self._pending_output)

    def _die(self, who: str, code: int) -> None:
        if self.alive[who]:
            self.alive[who] = False
            self.died_at[who] = trio.current_time()
        if who == "script" and not self._exited.is_set():
            self.code = code
            self._exited.set()
        if not any(self.alive.values()):
            self._send.close()  # the last writer is gone: the pipe ends

    async def wait(self) -> int:
        if self.exit_at is not None:
            with trio.move_on_at(self.exit_at):
                await self._exited.wait()
            self._die("script", 1)  # crashed on its own (no-op if it already died)
        await self._exited.wait()
        assert self.code is not None
        return self.code

    def signal_group(self, signum: int) -> None:
        self.signals.append((trio.current_time(), signum))
        if signum == signal.SIGKILL:
            self._die("script", -signal.SIGKILL)
            self._die("grandchild", -signal.SIGKILL)
        elif signum == signal.SIGTERM:
            self._die("script", -signal.SIGTERM)
            if not self._ignores_term:
                self._die("grandchild", -signal.SIGTERM)

    def group_alive(self) -> bool:
        return any(self.alive.values())

    def reap_orphans(self) -> None:
        pass

    async def aclose(self) -> None:
        await self._receive.aclose()

    def death(self) -> float:
        """When the last process of the group died."""
        assert not self.group_alive(), "the group still runs"
        return max(self.died_at.values())


class FakeSpawner:
    """``spawn`` for the supervisor: makes FakeProcesses and keeps them."""

    def __init__(self, **options: object) -> None:
        self.options = options
        self.processes: list[FakeProcess] = []
        self.fail_with: OSError | None = None

    async def __call__(self, argv: Sequence[str], env: Mapping[str, str]) -> FakeProcess:
        if self.fail_with is not None:
            raise self.fail_with
        process = FakeProcess(argv, env, **self.options)  # type: ignore[arg-type]
        self.processes.append(process)
        await process.start()
        return process

    def of(self, script: str) -> list[FakeProcess]:
        return [p for p in self.processes if p.script == script]
