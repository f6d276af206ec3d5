"""A running node's eye on its disk, once a second.

- The data directory is still there: ``raft.db``, its WAL and the ``LOCK``
  file are the files the node has open (not removed with ``rm -rf``, not
  replaced by a copy). Each write checks ``raft.db`` itself; this catches
  an idle node too. If not, :class:`raft_trio.storage.DataDirVanished`
  ends the node (exit status 66): what it would write reaches no file a
  restart reads.
- Free space against the reserve (:class:`raft_trio.node.space.SpaceGuard`),
  and the metrics: free bytes, the reserve, the data directory's size.
- As leader: the other members' alarms, from their ``/api/status``, so that
  a member short of space stops new values everywhere (etcd's cluster-wide
  ``NOSPACE`` alarm) instead of filling up and stopping.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from .. import schema
from ..client import ClientError, TrioClient
from ..core import Membership
from ..storage import StorageError
from . import metrics
from .space import NOSPACE, SpaceGuard

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 1.0
STATUS_TIMEOUT_S = 1.0

#: Fetches a member's ``/api/status`` (None: no answer).
FetchStatus = Callable[[str], Awaitable[schema.Status | None]]


class WatchedStorage(Protocol):
    def check_present(self) -> None: ...

    def disk_usage(self) -> int: ...


class WatchedNode(Protocol):
    id: str

    @property
    def is_leader(self) -> bool: ...

    @property
    def membership(self) -> Membership: ...


def client_fetch_status(client: TrioClient) -> FetchStatus:
    """Each member's status through ``client`` (one of no endpoints, used
    ``.at()`` each member), within ``STATUS_TIMEOUT_S``."""

    async def fetch(url: str) -> schema.Status | None:
        try:
            return await client.at(url, timeout=STATUS_TIMEOUT_S).status()
        except ClientError:
            return None

    return fetch


async def watch(
    node: WatchedNode,
    storage: WatchedStorage,
    guard: SpaceGuard,
    fetch_status: FetchStatus,
    interval: float = WATCH_INTERVAL_S,
) -> None:
    """Run until cancelled; raises what :meth:`check_present` raises."""
    metrics.DISK_RESERVE_BYTES.set(guard.reserve)
    alarmed = False
    while True:
        try:
            storage.check_present()
        except StorageError as error:
            metrics.STORAGE_ERRORS.labels(type(error).__name__).inc()
            raise
        guard.refresh()
        metrics.DISK_FREE_BYTES.set(guard.free)
        metrics.DATA_DIR_BYTES.set(storage.disk_usage())
        metrics.SPACE_ALARM.set(1 if guard.alarm else 0)
        if guard.alarm != alarmed:
            alarmed = guard.alarm
            if alarmed:
                log.warning(
                    "NOSPACE alarm: %d bytes free on %s, below the %d needed (reserve %d); "
                    "new values are refused",
                    guard.free,
                    guard.path,
                    guard.needed(),
                    guard.reserve,
                )
            else:
                log.info("NOSPACE alarm cleared: %d bytes free on %s", guard.free, guard.path)
        if node.is_leader:
            guard.peer_alarms = await _peer_alarms(node, fetch_status, interval, guard.peer_alarms)
        else:
            guard.peer_alarms = {}
        await trio.sleep(interval)


async def _peer_alarms(
    node: WatchedNode, fetch_status: FetchStatus, within: float, known: dict[str, str]
) -> dict[str, str]:
    """Member id -> its alarm, for the members that report one. A member
    that does not answer keeps the alarm it last reported (one that ran out
    of space may have stopped); a member no longer in the configuration
    keeps none."""
    found: dict[str, str] = {}
    answered: set[str] = set()

    async def ask(member_id: str, url: str) -> None:
        status = await fetch_status(url)
        if status is None:
            return
        answered.add(member_id)
        if NOSPACE in status.alarms:
            found[member_id] = "NOSPACE alarm: free space below its reserve"

    others = {m.id: m.url for m in node.membership.members if m.id != node.id}
    with trio.move_on_after(within):
        async with trio.open_nursery() as nursery:
            for member_id, url in others.items():
                nursery.start_soon(ask, member_id, url)
    kept = {m: why for m, why in known.items() if m in others and m not in answered}
    return {**kept, **found}
