"""The blocking client's ``held.lost`` is set the moment the lock is lost.

A holder that sees its key deleted releases its lease before
``LockLost`` comes out, and that revoke may wait out a leader election
(up to the TTL): a blocking block that checks ``held.lost`` between its
steps must not go on acting meanwhile, with the next waiter holding the
lock. The lock code is the real one; a fake cluster stands in for the
server, the test deciding when the key is deleted and when the revoke
is answered.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from raft_trio import schema
from raft_trio.client import LockLost
from raft_trio.client._held import hold_in_thread
from raft_trio.client._trio import TrioClient

LEASE = "00000000000000aa"
KEY = "job/" + LEASE


class SlowToReleaseCluster(TrioClient):
    """Grants the lock at once; deletes its key when ``delete`` is set;
    answers the revoke only once ``answer_revoke`` is set."""

    def __init__(self, delete: threading.Event, answer_revoke: threading.Event) -> None:
        super().__init__("http://127.0.0.1:1")
        self.key_deleted = delete
        self.answer_revoke = answer_revoke

    async def grant_lease(self, ttl: int, **_: Any) -> schema.LeaseAnswer:
        return schema.LeaseAnswer(LEASE, ttl)

    async def keep_alive(self, lease: str) -> schema.LeaseAnswer:
        return schema.LeaseAnswer(lease, 10)

    async def txn(self, *_: Any, **__: Any) -> schema.TxnAnswer:
        mine = schema.TxnResult(key=KEY, value="", index=5, create_revision=5, mod_revision=5, version=1)
        item = schema.RangeItem(KEY, 5, 5, 1, "", LEASE)
        return schema.TxnAnswer(
            True, [mine, schema.TxnResult(kvs=[item], count=1, more=False, revision=5)], 5
        )

    @contextlib.asynccontextmanager
    async def watch(self, *_: Any, **__: Any) -> AsyncIterator[Any]:
        async def events() -> AsyncIterator[schema.WatchEvent]:
            await trio.to_thread.run_sync(self.key_deleted.wait, abandon_on_cancel=True)
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
        await trio.to_thread.run_sync(self.answer_revoke.wait, abandon_on_cancel=True)
        return schema.LeaseRevokedAnswer(lease, [], 10)


def hold_until_lost(delete: threading.Event, answer_revoke: threading.Event, seen: list[bool]) -> None:
    """Holds the lock and has its key deleted; adds to ``seen`` whether
    ``held.lost`` was set while the revoke was still unanswered."""
    with hold_in_thread(lambda: SlowToReleaseCluster(delete, answer_revoke), "job", ttl=10) as held:
        assert not held.lost.is_set()
        delete.set()
        seen.append(held.lost.wait(5))
        answer_revoke.set()


def test_lost_is_set_before_the_release_is_answered() -> None:
    seen: list[bool] = []
    with pytest.raises(LockLost, match="its key was deleted"):
        hold_until_lost(threading.Event(), threading.Event(), seen)
    assert seen == [True], "held.lost waited for the release"


def test_lost_stays_clear_when_the_block_ends_with_the_lock_held() -> None:
    delete, answer_revoke = threading.Event(), threading.Event()
    answer_revoke.set()
    with hold_in_thread(lambda: SlowToReleaseCluster(delete, answer_revoke), "job", ttl=10) as held:
        pass
    assert not held.lost.is_set()
