"""The payload supervisor: runs ``SCRIPT_LEADER_PATH`` while this node
leads and ``SCRIPT_FOLLOWER_PATH`` while it does not.

Each script runs in its own process group inside a cancel scope of the
supervisor's nursery. Leaving the role cancels the scope: the whole group
gets SIGTERM, then SIGKILL after a grace period, and the process is reaped,
so a leader script never outlives leadership, grandchildren included. A
script that exits while its role lasts is restarted with back-off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Mapping
from functools import partial

import trio

log = logging.getLogger(__name__)

GRACE_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 30.0


async def _terminate_group(process: trio.Process, grace: float = GRACE_SECONDS) -> None:
    """Trio's ``deliver_cancel``: SIGTERM the process group, wait, SIGKILL."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with trio.move_on_after(grace):
        await process.wait()
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


class PayloadSupervisor:
    def __init__(self, leader_script: str | None, follower_script: str | None, node_id: str) -> None:
        self.leader_script = leader_script
        self.follower_script = follower_script
        self.node_id = node_id
        self._desired: tuple[str, int, str | None] = ("follower", 0, None)
        self._changed = trio.Event()
        self.runs = 0

    def role_changed(self, role: str, term: int, leader_url: str | None) -> None:
        """Called by the runtime on every role change."""
        if role != self._desired[0]:
            self._desired = (role, term, leader_url)
            self._changed.set()

    def _script_for(self, role: str) -> str | None:
        return self.leader_script if role == "leader" else self.follower_script

    async def run(self) -> None:
        if not self.leader_script and not self.follower_script:
            return
        while True:
            role, term, leader_url = self._desired
            self._changed = trio.Event()
            script = self._script_for(role)
            async with trio.open_nursery() as nursery:
                if script:
                    nursery.start_soon(self._keep_running, script, role, term, leader_url)
                await self._changed.wait()
                nursery.cancel_scope.cancel()

    async def _keep_running(self, script: str, role: str, term: int, leader_url: str | None) -> None:
        env: Mapping[str, str] = {
            **os.environ,
            "RAFT_NODE_ID": self.node_id,
            "RAFT_ROLE": role,
            "RAFT_TERM": str(term),
            "RAFT_LEADER_URL": leader_url or "",
        }
        backoff = 0.5
        while True:
            self.runs += 1
            log.info("payload %s started for role %s", script, role)
            result = await trio.run_process(
                [script],
                env=env,
                check=False,
                start_new_session=True,
                stdout=None,
                stderr=subprocess.STDOUT,
                deliver_cancel=partial(_terminate_group),
            )
            log.warning("payload %s exited with %s; restarting in %.1f s", script, result.returncode, backoff)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
