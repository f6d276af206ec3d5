"""Watches: every change to a key or under a prefix, in revision order,
from a chosen revision on, on any node.

A watcher holds no copy of the changes it has yet to send: it keeps only
its position (the next revision it needs) and reads from the store's
shared, bounded history (``raft_trio.kv.History``) when it is ready to
send more, at most ``batch`` changes at a time. So a slow watcher costs
the cluster no memory and no waiting; it costs itself its place: once
the history's floor passes its position the changes it needs are gone,
and it is told so (``WatchCompacted``, with the oldest revision still
held) and ends, as etcd's compacted watchers do. A node serves at most
``max_watchers`` at once.

The runtime calls ``notify()`` after it applied committed entries; every
waiting watcher wakes, takes what it needs from the history, and goes
back to waiting. A follower serves watches from its own applied state, so
a watcher on a follower sees each change once the follower applied it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import trio

from ..kv import Change, History, prefix_end

#: Watchers one node serves at once: a bound on the tasks woken per batch
#: of applied entries.
DEFAULT_MAX_WATCHERS = 1024
#: Changes a watcher takes from the history at a time.
DEFAULT_BATCH = 256


class WatchCompacted(Exception):
    """The changes from the requested revision on are no longer held."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(
            f"the changes from this revision on are no longer kept; the oldest available is {compact_revision}"
        )
        self.compact_revision = compact_revision


class TooManyWatchers(Exception):
    """This node already serves its most watchers."""


class WatchClosed(Exception):
    """The node stops."""


@dataclasses.dataclass(frozen=True)
class Selector:
    """The keys a watch follows: one key, or every key in ``[start, end)``
    (``end`` None: every key from ``start`` on)."""

    start: str
    end: str | None
    single: bool

    @classmethod
    def key(cls, key: str) -> Selector:
        return cls(key, None, True)

    @classmethod
    def prefix(cls, prefix: str) -> Selector:
        return cls(prefix, prefix_end(prefix), False)

    def matches(self, key: str) -> bool:
        if self.single:
            return key == self.start
        return self.start <= key and (self.end is None or key < self.end)


class Watcher:
    """One watch's position in the history. Not created directly: see
    ``WatchHub.open``."""

    def __init__(self, hub: WatchHub, selector: Selector, start_revision: int) -> None:
        self._hub = hub
        self.selector = selector
        #: The next revision this watcher needs.
        self.position = start_revision

    async def next_changes(self) -> list[Change]:
        """The next changes this watcher follows, in revision order (all
        changes of one revision come together); waits for them.
        Raises ``WatchCompacted`` once the history dropped changes it
        needs, and ``WatchClosed`` when the node stops."""
        hub = self._hub
        while True:
            if hub.closed:
                raise WatchClosed("the node is stopping")
            history = hub.history
            if self.position < history.floor:
                raise WatchCompacted(history.floor)
            scanned = history.since(self.position, limit=hub.batch)
            if not scanned:
                # Caught up. Nothing can be applied between the scan and the
                # wait (no checkpoint between them), so no change is missed.
                await hub.wait_for_changes()
                continue
            self.position = scanned[-1].revision + 1
            taken = [change for change in scanned if self.selector.matches(change.key)]
            if taken:
                return taken
            # A long backlog of other keys: scan on, letting others run.
            await trio.lowlevel.checkpoint()


class WatchHub:
    def __init__(
        self,
        history: History,
        revision: Callable[[], int],
        *,
        max_watchers: int = DEFAULT_MAX_WATCHERS,
        batch: int = DEFAULT_BATCH,
    ) -> None:
        self.history = history
        self.revision = revision
        self.max_watchers = max_watchers
        self.batch = batch
        self.closed = False
        self._changed = trio.Event()
        self._watchers: set[Watcher] = set()

    def __len__(self) -> int:
        return len(self._watchers)

    def open(self, selector: Selector, start_revision: int | None) -> Watcher:
        """A watcher from ``start_revision`` on (None: the next change)."""
        if self.closed:
            raise WatchClosed("the node is stopping")
        if len(self._watchers) >= self.max_watchers:
            raise TooManyWatchers(f"this node already serves {self.max_watchers} watchers")
        start = self.revision() + 1 if start_revision is None else start_revision
        if start < self.history.floor:
            raise WatchCompacted(self.history.floor)
        watcher = Watcher(self, selector, start)
        self._watchers.add(watcher)
        return watcher

    def release(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def notify(self) -> None:
        """New entries were applied: wake the watchers."""
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for_changes(self) -> None:
        await self._changed.wait()

    def close(self) -> None:
        """The node stops: every watcher's wait ends with ``WatchClosed``."""
        self.closed = True
        self.notify()
