"""The watcher: one subscription to each node's ``/api/events``, merged into
the :class:`ClusterView` and published to the pages.

Every source URL gets a task in the watcher's nursery, under its own cancel
scope (a source that membership drops, or that turns out to duplicate
another, is cancelled alone). A source task subscribes, feeds every line
to the view, and on a stall or an end asks the node's ``/api/status``
whether it is still there. The node sends a keep-alive comment after every
second without events, so ``stall_after`` (1.25 s) of silence means the
node or the path to it is stuck; a status probe (``probe_timeout``, 0.5 s)
tells a stuck node (no answer: unreachable) from a merely broken stream
(answer: reconnect at once). A paused node is shown unreachable 1.75 s
(and the loop's next turn: 1.77 s measured) after the last thing it
sent, which is within a second of its missed heartbeat. A refused or dropped connection is shown at once.
Reconnects back off from ``backoff_min`` to ``backoff_max``.

The indexes come with the nodes' ``commit`` events (at most every 100 ms
while they move); nothing polls them. Every ``refresh`` seconds
(``REFRESH_RATE_MILLIS``) the watcher samples the view for the page's
chart (:mod:`raft_monitor._rates`) and publishes the sample.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable

import trio

from raft_trio.client.sse import SseComment, SseDropped, SseEvent

from ._client import NodeClient, NodeUnavailable
from ._hub import Hub
from ._rates import RateSampler
from ._state import UNREACHABLE, Changes, ClusterView, MalformedEvent, parse_event

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class WatchSettings:
    """Timings of the watcher, in seconds."""

    #: Silence on a stream before the node is probed; the node sends a
    #: keep-alive after 1 s without events, so this must exceed 1 s.
    stall_after: float = 1.25
    #: How long a probe of ``/api/status`` may take before the node counts
    #: as unreachable.
    probe_timeout: float = 0.5
    #: Period of the chart's samples (``REFRESH_RATE_MILLIS``).
    refresh: float = 0.5
    backoff_min: float = 0.1
    backoff_max: float = 2.0


class Watcher:
    def __init__(
        self,
        view: ClusterView,
        hub: Hub,
        client: NodeClient,
        settings: WatchSettings | None = None,
        clock: Callable[[], float] = trio.current_time,
        sampler: RateSampler | None = None,
    ) -> None:
        self.view = view
        self.hub = hub
        self.client = client
        self.settings = settings or WatchSettings()
        self.clock = clock
        self.sampler = sampler or RateSampler(view.wall_offset)
        self._nursery: trio.Nursery | None = None
        self._scopes: dict[str, trio.CancelScope] = {}
        self._pending: list[str] = []

    async def run(
        self, seeds: Iterable[str] = (), *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for url in seeds:
                self.add(url)
            for url in self._pending:
                self._start(url)
            self._pending.clear()
            nursery.start_soon(self._sample_loop)
            task_status.started()
            await trio.sleep_forever()

    # -- control -------------------------------------------------------------

    def add(self, url: str, *, seed: bool = True) -> None:
        """Watch ``url`` (from --nodes or DNS); a no-op if already watched."""
        self._act(self.view.add_source(url, self.clock(), seed=seed))

    def forget(self, url: str) -> None:
        """``url`` left DNS: its node goes once unreachable and not a member."""
        self._act(self.view.forget_source(url, self.clock()))

    def watching(self) -> list[str]:
        return sorted(self._scopes)

    # -- publishing ----------------------------------------------------------

    def _act(self, changes: Changes) -> None:
        if not changes:
            return
        now = self.clock()
        for key in changes.removed:
            self.hub.publish_event("removed", {"id": key})
        for key in changes.nodes:
            node = self.view.nodes.get(key)
            if node is not None:
                self.hub.publish_event("node", self.view.node_json(node, now))
        for entry in changes.timeline:
            self.hub.publish_event("timeline", self.view.entry_json(entry))
        for url in changes.unwatch:
            scope = self._scopes.pop(url, None)
            if scope is not None:
                log.info("%s: no longer watched", url)
                scope.cancel()
        for url in changes.watch:
            self._start(url)

    def _start(self, url: str) -> None:
        if self._nursery is None:
            self._pending.append(url)
            return
        scope = trio.CancelScope()
        self._scopes[url] = scope
        self._nursery.start_soon(self._source, url, scope, name=f"watch {url}")

    async def _source(self, url: str, scope: trio.CancelScope) -> None:
        log.info("%s: watching", url)
        with scope:
            await self._stream_loop(url)

    # -- the stream ----------------------------------------------------------

    async def _stream_loop(self, url: str) -> None:
        settings = self.settings
        delay = settings.backoff_min
        while True:
            heard, reason = await self._stream_once(url)
            if heard:
                delay = settings.backoff_min
            if heard and await self._probe(url):
                log.info("%s: stream ended (%s) but the node answers; reconnecting", url, reason)
            else:
                node = self.view.node_for(url)
                if node is not None and node.role != UNREACHABLE:
                    log.warning("%s: unreachable (%s)", url, reason)
                self._act(self.view.mark_unreachable(url, self.clock(), reason))
            await trio.sleep(delay)
            delay = min(delay * 2, settings.backoff_max)

    async def _stream_once(self, url: str) -> tuple[bool, str]:
        """One subscription; returns whether anything arrived, and why it ended."""
        heard = False
        try:
            async with self.client.stream(url) as items:
                while True:
                    with trio.move_on_after(self.settings.stall_after) as waited:
                        item = await anext(items, None)
                    if waited.cancelled_caught:
                        return heard, f"silent for {self.settings.stall_after:g} s"
                    if item is None:
                        return heard, "stream ended"
                    heard = True
                    self._on_item(url, item)
        except NodeUnavailable as error:
            return heard, str(error)
        except Exception as error:
            # Whatever one node sends, the others and the page go on.
            log.exception("%s: unexpected error on the event stream", url)
            return heard, f"error: {type(error).__name__}"

    def _on_item(self, url: str, item: SseEvent | SseComment | SseDropped) -> None:
        now = self.clock()
        if isinstance(item, SseEvent):
            try:
                report = parse_event(item.name, item.data)
            except MalformedEvent as error:
                log.warning("%s: malformed event skipped: %s", url, error)
                self._act(self.view.contact(url, now))
                return
            self._act(self.view.apply(url, report, now))
        elif isinstance(item, SseDropped):
            log.warning("%s: %s event of %d bytes skipped (too large)", url, item.name, item.size)
        elif isinstance(item, SseComment):
            self._act(self.view.contact(url, now))

    async def _probe(self, url: str) -> bool:
        with trio.move_on_after(self.settings.probe_timeout):
            try:
                await self.client.status(url)
            except NodeUnavailable as error:
                log.debug("%s: probe failed: %s", url, error)
                return False
            return True
        return False

    # -- the chart ---------------------------------------------------------

    async def _sample_loop(self) -> None:
        while True:
            await trio.sleep(self.settings.refresh)
            sample = self.sampler.sample(self.view, self.clock())
            self.hub.publish_event("sample", sample)
