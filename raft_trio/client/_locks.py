"""Locks and elections for Trio: the recipe of :mod:`._contention` with
I/O, on a :class:`~._trio.TrioClient` (whose ``lock``, ``campaign``,
``leader`` and ``observe`` are these).

A holder stands on a :class:`~._session.Session` (a lease it keeps alive)
and holds until it leaves the block, or until the lock is lost: the
session can no longer vouch for the lease (refused, or no keep-alive
answered ``margin`` seconds before the lease could run out), or the
holder's key was deleted (seen on a watch of it). Then the block is
cancelled and :class:`~._errors.LockLost` raised. A waiter that loses its
lease before it gets the lock simply gets in line again with a new one.
Leaving releases the lock at once: the lease is revoked, which deletes
the key, and the next waiter's watch sees it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import TYPE_CHECKING

import trio

from .. import schema
from ._contention import (
    Contender,
    Gone,
    Holds,
    Leader,
    acquire_txn,
    contenders,
    in_line,
    is_waiter,
    leader_of,
    place,
    prefix_of,
    waiter_key,
)
from ._errors import ClientError, Compacted, LeaseNotFound, LockLost
from ._session import Session, sending

if TYPE_CHECKING:
    from ._trio import TrioClient

#: Pause after a failed watch of the holder's own key before the next.
WATCH_RETRY_S = 0.5


@dataclasses.dataclass(frozen=True)
class Holding:
    """A lock held: its ``name``, the holder's ``key``, its fencing
    ``token`` and the ``session`` (lease) it stands on."""

    name: str
    key: str
    token: int
    session: Session


class Leadership:
    """An election won: ``token`` (the fencing token), ``key`` and
    ``value`` (the proposal, which :meth:`proclaim` changes)."""

    def __init__(self, client: TrioClient, holding: Holding, value: str) -> None:
        self._client = client
        self.name = holding.name
        self.key = holding.key
        self.token = holding.token
        self.lease = holding.session.id
        self.value = value
        self._session = holding.session

    @property
    def safe_until(self) -> float:
        """Until when (on Trio's clock) nobody else can lead: the lease's
        certain life, or the moment the cluster said it is gone."""
        return self._session.safe_until

    async def proclaim(self, value: str) -> None:
        """Announce a new value while leading (observers see it); raises
        :class:`LockLost` if this leadership is already gone."""
        answer = await self._client.txn(
            [schema.Compare(self.key, "create_revision", "=", self.token)],
            [schema.Op.of_put(self.key, value, self.lease)],
        )
        if not answer.succeeded:
            raise LockLost(self.name, self.token, "its key was deleted")
        self.value = value


async def waiters(client: TrioClient, prefix: str) -> tuple[list[Contender], int]:
    """Every waiter under ``prefix`` (linearizable, page by page) and the
    revision of the first page (no waiter seen was deleted before it)."""
    items = []
    revision: int | None = None
    after: str | None = None
    while True:
        page = await client.range(prefix=prefix, after=after)
        revision = page.revision if revision is None else revision
        items.extend(page.kvs)
        if not page.more or not page.kvs:
            return contenders(prefix, items), revision
        after = page.kvs[-1].key


async def deleted(client: TrioClient, key: str, revision: int) -> None:
    """Until ``key``, there at ``revision``, is deleted (or the history no
    longer reaches back to it: then look again)."""
    with contextlib.suppress(Compacted):
        async with client.watch(key, start_revision=revision + 1) as changes:
            async for change in changes:
                if change.kind == "delete":
                    return


async def acquire(client: TrioClient, prefix: str, session: Session, value: str) -> int | None:
    """Get in line and wait for the turn: the fencing token, or None when
    the waiter's key is gone meanwhile."""
    key = waiter_key(prefix, session.id)
    try:
        answer = await client.txn(*acquire_txn(prefix, key, value, session.id))
    except LeaseNotFound:
        return None
    line = in_line(prefix, answer)
    token, waiting, revision = line.create_revision, line.waiting, line.revision
    if not line.complete:
        waiting, revision = await waiters(client, prefix)
    while True:
        where = place(key, token, waiting, revision)
        if isinstance(where, Holds):
            return token
        if isinstance(where, Gone):
            return None
        await deleted(client, where.key, where.revision)
        waiting, revision = await waiters(client, prefix)


async def key_deleted(client: TrioClient, key: str, token: int) -> str:
    """Until the holder's own key is deleted; why it is gone."""
    start = token + 1
    while True:
        try:
            async with client.watch(key, start_revision=start) as changes:
                async for change in changes:
                    if change.kind == "delete":
                        return "its key was deleted"
                    start = change.revision + 1
        except Compacted:
            try:
                page = await client.range(start=key, end=key + "\0")
            except ClientError:
                await trio.sleep(WATCH_RETRY_S)
                continue
            if not any(item.key == key and item.create_revision == token for item in page.kvs):
                return "its key was deleted"
            start = page.revision + 1
        except ClientError:
            # The session decides whether the cluster was away too long.
            await trio.sleep(WATCH_RETRY_S)


@contextlib.contextmanager
def single_error() -> Iterator[None]:
    """Let the one exception inside (nested) exception groups out as
    itself. A holder's nursery runs helpers of its own beside the caller's
    block; what the block raises (or what ended the wait) is what the
    caller should see, not a group of one. A group of nothing but
    ``trio.Cancelled`` (the caller's scope cancelled while several tasks
    waited) comes out as its first: one cancellation, as a call without
    helpers raises, so that ``except trio.Cancelled`` around it runs."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) != 1 and not all(isinstance(leaf, trio.Cancelled) for leaf in leaves):
            raise
        raise leaves[0] from leaves[0].__cause__


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for inner in group.exceptions:
        found.extend(_leaves(inner) if isinstance(inner, BaseExceptionGroup) else [inner])
    return found


@contextlib.asynccontextmanager
async def hold(client: TrioClient, name: str, value: str, ttl: int, margin: float) -> AsyncIterator[Holding]:
    """Wait for the lock ``name`` and hold it while the block runs (see the
    module's rules)."""
    prefix = prefix_of(name)
    if not 0 <= margin < ttl:
        raise ValueError(f"the margin ({margin} s) must be at least 0 and less than the TTL ({ttl} s)")
    with single_error():
        async with _held(client, name, prefix, value, ttl, margin) as holding:
            yield holding


@contextlib.asynccontextmanager
async def _held(
    client: TrioClient, name: str, prefix: str, value: str, ttl: int, margin: float
) -> AsyncIterator[Holding]:
    while True:
        sent, slept = sending()
        session = Session.granted(await client.grant_lease(ttl), sent, margin, slept)
        lost: str | None = None
        #: Whether the cluster may still hold the lease: revoke it on leaving.
        release = True
        holding: Holding | None = None
        try:
            async with trio.open_nursery() as nursery:

                def lose(reason: str, reachable: bool) -> None:
                    nonlocal lost, release
                    if lost is None and release:
                        lost, release = reason, reachable
                        nursery.cancel_scope.cancel()

                async def keep(session: Session) -> None:
                    # Refused: nothing to revoke; unanswered: nobody to ask.
                    lose(await session.keep(client.keep_alive), reachable=False)

                async def watch_key(key: str, token: int, session: Session) -> None:
                    reason = await key_deleted(client, key, token)
                    session.taken_at = trio.current_time()  # the next waiter may hold it now
                    lose(reason, reachable=True)

                nursery.start_soon(keep, session)
                token = await acquire(client, prefix, session, value)
                if token is None:
                    lose("its key was deleted while it waited", reachable=True)
                else:
                    holding = Holding(name, waiter_key(prefix, session.id), token, session)
                    nursery.start_soon(watch_key, holding.key, token, session)
                    yield holding
                    # Released before the helpers stop, so that the next
                    # waiter need not wait for them; what they see of the
                    # release from now on is no loss.
                    release = False
                    await _revoke(client, session)
                    nursery.cancel_scope.cancel()
        finally:
            if release:
                await _revoke(client, session)
        if lost is None:
            return
        if holding is None:
            continue  # lost while waiting: get in line again with a new lease
        raise LockLost(name, holding.token, lost)


async def _revoke(client: TrioClient, session: Session) -> None:
    """Release: revoke the lease (which deletes the key). Shielded, and
    bounded: a cluster that does not answer lets the lease run out."""
    with (
        trio.CancelScope(shield=True),
        trio.move_on_after(min(client.settings.timeout, session.ttl)),
        contextlib.suppress(ClientError),
    ):
        await client.revoke_lease(session.id)


async def leader(client: TrioClient, name: str) -> Leader | None:
    waiting, _ = await waiters(client, prefix_of(name))
    return leader_of(name, waiting)


@contextlib.asynccontextmanager
async def observe(client: TrioClient, name: str) -> AsyncIterator[AsyncIterator[Leader | None]]:
    changes = _leaders(client, name)
    try:
        yield changes
    finally:
        await changes.aclose()


async def _leaders(client: TrioClient, name: str) -> AsyncGenerator[Leader | None, None]:
    """The leader now (None: nobody holds it), then each change of it."""
    prefix = prefix_of(name)
    last: Leader | str | None = "nothing yet"
    while True:
        waiting, revision = await waiters(client, prefix)
        by_key = {contender.key: contender for contender in waiting}
        current = leader_of(name, waiting)
        if current != last:
            yield current
            last = current
        try:
            async with client.watch(prefix=prefix, start_revision=revision + 1) as changes:
                async for event in changes:
                    change = event.change
                    if not is_waiter(prefix, change.key):
                        continue
                    if event.kind == "delete":
                        by_key.pop(change.key, None)
                    else:
                        lease = change.lease if isinstance(change.lease, str) else None
                        value = change.value if isinstance(change.value, str) else ""
                        by_key[change.key] = Contender(change.key, value, change.create_revision, lease)
                    ordered = sorted(by_key.values(), key=lambda contender: contender.create_revision)
                    current = leader_of(name, ordered)
                    if current != last:
                        yield current
                        last = current
        except Compacted:
            continue  # read the waiters again, and watch from there
