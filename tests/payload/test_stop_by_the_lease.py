"""``raft-trio lock`` ends its command by the time another may hold the
lock: the grace between SIGTERM and SIGKILL is cut to what is left of the
lease, and is none once the lease has run out (the holder was paused:
Ctrl-Z, SIGSTOP, a long stall) or the cluster said the lock is gone (its
key deleted, the lease refused). A review found the full --grace given in
both cases. Fake cluster and fake processes, Trio's fake clock."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import trio
import trio.testing

from raft_trio import schema
from raft_trio.cli.holding import Holder
from raft_trio.cli.lock import HoldSettings
from raft_trio.client import TrioClient
from raft_trio.testing.waiting import wait_for
from tests.payload.fakes import FakeSpawner

LEASE = "00000000000000aa"
KEY = "job/" + LEASE
TTL = 9
GRACE = 2.0


class OneHolderCluster(TrioClient):
    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:1")
        self.granted_at: float | None = None
        self.key_deleted = trio.Event()

    async def grant_lease(self, ttl: int, **_: Any) -> schema.LeaseAnswer:
        self.granted_at = trio.current_time()
        return schema.LeaseAnswer(LEASE, TTL)

    async def keep_alive(self, lease: str) -> schema.LeaseAnswer:
        return schema.LeaseAnswer(lease, TTL)

    async def txn(self, *_: Any, **__: Any) -> schema.TxnAnswer:
        mine = schema.TxnResult(key=KEY, value="", index=5, create_revision=5, mod_revision=5, version=1)
        item = schema.RangeItem(KEY, 5, 5, 1, "", LEASE)
        return schema.TxnAnswer(
            True, [mine, schema.TxnResult(kvs=[item], count=1, more=False, revision=5)], 5
        )

    @contextlib.asynccontextmanager
    async def watch(self, *_: Any, **__: Any) -> AsyncIterator[Any]:
        async def events() -> AsyncIterator[schema.WatchEvent]:
            await self.key_deleted.wait()
            yield schema.WatchEvent(
                "delete", schema.WatchChange(key=KEY, create_revision=0, mod_revision=9, version=0)
            )
            await trio.sleep_forever()

        stream = events()
        try:
            yield stream
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    async def revoke_lease(self, lease: str, **_: Any) -> schema.LeaseRevokedAnswer:
        return schema.LeaseRevokedAnswer(lease, [], 10)


async def test_a_holder_resumed_past_its_lease_kills_the_command_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    spawner = FakeSpawner(grandchild_ignores_term=True)
    holder = Holder(OneHolderCluster(), HoldSettings("lock", "job", TTL, GRACE, ["work"]), "table", spawner)
    result: list[int] = []

    async def run() -> None:
        result.append(await holder.run())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await wait_for(lambda: bool(spawner.processes))
        await trio.sleep(1)
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
    cluster = OneHolderCluster()
    holder = Holder(cluster, HoldSettings("lock", "job", TTL, GRACE, ["work"]), "table", spawner)
    result: list[int] = []

    async def run() -> None:
        result.append(await holder.run())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await wait_for(lambda: bool(spawner.processes))
        await trio.sleep(1)
        deleted = trio.current_time()
        cluster.key_deleted.set()
    (process,) = spawner.processes
    assert result == [1]
    assert process.death() - deleted < 0.1, process.signals
