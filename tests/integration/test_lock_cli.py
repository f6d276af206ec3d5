"""``raft-trio lock`` and ``raft-trio elect`` as processes against a real
cluster: the command's environment and exit status, Ctrl-C, a lost lock
ending a command that ignores SIGTERM (SIGKILL after the grace period),
bad usage, and elections followed, won and handed over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from raft_trio.process_group import group_members

from .cluster import Cluster, cli_command, wait_until

pytestmark = pytest.mark.integration

RUN_S = 60


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def endpoints(cluster: Cluster) -> str:
    return ",".join(node.url for node in cluster.nodes.values())


def raft_trio(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli_command(), "--endpoints", endpoints(cluster), *args],
        capture_output=True,
        text=True,
        timeout=RUN_S,
        check=False,
    )


def start(cluster: Cluster, out: Path, *args: str) -> subprocess.Popen[bytes]:
    """``raft-trio ARGS`` in the background, its output (both streams) to ``out``."""
    with open(out, "wb") as sink:
        return subprocess.Popen(
            [*cli_command(), "--endpoints", endpoints(cluster), *args],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )


def keys_under(cluster: Cluster, name: str) -> list[str]:
    page = cluster.follow.get(cluster.leader().url + "/api/kv", params={"prefix": name + "/"}).json()
    return [item["key"] for item in page["kvs"]]


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def alive(pgid: int) -> list[int]:
    return [pid for pid, state, _ in group_members(pgid) or [] if state != "Z"]


def test_the_command_runs_with_the_lock_name_and_token_and_its_status_is_the_exit_status(
    shared_cluster: Cluster,
) -> None:
    name = unique("cli")
    done = raft_trio(
        shared_cluster, "lock", name, "--", "sh", "-c", 'echo "$RAFT_LOCK_NAME $RAFT_FENCING_TOKEN"; exit 7'
    )
    assert done.returncode == 7, done.stderr
    shown_name, token = done.stdout.split()
    assert shown_name == name and int(token) > 0
    assert f"holding {name} (fencing token {token})" in done.stderr
    assert keys_under(shared_cluster, name) == [], "released when the command exited"
    again = raft_trio(shared_cluster, "lock", name, "--", "sh", "-c", 'echo "$RAFT_FENCING_TOKEN"')
    assert again.returncode == 0 and int(again.stdout) > int(token)


@pytest.mark.parametrize(
    ("command", "status"),
    [("/nonexistent/command", 127), ("/etc/hostname", 126)],
    ids=["missing", "not-executable"],
)
def test_a_command_that_cannot_run_exits_126_or_127_and_releases_the_lock(
    shared_cluster: Cluster, command: str, status: int
) -> None:
    name = unique("cannot")
    done = raft_trio(shared_cluster, "lock", name, "--", command)
    assert done.returncode == status, done.stderr
    assert f"cannot run {command}" in done.stderr and "Traceback" not in done.stderr
    assert keys_under(shared_cluster, name) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP])
def test_ctrl_c_ends_the_commands_whole_group_and_releases_the_lock(
    shared_cluster: Cluster, tmp_path: Path, signum: signal.Signals
) -> None:
    """Ctrl-C, and Ctrl-\\ and Ctrl-Z too: they used to kill or stop the
    holder alone, and its command ran on past the lease (a review's
    finding)."""
    name = unique("interrupt")
    marks = tmp_path / "marks"
    script = f'trap "echo terminated >> {marks}; exit 0" TERM; sleep 100 & echo $! > {marks}.child; wait'
    agent = start(shared_cluster, tmp_path / "out", "lock", name, "--", "sh", "-c", script)
    try:
        child = wait_until(
            lambda: (bool(lines_of(Path(f"{marks}.child"))), lines_of(Path(f"{marks}.child"))),
            20,
            "the command",
        )
        group = os.getpgid(int(child[0]))
        assert group != os.getpgid(agent.pid), "the command has a process group of its own"
        agent.send_signal(signum)
        assert agent.wait(timeout=20) == 128 + signum
    finally:
        agent.kill()
        agent.wait()
    assert lines_of(marks) == ["terminated"]
    assert alive(group) == [], "the background child of the command is gone too"
    assert keys_under(shared_cluster, name) == []
    said = f"stopped by {signum.name}: the command was ended, {name} released"
    assert said in (tmp_path / "out").read_text()


def test_a_lock_whose_key_is_deleted_ends_a_command_that_ignores_sigterm_at_once(
    shared_cluster: Cluster, tmp_path: Path
) -> None:
    name = unique("ignores")
    started = tmp_path / "started"
    agent = start(
        shared_cluster, tmp_path / "out", "lock", name, "--grace", "1",
        "--", "sh", "-c", f'trap "" TERM; echo $$ > {started}; sleep 100',
    )  # fmt: skip
    try:
        wait_until(lambda: (bool(lines_of(started)), None), 20, "the command")
        group = int(lines_of(started)[0])
        (key,) = keys_under(shared_cluster, name)
        deleted_at = time.monotonic()
        shared_cluster.follow.delete(shared_cluster.leader().url + "/api/kv/" + key)
        assert agent.wait(timeout=20) == 1
        took = time.monotonic() - deleted_at
    finally:
        agent.kill()
        agent.wait()
    # The next waiter may hold the lock from the delete on: no grace, the
    # command that ignores SIGTERM is SIGKILLed at once.
    assert took <= 1.0, took
    assert alive(group) == []
    out = (tmp_path / "out").read_text()
    assert "its key was deleted; the command was ended" in out and "Traceback" not in out
    # The SIGKILL's note too says whose it is (it was the one bare line).
    assert all(line.startswith("raft-trio lock: ") for line in out.splitlines()), out


def test_a_waiter_stopped_in_line_says_it_left_the_line(shared_cluster: Cluster, tmp_path: Path) -> None:
    """It said it had released a lock it never held."""
    name = unique("waiter")
    holder = start(shared_cluster, tmp_path / "holder", "lock", name, "--", "sleep", "100")
    try:
        wait_until(lambda: (len(keys_under(shared_cluster, name)) == 1, None), 20, "the holder")
        waiter = start(shared_cluster, tmp_path / "waiter", "lock", name, "--", "true")
        try:
            wait_until(lambda: (len(keys_under(shared_cluster, name)) == 2, None), 20, "the waiter in line")
            waiter.send_signal(signal.SIGTERM)
            assert waiter.wait(timeout=20) == 128 + signal.SIGTERM
        finally:
            waiter.kill()
            waiter.wait()
        assert len(keys_under(shared_cluster, name)) == 1  # the holder's alone
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait(timeout=20)
    out = (tmp_path / "waiter").read_text()
    assert f"stopped by SIGTERM: left the line for {name}" in out and "released" not in out, out


def test_a_holder_keeps_its_lock_while_the_leader_is_paused_longer_than_the_ttl(
    cluster: Cluster, tmp_path: Path
) -> None:
    """`docker pause` of the leader for 6 s under a lock of TTL 5: the
    holder's keep-alive to the paused leader goes to the next endpoint
    after a second without an answer, whose node holds it until the new
    leader (which gives every lease a full TTL) is elected, and is
    answered there, before the holder's cutoff. Waiting on the paused
    leader, the holder lost the lock at its cutoff and ended the command."""
    name = unique("paused")
    started = tmp_path / "started"
    leader, _ = cluster.wait_for_leader()
    agent = start(
        cluster, tmp_path / "out", "lock", name, "--ttl", "5", "--grace", "0.5",
        "--", "sh", "-c", f"echo $$ > {started}; sleep 100",
    )  # fmt: skip
    try:
        wait_until(lambda: (bool(lines_of(started)), None), 20, "the command")
        cluster[leader].pause()
        try:
            with pytest.raises(subprocess.TimeoutExpired):  # the holder must not end meanwhile
                agent.wait(timeout=6.0)
        finally:
            cluster[leader].resume()
        assert agent.poll() is None, (tmp_path / "out").read_text()
        agent.send_signal(signal.SIGINT)
        assert agent.wait(timeout=20) == 128 + signal.SIGINT
    finally:
        agent.kill()
        agent.wait()
    out = (tmp_path / "out").read_text()
    assert f"stopped by SIGINT: the command was ended, {name} released" in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lock", "x", "--ttl", "0", "--", "true"], "--ttl must be at least 1"),
        (
            ["lock", "x", "--ttl", "3", "--grace", "3", "--", "true"],
            "--grace must be at least 0 and less than --ttl",
        ),
        (["lock", "x", "--"], "nothing to run after --"),
        (["lock", "/", "--", "true"], "the lock name is empty"),
        (["elect", "x", "--listen", "--", "true"], "elect --listen runs no command"),
        (["lock"], "the following arguments are required: name"),
    ],
)
def test_bad_usage_is_one_line_and_exit_status_2(
    shared_cluster: Cluster, args: list[str], message: str
) -> None:
    done = raft_trio(shared_cluster, *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) <= 2


def test_an_unreachable_cluster_is_one_line_and_exit_status_2() -> None:
    done = subprocess.run(
        [*cli_command(), "lock", "x", "--endpoints", "http://127.0.0.1:1", "--", "true"],
        capture_output=True, text=True, timeout=RUN_S, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "no cluster node answered" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_election_is_followed_won_and_handed_over(shared_cluster: Cluster, tmp_path: Path) -> None:
    name = unique("elect")
    listener = start(shared_cluster, tmp_path / "listen", "elect", name, "--listen", "-o", "json")
    alpha = beta = None
    try:

        def leaders() -> list[str | None]:
            shown = []
            for line in lines_of(tmp_path / "listen"):
                leader = json.loads(line)["leader"]
                shown.append(None if leader is None else leader["value"])
            return shown

        wait_until(lambda: (leaders() == [None], leaders()), 20, "no leader yet")
        alpha = start(shared_cluster, tmp_path / "alpha", "elect", name, "--proposal", "alpha")
        wait_until(lambda: (leaders() == [None, "alpha"], leaders()), 20, "alpha leading")
        beta = start(
            shared_cluster, tmp_path / "beta", "elect", name, "--proposal", "beta",
            "--", "sh", "-c", 'echo "beta leads with $RAFT_FENCING_TOKEN"; exec sleep 100',
        )  # fmt: skip
        wait_until(lambda: (len(keys_under(shared_cluster, name)) == 2, None), 20, "beta campaigning")
        assert "beta leads" not in (tmp_path / "beta").read_text()
        alpha.send_signal(signal.SIGINT)
        assert alpha.wait(timeout=20) == 0  # without a command, Ctrl-C is the normal end
        wait_until(lambda: (leaders() == [None, "alpha", "beta"], leaders()), 20, "beta leading")
        wait_until(lambda: ("beta leads with" in (tmp_path / "beta").read_text(), None), 20, "beta's command")
        # alpha printed each leader (its notes on stderr share the file, in either order)
        printed = [line for line in lines_of(tmp_path / "alpha") if not line.startswith("raft-trio elect:")]
        assert printed[:2] == ["-", "alpha"]
        beta.send_signal(signal.SIGTERM)
        assert beta.wait(timeout=20) == 143
        wait_until(lambda: (leaders() == [None, "alpha", "beta", None], leaders()), 20, "no leader again")
        listener.send_signal(signal.SIGINT)
        assert listener.wait(timeout=20) == 0
    finally:
        for process in (listener, alpha, beta):
            if process is not None:
                process.kill()
                process.wait()  # reaped here, not left to a later test's garbage collection
    for out in ("listen", "alpha", "beta"):
        assert "Traceback" not in (tmp_path / out).read_text()
