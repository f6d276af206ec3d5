"""A node that is PID 1 of a container adopts what its payload scripts
leave behind when their parents exit without waiting: ``(cmd &)``, or a
child that called ``setsid``. A review found them piling up as zombies
(158 in 2 s) until the container's PID limit. Here the node's process is a
child subreaper, which adopts orphans as PID 1 does."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PROGRAM = textwrap.dedent(
    """
    import ctypes, os, sys, trio
    from raft_trio.node.payload import PayloadSupervisor
    from raft_trio.testing.waiting import wait_for

    PR_SET_CHILD_SUBREAPER = 36
    assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0

    def zombies():
        me, found = os.getpid(), 0
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = open(f"/proc/{entry}/stat").read()
                except OSError:
                    continue
                fields = stat[stat.rfind(")") + 2 :].split()
                found += fields[0] == "Z" and int(fields[1]) == me
        return found

    async def main():
        supervisor = PayloadSupervisor(None, sys.argv[1], "n1", grace=0.3, adopts_orphans=True)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(supervisor.run)
            with trio.fail_after(10):
                await wait_for(lambda: os.path.exists(sys.argv[2]), poll=0.01)
            # Reaped while the script runs on (without the reaper, never).
            with trio.fail_after(5):
                await wait_for(lambda: zombies() == 0, poll=0.05)
            running = supervisor.current
            supervisor.role_changed("leader", 2, None)
            with trio.fail_after(10):
                await wait_for(lambda: supervisor.current is None, poll=0.01)
            with trio.fail_after(5):
                await wait_for(lambda: zombies() == 0, poll=0.05)
            print(running is not None)
            nursery.cancel_scope.cancel()

    trio.run(main)
    """
)


def test_orphans_of_a_payload_script_are_reaped(tmp_path: Path) -> None:
    script = tmp_path / "follower.sh"
    ready = tmp_path / "ready"
    orphans = "for i in 1 2 3 4 5; do (true &); (setsid true &); done"
    script.write_text(f"#!/bin/sh\n{orphans}\nsleep 0.2\ntouch {ready}\nexec sleep 100\n")
    script.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(script), str(ready)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, f"zombies of the node (PID 1) pile up: {done.stderr}"
    assert done.stdout.split() == ["True"], "the script ran on while its orphans were reaped"
