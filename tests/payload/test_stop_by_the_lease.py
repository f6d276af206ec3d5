"""``raft-trio lock`` ends its command by the time another may hold the
lock: the grace between SIGTERM and SIGKILL is cut to what is left of the
lease, and is none once the lease has run out (the holder was paused:
Ctrl-Z, SIGSTOP, a long stall) or the cluster said the lock is gone (its
key deleted, the lease refused). A review found the full --grace given in
both cases. Fake cluster and fake processes, Trio's fake clock."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from raft_trio import schema
from raft_trio.cli.holding import Holder
from raft_trio.cli.lock import HoldSettings
from raft_trio.process_group import stop_group
from raft_trio.testing.waiting import wait_for
from tests.client.lock_fakes import OneHolderCluster
from tests.payload.fakes import FakeProcess, FakeSpawner

TTL = 9
GRACE = 2.0


@contextlib.asynccontextmanager
async def holding_for_a_second(cluster: OneHolderCluster, spawner: FakeSpawner) -> AsyncIterator[list[int]]:
    """``raft-trio lock job -- work`` on ``cluster``, its command started a
    second ago; what it exits with comes into the list once the block ends."""
    holder = Holder(cluster, HoldSettings("lock", "job", TTL, GRACE, ["work"]), "table", spawner)
    result: list[int] = []

    async def run() -> None:
        result.append(await holder.run())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await wait_for(lambda: bool(spawner.processes))
        await trio.sleep(1)
        yield result


async def test_a_holder_resumed_past_its_lease_kills_the_command_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    spawner = FakeSpawner(grandchild_ignores_term=True)
    async with holding_for_a_second(OneHolderCluster(ttl=TTL), spawner) as result:
        autojump_clock.jump(60)  # raft-trio lock was stopped for a minute: its lease is long gone
        resumed = trio.current_time()
    (process,) = spawner.processes
    assert result == [1]
    # The lease ran out ~50 s ago; the next holder may be running. Every
    # further second of the command is an overlap.
    assert process.death() - resumed < 0.1, process.signals


async def test_a_holder_whose_key_was_deleted_kills_the_command_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The delete hands the lock to the next waiter at once (its watch sees
    it as this holder's does); the docs say the command "is gone before
    anyone else can get the lock"."""
    spawner = FakeSpawner(grandchild_ignores_term=True)
    delete = trio.Event()
    async with holding_for_a_second(OneHolderCluster(ttl=TTL, key_deleted=delete.wait), spawner) as result:
        deleted = trio.current_time()
        delete.set()
    (process,) = spawner.processes
    assert result == [1]
    assert process.death() - deleted < 0.1, process.signals


async def test_the_sigkill_is_sent_before_anything_is_written_about_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The warning that a group outlived SIGTERM goes to stderr (no logging
    is set up for ``raft-trio lock``: Python's last-resort handler writes
    it there), a blocking write: to a terminal paused with Ctrl-S, or a
    pipe its reader stopped draining, it never returns. It was written
    before the SIGKILL, which then never came while the lock passed on."""
    process = FakeProcess(["work"], {}, grandchild_ignores_term=True)
    signals_when_written: list[list[int]] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            signals_when_written.append([signum for _, signum in process.signals])

    recorder = Recorder()
    logger = logging.getLogger("raft_trio.process_group")
    logger.addHandler(recorder)
    try:
        await stop_group(process, GRACE)
    finally:
        logger.removeHandler(recorder)
    assert not process.group_alive()
    assert signals_when_written and all(signal.SIGKILL in sent for sent in signals_when_written)


async def test_a_machine_suspended_between_the_sigterm_and_the_sigkill_kills_as_it_wakes(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No keep-alive answered: at the cutoff (4.0, the grace of 5 s before
    the lease's end) the command gets SIGTERM, and SIGKILL is due at the
    lease's end. The machine is suspended for a minute at 4.5: Trio's
    clock does not count it, so a SIGKILL 5 s on it would come 4.5 s after
    waking, with the lease long gone and the next holder running. It
    comes as the machine wakes (within a look, ``SUSPEND_CHECK_S``)."""
    from raft_trio.client import NoEndpointAnswered
    from raft_trio.client._session import SUSPEND_CHECK_S

    slept = [0.0]
    monkeypatch.setattr("raft_trio.client.suspend.machine_slept_s", lambda: slept[0])

    class Unreachable(OneHolderCluster):
        async def keep_alive(self, lease: str) -> schema.LeaseAnswer:
            raise NoEndpointAnswered([("http://127.0.0.1:1", "connection refused")])

    spawner = FakeSpawner(grandchild_ignores_term=True)
    holder = Holder(Unreachable(ttl=TTL), HoldSettings("lock", "job", TTL, 5.0, ["work"]), "table", spawner)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(holder.run)
        await trio.sleep(4.5)
        (process,) = spawner.processes
        assert [signum for _, signum in process.signals] == [signal.SIGTERM]
        slept[0] = 60.0  # suspended here, and woke
        woke = trio.current_time()
    assert process.death() - woke <= SUSPEND_CHECK_S, process.signals
