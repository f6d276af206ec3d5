"""``LazyTicks`` on Trio's fake clock with a stand-in core: ticks come late
but all of them, in bulk, before other inputs; the ticker wakes for the due
tick; time the process did not run is not delivered as a burst."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from raft_trio.node._ticks import LazyTicks

INTERVAL = 0.01


class StubCore:
    """Counts ticks; a timer is due every ``period`` ticks."""

    def __init__(self, period: int | None = 10) -> None:
        self.period = period
        self.ticks = 0
        self.config: Any = type("Config", (), {"election_ticks_max": 200})()

    def tick(self) -> None:
        self.ticks += 1

    def ticks_until_due(self) -> int | None:
        if self.period is None:
            return None
        return self.period - self.ticks % self.period


async def ticker(ticks: LazyTicks) -> None:
    while True:
        with trio.CancelScope(deadline=ticks.next_wake()) as sleep:
            ticks.sleeping(sleep)
            await trio.sleep_forever()
        ticks.catch_up()


async def test_every_tick_arrives_late_and_in_bulk(autojump_clock: trio.testing.MockClock) -> None:
    core = StubCore(period=10)
    ticks = LazyTicks(core, INTERVAL, max_sleep=1.0)  # type: ignore[arg-type]
    ticks.start()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker, ticks)
        await trio.sleep(1.005)
        assert core.ticks == 100  # one wake per due tick: every 10 ticks
        assert ticks.wakeups <= 11
        await trio.sleep(0.033)
        ticks.catch_up()  # an input: the 3 ticks since arrive first
        assert core.ticks == 103
        nursery.cancel_scope.cancel()


async def test_an_input_that_brings_the_due_tick_closer_wakes_the_ticker_sooner(
    autojump_clock: trio.testing.MockClock,
) -> None:
    core = StubCore(period=50)
    ticks = LazyTicks(core, INTERVAL, max_sleep=10.0)  # type: ignore[arg-type]
    ticks.start()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker, ticks)
        await trio.sleep(0.105)
        ticks.catch_up()
        assert core.ticks == 10
        core.period = 12  # the input made a timer due in 2 ticks
        ticks.reschedule()
        await trio.sleep(0.016)
        assert core.ticks == 12  # delivered by the ticker at the due tick
        nursery.cancel_scope.cancel()


async def test_time_the_process_did_not_run_is_not_a_burst_of_ticks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    core = StubCore(period=100)
    ticks = LazyTicks(core, INTERVAL, max_sleep=0.1)  # type: ignore[arg-type]
    ticks.start()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker, ticks)
        await trio.sleep(0.25)
        ticks.catch_up()
        assert core.ticks == 25
        # The process stops for 5 s (SIGSTOP): the clock jumps while the
        # ticker sleeps until its planned wake (0.3 s).
        autojump_clock.jump(5.0)
        ticks.catch_up()  # the first input after the pause
        # Only the ticks up to the planned wake and a heartbeat's slack
        # came: the pause itself counts for nothing, as with the periodic
        # ticker, and is dropped once (the next input counts from now).
        assert core.ticks == 40
        await trio.sleep(0.02)
        ticks.catch_up()
        assert core.ticks == 42
        await trio.sleep(0.085)  # just after the ticker's wake, a max_sleep on
        assert core.ticks == 50
        nursery.cancel_scope.cancel()


async def test_without_a_timer_only_a_bounded_number_of_ticks_is_delivered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    core = StubCore(period=None)
    ticks = LazyTicks(core, INTERVAL, max_sleep=1000.0)  # type: ignore[arg-type]
    ticks.start()
    await trio.sleep(100.0)
    ticks.catch_up()
    assert core.ticks == core.config.election_ticks_max + 1


async def test_inputs_push_the_wake_on_and_a_pause_after_them_still_counts_for_little(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A follower hearing a heartbeat every interval: each input shows the
    process runs, so the ticker sleeps on (no wake for nothing); a pause
    after the last input counts for at most ``max_sleep`` plus the slack,
    as after a wake of the ticker."""
    core = StubCore(period=100)
    ticks = LazyTicks(core, INTERVAL, max_sleep=0.1)  # type: ignore[arg-type]
    ticks.start()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker, ticks)
        await trio.sleep(0.001)
        woken = ticks.wakeups  # the ticker went to sleep once
        for _ in range(18):  # an input every 50 ms up to 0.9 s
            await trio.sleep(0.05)
            ticks.catch_up()
            ticks.reschedule()
        assert ticks.wakeups == woken, "the ticker woke although inputs kept coming"
        assert core.ticks == 90
        autojump_clock.jump(5.0)  # SIGSTOP after the input at 0.901 s
        ticks.catch_up()
        assert core.ticks == 110, "only the next planned wake (1.0 s) and the slack count"
        nursery.cancel_scope.cancel()
