"""A cluster at rest wakes only for heartbeats: on this kind of machine a
task's wake-up, not what runs in it, is what a node at rest spends. Three
runtimes on Trio's fake clock; every task's steps counted by name."""

from __future__ import annotations

import collections

import trio
import trio.testing

from tests.node.harness import TIMING, Cluster


class TaskSteps(trio.abc.Instrument):
    def __init__(self) -> None:
        self.steps: collections.Counter[str] = collections.Counter()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps[task.name] += 1


async def test_at_rest_heartbeats_and_their_answers_wake_no_stream_and_no_ready_loop(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    await cluster.wait_for_leader(within=10.0)
    await trio.sleep(3.0)  # settled: every stream open, the first commits done
    counter = TaskSteps()
    trio.lowlevel.add_instrument(counter)
    try:
        await trio.sleep(2.0)
    finally:
        trio.lowlevel.remove_instrument(counter)
    rounds = 2.0 / (TIMING.heartbeat_ms / 1000)
    # The leader's ticker sends each round's heartbeats itself, and each
    # follower's stream reader answers from where it read them: written at
    # once, with no turn of a stream's task or of a ready loop.
    assert counter.steps["ticker"] <= rounds + 2, counter.steps
    assert counter.steps["ready-loop"] == 0, counter.steps
    assert sum(n for name, n in counter.steps.items() if name.startswith("stream-")) == 0, counter.steps
