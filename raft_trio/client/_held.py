"""The blocking client's lock: :meth:`TrioClient.lock` run in a thread of
its own (its own Trio run and connections), so that both clients hold
locks by the same code.

A blocking block cannot be cancelled from outside: when the lock is lost
while it runs, :attr:`HeldLock.lost` is set at once (for a block that
checks) and :class:`~._errors.LockLost` is raised as the block ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import trio

from ._errors import ClientError, LockLost
from ._locks import single_error
from ._trio import TrioClient


@dataclasses.dataclass(frozen=True)
class HeldLock:
    """A lock the blocking client holds: its fencing ``token``, and
    ``lost``, set once the lock is lost."""

    name: str
    token: int
    lost: threading.Event


@contextlib.contextmanager
def hold_in_thread(make_client: Callable[[], TrioClient], name: str, **options: Any) -> Iterator[HeldLock]:
    """Wait for the lock ``name`` (``options`` as :meth:`TrioClient.lock`
    takes them) and hold it until the block ends."""
    acquired: queue.Queue[int | None] = queue.Queue()
    done = threading.Event()
    lost = threading.Event()
    errors: list[BaseException] = []

    async def hold() -> None:
        async with trio.open_nursery() as nursery:

            async def until_done() -> None:
                await trio.to_thread.run_sync(done.wait, abandon_on_cancel=True)
                nursery.cancel_scope.cancel()  # released (or given up) on the way out

            nursery.start_soon(until_done)
            async with make_client() as client, client.lock(name, **options) as token:
                acquired.put(token)
                try:
                    await trio.sleep_forever()
                finally:
                    if not done.is_set():
                        # Cancelled by the lock itself: lost. Said now, not
                        # once its release (a revoke that may wait out an
                        # election) has ended and LockLost comes out.
                        lost.set()

    def run() -> None:
        try:
            with single_error():
                trio.run(hold)
        except LockLost as error:
            lost.set()
            errors.append(error)
        except BaseException as error:  # handed over to the caller's thread
            errors.append(error)
        finally:
            acquired.put(None)

    thread = threading.Thread(target=run, name=f"raft-trio lock {name}", daemon=True)
    thread.start()
    try:
        token = acquired.get()
        if token is None:
            raise errors[0] if errors else ClientError(f"the lock {name!r} was not acquired")
        yield HeldLock(name, token, lost)
    finally:
        done.set()
        thread.join()
    if errors:
        raise errors[0]
