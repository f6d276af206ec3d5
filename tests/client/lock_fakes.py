"""A fake cluster for lock tests: the real lock code runs against it, and
the test decides when the holder's key is deleted and when a revoke is
answered."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio

from raft_trio import schema
from raft_trio.client import TrioClient

LEASE = "00000000000000aa"
KEY = "job/" + LEASE


async def _never() -> None:
    await trio.sleep_forever()


async def _at_once() -> None:
    await trio.lowlevel.checkpoint()


class OneHolderCluster(TrioClient):
    """Grants the lock ``job`` at once (lease ``LEASE``, ``ttl`` or the one
    asked for); deletes its key once ``key_deleted`` returns; answers a
    revoke once ``revoke_answered`` returns."""

    def __init__(
        self,
        *,
        ttl: int | None = None,
        key_deleted: Callable[[], Awaitable[None]] = _never,
        revoke_answered: Callable[[], Awaitable[None]] = _at_once,
    ) -> None:
        super().__init__("http://127.0.0.1:1")
        self.ttl = ttl
        self.key_deleted = key_deleted
        self.revoke_answered = revoke_answered

    async def grant_lease(self, ttl: int, **_: Any) -> schema.LeaseAnswer:
        return schema.LeaseAnswer(LEASE, self.ttl or ttl)

    async def keep_alive(self, lease: str) -> schema.LeaseAnswer:
        return schema.LeaseAnswer(lease, self.ttl or 10)

    async def txn(self, *_: Any, **__: Any) -> schema.TxnAnswer:
        mine = schema.TxnResult(key=KEY, value="", index=5, create_revision=5, mod_revision=5, version=1)
        item = schema.RangeItem(KEY, 5, 5, 1, "", LEASE)
        return schema.TxnAnswer(
            True, [mine, schema.TxnResult(kvs=[item], count=1, more=False, revision=5)], 5
        )

    @contextlib.asynccontextmanager
    async def watch(self, *_: Any, **__: Any) -> AsyncIterator[Any]:
        async def events() -> AsyncIterator[schema.WatchEvent]:
            await self.key_deleted()
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
        await self.revoke_answered()
        return schema.LeaseRevokedAnswer(lease, [], 10)
