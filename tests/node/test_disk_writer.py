"""The node's one disk-writer thread: every write on the same thread, in
order, off the event loop; a write that started is finished even if its
caller is cancelled. A short write runs on the loop's own thread while the
writer is idle and the disk quick, else on the writer thread, in order."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
import trio
import trio.testing

from raft_trio.node import disk
from raft_trio.node.disk import DiskWriter


async def test_every_job_runs_on_one_thread_in_order() -> None:
    writer = DiskWriter("test-disk")
    seen: list[tuple[int, int]] = []
    try:
        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(writer, lambda n=n: seen.append((n, threading.get_ident())))
                await trio.lowlevel.checkpoint()
    finally:
        writer.stop()
    assert [n for n, _ in seen] == list(range(20))
    threads = {ident for _, ident in seen}
    assert len(threads) == 1 and threading.get_ident() not in threads


async def test_results_and_errors_come_back() -> None:
    writer = DiskWriter("test-disk")
    try:
        assert await writer(lambda a, b: a + b, 2, 3) == 5
        with pytest.raises(ValueError, match="disk full"):
            await writer(_raise, ValueError("disk full"))
    finally:
        writer.stop()


def _raise(error: Exception) -> None:
    raise error


async def test_a_started_write_finishes_before_a_cancelled_caller_returns() -> None:
    writer = DiskWriter("test-disk")
    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    def slow_write() -> None:
        started.set()
        release.wait(timeout=10)
        finished.append(True)

    caller = trio.CancelScope()
    returned = trio.Event()

    async def call() -> None:
        with caller:
            await writer(slow_write)
        returned.set()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            await trio.to_thread.run_sync(started.wait, 10)
            caller.cancel()
            await trio.sleep(0.1)  # the cancelled caller must still be waiting
            assert not returned.is_set() and not finished
            release.set()
            await returned.wait()
        assert finished == [True]
    finally:
        release.set()
        writer.stop()


async def test_a_short_write_runs_on_the_loops_thread_while_the_writer_is_idle_and_the_disk_quick() -> None:
    writer = DiskWriter("test-disk")
    try:
        assert await writer.short(threading.get_ident) == threading.get_ident()
        assert await writer.short(lambda a, b: a + b, 2, 3) == 5
        with pytest.raises(ValueError, match="disk full"):
            await writer.short(_raise, ValueError("disk full"))
        assert await writer.short(threading.get_ident) == threading.get_ident()
    finally:
        writer.stop()


async def test_a_short_write_goes_behind_a_job_on_the_thread_never_beside_it() -> None:
    writer = DiskWriter("test-disk")
    started, release = threading.Event(), threading.Event()
    order: list[str] = []

    def slow_compaction() -> None:
        started.set()
        release.wait(timeout=10)
        order.append("compaction")

    def short_write() -> int:
        order.append("short")
        return threading.get_ident()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer, slow_compaction)
            await trio.to_thread.run_sync(started.wait, 10)
            short_ran_on: list[int] = []

            async def write() -> None:
                short_ran_on.append(await writer.short(short_write))

            nursery.start_soon(write)
            await trio.testing.wait_all_tasks_blocked()
            assert order == [], "the short write must wait for the job on the thread"
            release.set()
        assert order == ["compaction", "short"]
        assert short_ran_on != [threading.get_ident()]
    finally:
        release.set()
        writer.stop()


async def test_after_a_slow_short_write_the_next_go_to_the_thread_until_one_is_quick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(disk, "QUICK_WRITE_S", 0.005)
    writer = DiskWriter("test-disk")
    loop_thread = threading.get_ident()
    try:
        # Held the loop for longer than QUICK_WRITE_S: the disk is slow now.
        assert await writer.short(_sleep_then_ident, 0.02) == loop_thread
        assert await writer.short(_sleep_then_ident, 0.02) != loop_thread
        assert await writer.short(_sleep_then_ident, 0.0) != loop_thread  # quick again, on the thread
        assert await writer.short(_sleep_then_ident, 0.0) == loop_thread
    finally:
        writer.stop()


async def test_a_quick_short_write_vouches_for_the_disk_only_for_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A busy leader's batches go to the thread untimed, and the disk may
    turn slow meanwhile: a short write that finds the last quick one
    older than QUICK_TRUST_S goes to the thread, timed; the next runs on
    the loop again if that one was quick."""
    now = [1000.0]
    monkeypatch.setattr(disk, "time", SimpleNamespace(perf_counter=lambda: now[0], sleep=time.sleep))
    writer = DiskWriter("test-disk")
    loop_thread = threading.get_ident()
    try:
        assert await writer.short(threading.get_ident) == loop_thread
        await writer(threading.get_ident)  # a batch on the thread: not timed
        now[0] += disk.QUICK_TRUST_S - 0.001
        assert await writer.short(threading.get_ident) == loop_thread
        now[0] += disk.QUICK_TRUST_S + 0.001
        assert await writer.short(threading.get_ident) != loop_thread
        assert await writer.short(threading.get_ident) == loop_thread
    finally:
        writer.stop()


def _sleep_then_ident(seconds: float) -> int:
    time.sleep(seconds)
    return threading.get_ident()
