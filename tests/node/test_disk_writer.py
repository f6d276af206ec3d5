"""The node's one disk-writer thread: every write on the same thread, in
order, off the event loop; a write that started is finished even if its
caller is cancelled."""

from __future__ import annotations

import threading

import pytest
import trio

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
