"""Clients waiting on the log (raft_trio.node._pending) time out by the
ticker's sweep: nothing expires before its timeout, an answered waiter is
left alone, and an expired one is answered once and forgotten. The count
of waiting clients tells a stop's drain when none is left."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from raft_trio.node import ReadAborted, WriteIndeterminate
from raft_trio.node._pending import PendingReads, PendingWrites, WaitingClients

TIMEOUT_S = 5.0


async def test_writes_expire_at_their_timeout_and_answered_ones_stay_answered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    writes = PendingWrites(TIMEOUT_S)
    first = writes.add(10, term=2)
    await trio.sleep(1.0)
    second = writes.add(11, term=2)
    writes.applied(10, 2, "result")
    writes.expire(trio.current_time() + TIMEOUT_S - 1.0 - 0.001)  # just before the second's deadline
    assert not second.done.is_set() and len(writes) == 1
    writes.expire(trio.current_time() + TIMEOUT_S)
    assert await writes.wait(first) == "result"
    with pytest.raises(WriteIndeterminate, match="timed out"):
        await writes.wait(second)
    assert len(writes) == 0
    writes.applied(11, 2, "too late")  # the commit after the timeout finds no waiter
    assert second.result is None


async def test_reads_expire_at_their_timeout(autojump_clock: trio.testing.MockClock) -> None:
    reads = PendingReads(TIMEOUT_S)
    request_id, waiter = reads.add()
    kept_id, kept = reads.add()
    reads.confirmed(kept_id, index=7, applied=7)
    reads.expire(trio.current_time() + TIMEOUT_S - 0.001)
    assert not waiter.done.is_set()
    reads.expire(trio.current_time() + TIMEOUT_S)
    with pytest.raises(ReadAborted, match="timed out"):
        await reads.wait(waiter)
    assert await reads.wait(kept) == 7
    assert len(reads) == 0
    reads.confirmed(request_id, index=9, applied=9)  # a late confirmation changes nothing
    assert waiter.index is None


async def test_waiting_clients_are_idle_only_once_the_last_one_left(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clients = WaitingClients()
    assert clients.idle.is_set()
    idle_at: list[float] = []

    async def one(seconds: float, fail: bool = False) -> None:
        with clients:
            await trio.sleep(seconds)
            if fail:
                raise WriteIndeterminate("gone")

    async def drain() -> None:
        await trio.testing.wait_all_tasks_blocked()
        await clients.idle.wait()
        idle_at.append(trio.current_time())

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, 1.0)
        nursery.start_soon(drain)

        async def failing() -> None:
            with pytest.raises(WriteIndeterminate):
                await one(2.0, fail=True)  # leaving by an exception counts too

        nursery.start_soon(failing)
    assert idle_at == [start + 2.0]
    assert clients.count == 0 and clients.idle.is_set()
    with clients:
        assert not clients.idle.is_set()  # a fresh event: the next drain waits again


async def test_the_next_deadline_is_the_first_unanswered_waiters(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The ticker wakes for it: answered waiters ahead of it are dropped,
    so that it does not wake for each of theirs in turn."""
    writes = PendingWrites(TIMEOUT_S)
    assert writes.next_deadline() == math.inf
    start = trio.current_time()
    writes.add(10, term=2)
    await trio.sleep(1.0)
    writes.add(11, term=2)
    assert writes.next_deadline() == start + TIMEOUT_S
    writes.applied(10, 2, "result")
    assert writes.next_deadline() == start + 1.0 + TIMEOUT_S
    writes.applied(11, 2, "result")
    assert writes.next_deadline() == math.inf
    reads = PendingReads(TIMEOUT_S)
    request_id, _ = reads.add()
    assert reads.next_deadline() == trio.current_time() + TIMEOUT_S
    reads.drop(request_id)
    assert reads.next_deadline() == math.inf
