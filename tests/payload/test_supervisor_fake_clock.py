"""The payload supervisor's timing on Trio's fake clock, with fake
processes (a real subprocess and the autojump clock do not mix): a leader
script never outlives leadership by more than the grace period,
grandchildren included; crashing scripts restart with back-off while their
role lasts; the environment and the output."""

from __future__ import annotations

import itertools
import logging
import random
import signal

import pytest
import trio
import trio.testing

from raft_trio.node.payload import MAX_LINE_BYTES, PayloadSupervisor, _log_lines

from .fakes import FakeSpawner

LEADER = "/opt/payload/leader.sh"
FOLLOWER = "/opt/payload/follower.sh"
GRACE = 2.0


@pytest.mark.parametrize("seed", range(5))
async def test_a_leader_script_never_outlives_leadership(
    autojump_clock: trio.testing.MockClock, seed: int
) -> None:
    rng = random.Random(seed)
    # Every script leaves a grandchild that ignores SIGTERM: only SIGKILL,
    # sent to the whole group, ends it.
    spawn = FakeSpawner(grandchild=True, grandchild_ignores_term=True)
    supervisor = PayloadSupervisor(LEADER, FOLLOWER, "n1", spawn=spawn, grace=GRACE)
    leaderships: dict[int, tuple[float, float]] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        term = 1
        for _ in range(25):
            await trio.sleep(rng.choice([0.0, 0.001, 0.5, 3.0, rng.uniform(0, 20)]))
            term += 1
            start = trio.current_time()
            supervisor.role_changed("leader", term, "http://n1:9001")
            await trio.sleep(rng.choice([0.0, 0.001, 1.0, rng.uniform(0, 20)]))
            supervisor.role_changed(rng.choice(["follower", "candidate"]), term + 1, None)
            leaderships[term] = (start, trio.current_time())
            term += 1
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    stopped = trio.current_time()

    leader_runs = spawn.of(LEADER)
    assert leader_runs, "the leader script never ran"
    for process in leader_runs:
        start, end = leaderships[process.term]
        assert start <= process.started_at <= end, "started outside its leadership"
        assert process.env["RAFT_ROLE"] == "leader"
        # Gone, grandchild included, within the grace period after the loss.
        assert process.death() <= end + GRACE + 1e-6, (process.term, process.died_at, end)
        assert process.signals[0] == (end, signal.SIGTERM)
        assert (end + GRACE, signal.SIGKILL) in process.signals
    # A follower script starts only once the last leader group is gone.
    for follower in spawn.of(FOLLOWER):
        for leader in leader_runs:
            if leader.started_at <= follower.started_at:
                assert leader.death() <= follower.started_at
    assert all(not p.group_alive() for p in spawn.processes), f"left running at {stopped}"


async def test_a_crashing_script_restarts_with_backoff_while_its_role_lasts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    spawn = FakeSpawner(exit_after=0.1, grandchild=False)
    supervisor = PayloadSupervisor(LEADER, None, "n1", spawn=spawn, grace=GRACE)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        supervisor.role_changed("leader", 2, "http://n1:9001")
        await trio.sleep(200)
        supervisor.role_changed("follower", 3, None)
        lost = trio.current_time()
        await trio.sleep(100)
        nursery.cancel_scope.cancel()
    runs = spawn.of(LEADER)
    pauses = [round(b.started_at - a.died_at["script"], 6) for a, b in itertools.pairwise(runs)]
    assert pauses[:8] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert all(p.started_at < lost for p in runs), "restarted after the role was left"
    assert supervisor.runs == len(runs)


async def test_a_long_run_resets_the_backoff(autojump_clock: trio.testing.MockClock) -> None:
    spawn = FakeSpawner(exit_after=60.0, grandchild=False)
    supervisor = PayloadSupervisor(LEADER, None, "n1", spawn=spawn, stable_run=10.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        supervisor.role_changed("leader", 2, None)
        await trio.sleep(200)
        nursery.cancel_scope.cancel()
    runs = spawn.of(LEADER)
    assert len(runs) >= 3
    assert all(round(b.started_at - a.died_at["script"], 6) == 0.5 for a, b in itertools.pairwise(runs))


async def test_a_script_that_cannot_start_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    spawn = FakeSpawner(grandchild=False)
    spawn.fail_with = PermissionError(13, "Permission denied")
    supervisor = PayloadSupervisor(LEADER, None, "n1", spawn=spawn)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        supervisor.role_changed("leader", 2, None)
        await trio.sleep(3.0)  # tries at 0, 0.5, 1.5
        assert supervisor.runs == 3
        spawn.fail_with = None
        await trio.sleep(3.0)  # the next try, at 3.5, works
        assert len(spawn.processes) == 1 and spawn.processes[0].group_alive()
        nursery.cancel_scope.cancel()


async def test_the_follower_script_runs_through_elections_and_the_leader_script_per_term(
    autojump_clock: trio.testing.MockClock,
) -> None:
    spawn = FakeSpawner(grandchild=False)
    supervisor = PayloadSupervisor(LEADER, FOLLOWER, "n1", spawn=spawn)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        await trio.sleep(1)
        for role in ("candidate", "follower", "learner", "follower"):
            supervisor.role_changed(role, 5, None)
            await trio.sleep(1)
        assert len(spawn.of(FOLLOWER)) == 1, "a follower script restarted by an election"
        supervisor.role_changed("leader", 6, "http://n1:9001")
        await trio.sleep(1)
        supervisor.role_changed("leader", 6, "http://n1:9001")  # the same leadership
        await trio.sleep(1)
        assert len(spawn.of(LEADER)) == 1
        nursery.cancel_scope.cancel()
    follower = spawn.of(FOLLOWER)[0]
    assert follower.death() == 5.0  # ended when leadership began
    assert spawn.of(LEADER)[0].started_at == 5.0


async def test_the_environment_and_the_output_in_the_nodes_log(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="raft_trio.payload")
    monkeypatch.setenv("RAFT_CLUSTER_SECRET", "peers-only-0123456789")
    monkeypatch.setenv("RAFT_ADMIN_TOKEN", "for-the-cli")
    spawn = FakeSpawner(grandchild=False, output=b"hello\nsecond line\npartial")
    supervisor = PayloadSupervisor(LEADER, FOLLOWER, "node-7", spawn=spawn)
    supervisor.starting_as("learner", 8, "http://10.0.0.1:9001")  # a restarted node's own state
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        await trio.sleep(1)
        supervisor.role_changed("leader", 9, "http://10.0.0.7:9001")
        await trio.sleep(1)
        supervisor.role_changed("follower", 10, None)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    leader = spawn.of(LEADER)[0]
    assert {k: leader.env[k] for k in ("RAFT_NODE_ID", "RAFT_ROLE", "RAFT_TERM", "RAFT_LEADER_URL")} == {
        "RAFT_NODE_ID": "node-7",
        "RAFT_ROLE": "leader",
        "RAFT_TERM": "9",
        "RAFT_LEADER_URL": "http://10.0.0.7:9001",
    }
    # The cluster secret signs peer messages only; the admin token serves the CLI.
    assert "RAFT_CLUSTER_SECRET" not in leader.env and leader.env["RAFT_ADMIN_TOKEN"] == "for-the-cli"
    first_follower = spawn.of(FOLLOWER)[0]
    assert (first_follower.env["RAFT_ROLE"], first_follower.env["RAFT_TERM"]) == ("learner", "8")
    assert first_follower.env["RAFT_LEADER_URL"] == "http://10.0.0.1:9001"
    second_follower = spawn.of(FOLLOWER)[1]
    assert second_follower.env["RAFT_ROLE"] == "follower" and second_follower.env["RAFT_LEADER_URL"] == ""
    lines = [r.getMessage() for r in caplog.records if r.name == "raft_trio.payload"]
    assert "[leader.sh] hello" in lines
    assert "[leader.sh] second line" in lines
    assert "[leader.sh] partial" in lines
    assert "[follower.sh] hello" in lines


async def test_a_script_flooding_its_output_does_not_hold_the_event_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``yes`` as a payload: each read of its pipe holds some 32,000 lines,
    and logging them all in one go held the node's event loop for 1.5 s
    (a review measured it), longer than an election timeout: heartbeats
    late, elections. The other tasks get their turns while it is logged."""
    turns = 0
    seen_at_turn: list[int] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen_at_turn.append(turns)

    async def other_task() -> None:
        nonlocal turns
        while len(seen_at_turn) < 30_000:  # busy, but not for ever: the fake clock waits for it
            turns += 1
            await trio.lowlevel.checkpoint()

    output_log = logging.getLogger("raft_trio.payload")
    handler = Recorder()
    output_log.addHandler(handler)
    level = output_log.level
    output_log.setLevel(logging.INFO)
    try:
        spawn = FakeSpawner(grandchild=False, output=b"y\n" * 30_000)
        supervisor = PayloadSupervisor(LEADER, None, "n1", spawn=spawn)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(supervisor.run)
                supervisor.role_changed("leader", 2, None)
                await other_task()
                nursery.cancel_scope.cancel()
    finally:
        output_log.removeHandler(handler)
        output_log.setLevel(level)
    assert len(seen_at_turn) == 30_000
    longest = max(len(list(group)) for _, group in itertools.groupby(seen_at_turn))
    assert longest <= 1_000, f"{longest} lines logged without letting another task run"


async def test_a_stopping_node_starts_no_script(autojump_clock: trio.testing.MockClock) -> None:
    """A leader told to stop hands leadership over and so becomes a
    follower on its way out: its follower script was started then, only to
    get SIGTERM moments later (the example's trap said "this node is about
    to lead"). And a script that exits during the stop is not restarted."""
    spawn = FakeSpawner(grandchild=False)
    supervisor = PayloadSupervisor(LEADER, FOLLOWER, "n1", spawn=spawn, grace=GRACE)
    supervisor.starting_as("leader", 2, "http://n1:9001")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        await trio.sleep(1)
        supervisor.stopping()
        await trio.sleep(1)
        (leader,) = spawn.of(LEADER)
        assert leader.group_alive(), "the script runs on while the node hands over"
        supervisor.role_changed("follower", 3, "http://n2:9001")  # the hand-over
        await trio.sleep(10)
        assert not leader.group_alive()
        assert spawn.of(FOLLOWER) == [], "a follower script started by a stopping node"
        nursery.cancel_scope.cancel()


async def test_a_script_that_exits_while_the_node_stops_is_not_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    spawn = FakeSpawner(exit_after=2.0, grandchild=False)
    supervisor = PayloadSupervisor(None, FOLLOWER, "n1", spawn=spawn, grace=GRACE)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        await trio.sleep(1)
        supervisor.stopping()
        await trio.sleep(60)
        assert len(spawn.of(FOLLOWER)) == 1
        nursery.cancel_scope.cancel()


async def test_a_long_line_is_logged_in_pieces_cut_between_characters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A line over ``MAX_LINE_BYTES`` is logged in pieces whether it comes
    in one read or several (one that came whole was logged as one record
    of up to 64 KiB), and a piece never ends inside a UTF-8 character."""
    caplog.set_level(logging.INFO, logger="raft_trio.payload")
    line = ("a" + "é" * (MAX_LINE_BYTES // 2)).encode() * 2  # 2-byte characters, odd offsets
    send, receive = trio.testing.memory_stream_one_way_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_log_lines, receive, "long.sh")
        await send.send_all(line + b"\nshort\n" + line[:101])
        await send.aclose()
    logged = [r.getMessage().removeprefix("[long.sh] ") for r in caplog.records]
    assert all(len(text.encode()) <= MAX_LINE_BYTES for text in logged), [len(t) for t in logged]
    assert "\ufffd" not in "".join(logged)
    assert "".join(logged[:-2]) == line.decode() and logged[-2:] == ["short", line[:101].decode()]
