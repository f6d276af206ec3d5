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

import threading

import pytest
import trio

from raft_trio.client import LockLost
from raft_trio.client._held import hold_in_thread

from .lock_fakes import OneHolderCluster


def slow_to_release(delete: threading.Event, answer_revoke: threading.Event) -> OneHolderCluster:
    """Grants the lock at once; deletes its key when ``delete`` is set;
    answers the revoke only once ``answer_revoke`` is set."""

    async def deleted() -> None:
        await trio.to_thread.run_sync(delete.wait, abandon_on_cancel=True)

    async def answered() -> None:
        await trio.to_thread.run_sync(answer_revoke.wait, abandon_on_cancel=True)

    return OneHolderCluster(key_deleted=deleted, revoke_answered=answered)


def hold_until_lost(delete: threading.Event, answer_revoke: threading.Event, seen: list[bool]) -> None:
    """Holds the lock and has its key deleted; adds to ``seen`` whether
    ``held.lost`` was set while the revoke was still unanswered."""
    with hold_in_thread(lambda: slow_to_release(delete, answer_revoke), "job", ttl=10) as held:
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
    with hold_in_thread(lambda: slow_to_release(delete, answer_revoke), "job", ttl=10) as held:
        pass
    assert not held.lost.is_set()
