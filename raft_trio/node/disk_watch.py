"""A running node's eye on its disk, once a second.

- The data directory is still there: ``raft.db``, its WAL and the ``LOCK``
  file are the files the node has open (not removed with ``rm -rf``, not
  replaced by a copy). Each write checks ``raft.db`` itself; this catches
  an idle node too. If not, :class:`raft_trio.storage.DataDirVanished`
  ends the node (exit status 66): what it would write reaches no file a
  restart reads.
- Free space against the reserve (:class:`raft_trio.node.space.SpaceGuard`),
  and the metrics: free bytes, the reserve, the data directory's size.
- This node's alarm, told to its peers on their streams as soon as it is
  raised or cleared (:meth:`raft_trio.node.RaftNode.report_changed`), so
  that a member short of space stops new values at the leader (etcd's
  cluster-wide ``NOSPACE`` alarm) instead of filling up and stopping. The
  peers' alarms arrive the same way; none is polled. Those of members no
  longer in the configuration are forgotten here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from ..core import Membership
from ..storage import StorageError
from . import metrics
from .space import SpaceGuard

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 1.0


class WatchedStorage(Protocol):
    def check_present(self) -> None: ...

    def disk_usage(self) -> int: ...


class WatchedNode(Protocol):
    @property
    def membership(self) -> Membership: ...

    def report_changed(self) -> None: ...


async def watch(
    node: WatchedNode,
    storage: WatchedStorage,
    guard: SpaceGuard,
    interval: float = WATCH_INTERVAL_S,
    sleep: Callable[[float], Awaitable[None]] = trio.sleep,
) -> None:
    """Run until cancelled; raises what :meth:`check_present` raises."""
    metrics.DISK_RESERVE_BYTES.set(guard.reserve)
    while True:
        try:
            storage.check_present()
        except StorageError as error:
            metrics.STORAGE_ERRORS.labels(type(error).__name__).inc()
            raise
        guard.refresh()
        metrics.DISK_FREE_BYTES.set(guard.free)
        metrics.DATA_DIR_BYTES.set(storage.disk_usage())
        tell_if_changed(node, guard)
        if guard.peer_alarms:
            guard.keep_members({m.id for m in node.membership.members})
        await sleep(interval)


def tell_if_changed(node: WatchedNode, guard: SpaceGuard) -> None:
    """If this node's alarm was raised or cleared since it was last told
    (by this watch, or by the node after a large write: see
    :meth:`SpaceGuard.wrote`), tell the peers, the metrics and the log."""
    if guard.alarm == guard.told:
        return
    guard.told = guard.alarm
    metrics.SPACE_ALARM.set(1 if guard.alarm else 0)
    metrics.DISK_FREE_BYTES.set(guard.free)
    node.report_changed()
    if guard.alarm:
        log.warning(
            "NOSPACE alarm: %d bytes free on %s, below the %d needed (reserve %d); new values are refused",
            guard.free,
            guard.path,
            guard.needed(),
            guard.reserve,
        )
    else:
        log.info("NOSPACE alarm cleared: %d bytes free on %s", guard.free, guard.path)
