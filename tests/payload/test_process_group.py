"""The payload supervisor with real processes (real clock): a leader script
that leaves a grandchild ignoring SIGTERM is ended with its whole process
group when leadership is lost, and its output reaches the node's log."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

import pytest
import trio

from raft_trio.node.payload import PayloadSupervisor
from raft_trio.process_group import describe_exit, group_members
from raft_trio.testing.waiting import wait_for

pytestmark = pytest.mark.skipif(
    shutil.which("sh") is None or not Path("/proc/self/stat").exists(), reason="needs sh and /proc"
)


def live_members(pgid: int) -> list[int]:
    return [pid for pid, state, _ in group_members(pgid) or [] if state != "Z"]


async def test_losing_leadership_ends_the_whole_process_group(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="raft_trio")
    pidfile = tmp_path / "grandchild.pid"
    script = tmp_path / "leader.sh"
    script.write_text(
        "#!/bin/sh\n"
        'echo "leading as $RAFT_NODE_ID in term $RAFT_TERM"\n'
        # The grandchild names itself once its trap is set: a SIGTERM
        # that came before the trap (a loaded machine) would end it, and
        # the SIGKILL this test is about would never be needed.
        f'sh -c \'trap "" TERM; echo $$ > "{pidfile}.tmp" && mv "{pidfile}.tmp" "{pidfile}"; exec sleep 1000\' &\n'
        "wait\n"
    )
    script.chmod(0o755)
    supervisor = PayloadSupervisor(str(script), None, "n1", grace=0.5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        supervisor.role_changed("leader", 3, "http://127.0.0.1:9001")
        with trio.fail_after(10):
            # Trio starts the process from a worker thread: the script can
            # write its file before the supervisor has the process object.
            await wait_for(lambda: pidfile.exists() and supervisor.current is not None, poll=0.02)
        grandchild = int(pidfile.read_text())
        script_process = supervisor.current
        assert script_process is not None
        group = script_process.pid
        assert os.getpgid(grandchild) == group != os.getpgid(0), "the script has a process group of its own"
        assert set(live_members(group)) >= {group, grandchild}

        lost = trio.current_time()
        supervisor.role_changed("follower", 4, "http://127.0.0.2:9001")
        with trio.fail_after(10):
            await wait_for(lambda: supervisor.current is None)
        took = trio.current_time() - lost
        assert live_members(group) == [], "a process of the leader script's group survived"
        assert took < 0.5 + 1.0
        nursery.cancel_scope.cancel()

    messages = [r.getMessage() for r in caplog.records]
    assert "[leader.sh] leading as n1 in term 3" in messages
    assert any("SIGKILL" in m for m in messages), "the grandchild ignored SIGTERM: it needed SIGKILL"


async def test_what_a_script_says_on_sigterm_reaches_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The example scripts' trap lines: written after SIGTERM, while the
    role is being left or the node stops, they still reach the log."""
    caplog.set_level(logging.INFO, logger="raft_trio")
    script = tmp_path / "leader.sh"
    script.write_text(
        "#!/bin/sh\n"
        "trap 'echo \"term $RAFT_TERM ended: stopping\"; exit 0' TERM\n"
        "echo started\n"
        "while :; do sleep 30 & wait $!; done\n"
    )
    script.chmod(0o755)
    supervisor = PayloadSupervisor(str(script), None, "n1", grace=2.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        supervisor.role_changed("leader", 3, None)
        with trio.fail_after(10):
            await wait_for(
                lambda: "[leader.sh] started" in [r.getMessage() for r in caplog.records], poll=0.02
            )
        supervisor.role_changed("follower", 4, None)  # leaving the role
        with trio.fail_after(10):
            await wait_for(lambda: supervisor.current is None)
        supervisor.role_changed("leader", 5, None)
        with trio.fail_after(10):
            await wait_for(
                lambda: [r.getMessage() for r in caplog.records].count("[leader.sh] started") >= 2,
                poll=0.02,
            )
        nursery.cancel_scope.cancel()  # the node stopping
    messages = [r.getMessage() for r in caplog.records]
    assert "[leader.sh] term 3 ended: stopping" in messages
    assert "[leader.sh] term 5 ended: stopping" in messages
    assert not any("SIGKILL" in m for m in messages)


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils timeout")
async def test_a_child_in_a_group_of_its_own_ends_with_the_command(tmp_path: Path) -> None:
    """coreutils ``timeout`` moves to a process group of its own (setpgid),
    in the command's session: a leader script that ran ``timeout 600
    ./task`` left the task running after leadership was lost (a review's
    finding). The session is ended with the group."""
    pidfile = tmp_path / "pid"
    script = tmp_path / "leader.sh"
    script.write_text(f"#!/bin/sh\ntimeout 600 sh -c 'echo $$ > {pidfile}; exec sleep 600'\n")
    script.chmod(0o755)
    supervisor = PayloadSupervisor(str(script), None, "n1", grace=0.5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        supervisor.role_changed("leader", 3, None)
        with trio.fail_after(10):
            await wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "", poll=0.02)
        worker = int(pidfile.read_text())
        assert os.getpgid(worker) != os.getsid(worker)  # a group of its own, in the script's session
        supervisor.role_changed("follower", 4, None)
        with trio.fail_after(10):
            await wait_for(lambda: supervisor.current is None, poll=0.02)
        nursery.cancel_scope.cancel()
    try:
        assert not running(worker), "the leader's work still runs after leadership was lost"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, 9)


async def test_a_script_a_signal_ends_is_logged_as_a_shell_reports_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Trio reports a script that SIGTERM ended as -15, which read as an
    odd exit status in the log: it says 143 (SIGTERM), as a shell would."""
    caplog.set_level(logging.INFO, logger="raft_trio")
    script = tmp_path / "leader.sh"
    script.write_text("#!/bin/sh\nkill -TERM $$\n")
    script.chmod(0o755)
    supervisor = PayloadSupervisor(str(script), None, "n1", grace=2.0)
    expected = "payload leader.sh exited with status 143 (SIGTERM) while leader"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        supervisor.role_changed("leader", 3, None)
        with trio.fail_after(10):
            await wait_for(lambda: expected in [r.getMessage() for r in caplog.records], poll=0.02)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("code", "described"),
    [(0, "status 0"), (3, "status 3"), (-9, "status 137 (SIGKILL)"), (-200, "status 328 (signal 200)")],
)
def test_exit_codes_are_described_as_a_shell_reports_them(code: int, described: str) -> None:
    assert describe_exit(code) == described
