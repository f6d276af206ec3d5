"""The composition root: one node process wired from the layers below it
(storage recovery, the runtime, the HTTP server, the payload supervisor and
joining a cluster, all in one nursery); SIGTERM or Ctrl-C stops it cleanly.

:func:`run_node` is the node inside a Trio run of the caller's (tests and
benches run it in their own process); :func:`run_node_process` is the whole
process (``raft-trio node``), with the process-wide settings a node needs.

With DNS discovery (``settings.discovery``) a node whose data directory is
new first waits for its cluster (:class:`raft_trio.discovery.Bootstrap`),
then starts with the configuration that decided, or empty to join; the
leader keeps the membership in step with the service's replicas
(:func:`raft_trio.discovery.manage_membership`)."""

from __future__ import annotations

import dataclasses
import gc
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import msgspec
import trio
from quart_trio import QuartTrio

from . import discovery, schema
from .asgi import bind_listener, serve_app
from .client import TrioClient
from .core import HardState, Member, Membership, RaftError, Snapshot, SnapshotMeta
from .http.app import HttpSettings, create_app, front_door, upgrades
from .node import disk_watch, first_start
from .node.disk import DiskWriter
from .node.payload import PayloadSupervisor
from .node.runtime import NotLeaderError, RaftNode, Timing
from .node.space import SpaceGuard
from .security import Security
from .storage import RESTORED_TERM, DurableStorage, PeerNoncesFile, SnapshotPolicy, restored_and_never_ran

log = logging.getLogger(__name__)

#: How long CPython lets one thread run before handing the GIL to another
#: that asks for it (default 5 ms). The disk-writer thread gives the GIL
#: back around every SQLite call of a write (begin, insert, commit...), and
#: while the event loop is busy each time it wants it back it waited up
#: to the full interval: a 0.25 ms fsync took 10-20 ms. A short interval
#: lets the writer finish almost as fast as the disk allows.
GIL_SWITCH_INTERVAL_S = 0.0002

#: The cyclic garbage collector's thresholds (CPython's default: 700, 10,
#: 10). Every write leaves a few objects alive for a while (its log entry
#: until the next snapshot, among others), and with the default a
#: leader under 64 writers ran a young collection every few milliseconds
#: and a full one, over 110,000 objects for 60-105 ms, about once a
#: second: 17 % of its CPU (gc.callbacks, 12 s). With young collections
#: every 10,000 objects that is under 2 %, and the longest pause is a
#: young one of 13-15 ms (one middle-aged collection of 63 ms in that
#: window) instead of the full ones. Few objects end in cycles here (a
#: few hundred a second): what waits longer to be found costs little
#: memory.
GC_THRESHOLDS = (10_000, 20, 10)


@dataclasses.dataclass(frozen=True)
class NodeSettings:
    node_id: str
    listen_host: str
    listen_port: int
    data_dir: str
    #: Static initial membership, id -> URL (used only by a new data dir).
    peers: dict[str, str]
    #: How the others reach this node (its entry in ``peers``, or --advertise).
    url: str
    join: str | None = None
    timing: Timing = dataclasses.field(default_factory=Timing)
    http: HttpSettings = dataclasses.field(default_factory=HttpSettings)
    root_path: str = ""
    leader_script: str | None = None
    follower_script: str | None = None
    snapshot_entries: int = 10_000
    #: Names the cluster (etcd's --initial-cluster-token): recorded in a new
    #: data directory, and a directory recorded for another cluster is
    #: refused. None: no check.
    cluster_id: str | None = None
    #: Find the cluster by DNS instead of ``peers`` / ``join``.
    discovery: discovery.DiscoverySettings | None = None
    #: Cluster secret, admin token and TLS (default: none of them).
    security: Security = dataclasses.field(default_factory=Security)
    #: Record ``cluster_id`` in a data directory that has none (made
    #: without --cluster-id); without it such a directory is refused.
    adopt_data_dir: bool = False
    #: The operator says this member never ran: a new data directory the
    #: cluster lists as a voter that has not started starts without
    #: waiting for every voter to answer (node/first_start.py).
    never_ran: bool = False
    #: Free bytes kept in reserve on the data directory's file system
    #: (None: the smaller of 256 MiB and a tenth of it; see node/space.py).
    disk_reserve_bytes: int | None = None


def run_node_process(settings: NodeSettings) -> None:
    """Run one node as the whole of this process until SIGTERM or Ctrl-C.

    The GIL switch interval and the garbage collector are process-wide
    state, so they are set here, at the process's start, and not by
    :func:`run_node`, which also runs inside processes of others (tests,
    benches)."""
    tune_process()
    trio.run(run_node, settings)


def tune_process() -> None:
    """The process-wide settings a node runs with (``bench/front_door.py``
    runs its do-nothing server with them too): the GIL switch interval,
    the garbage collector's thresholds, and what the imports made (about
    75,000 objects: modules, classes, functions, none of them garbage)
    collected once and frozen out of every later collection."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    gc.set_threshold(*GC_THRESHOLDS)
    gc.collect()
    gc.freeze()


async def run_node(
    settings: NodeSettings, *, task_status: trio.TaskStatus[RaftNode] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the node until it is told to stop. With discovery, a node that
    finds it was removed from its cluster moves its data aside and starts
    over as a new member, under the same id (see ``_serve``).

    The port is bound first, before the data directory is opened (or
    created): a node that cannot serve fails with
    :class:`~raft_trio.asgi.CannotServe` having touched nothing, and the port stays this process's between its
    servers (the waiting page, then the API)."""
    with bind_listener(settings.listen_host, settings.listen_port) as listener:
        while await _serve(settings, listener, task_status):
            task_status = trio.TASK_STATUS_IGNORED
            kept = await trio.to_thread.run_sync(discovery.retire_data_dir, settings.data_dir)
            log.warning("the data of the removed member is kept in %s; joining again as a new member", kept)


async def _serve(
    settings: NodeSettings, listener: socket.socket, task_status: trio.TaskStatus[RaftNode]
) -> bool:
    """One life of the node; True if it ended because the cluster removed
    it (a replica scaled away, then back). Reusing the id is safe then:
    the removal is committed, the old log is set aside before the new one
    starts (in this process, so no message of the old life is still on its
    way), and the new member votes only once it has been added again, with
    the cluster's current term."""
    known_peers: dict[str, str] = {}
    if settings.discovery is not None:
        storage = await _open_discovered(settings, settings.discovery, listener)
        if storage is None:
            log.info("stopped before the cluster formed")
            return False
    else:
        opened = await _open_static(settings, listener)
        if opened is None:
            log.info("stopped before the first-start check decided")
            return False
        storage, known_peers = opened
    writer = DiskWriter(f"raft-disk-{settings.node_id}")
    node: RaftNode | None = None
    try:
        space = SpaceGuard(storage.path, settings.disk_reserve_bytes)
        node = RaftNode(
            settings.node_id,
            settings.url,
            storage,
            settings.timing,
            run_disk=writer,
            run_short_write=writer.short,
            security=settings.security,
            cluster_id=storage.data_dir.meta.cluster_id,
            space=space,
            peer_nonces=PeerNoncesFile(storage.data_dir.path),
        )
        if known_peers:
            node.add_known_peers(known_peers)  # a learner that starts empty
        elif settings.peers and node.membership != Membership.of(settings.peers):
            log.info("data dir already holds a cluster; --peers is ignored")
        payload = PayloadSupervisor(settings.leader_script, settings.follower_script, settings.node_id)
        payload.starting_as(node.role_name, node.term, node.leader_url())
        node.on_role_change(lambda *_: payload.role_changed(node.role_name, node.term, node.leader_url()))
        app = create_app(node, settings.http)
        stop = StopRequest()
        removed: list[str] = []

        def on_removed(reason: str) -> None:
            log.warning("this node was removed from the cluster: %s", reason)
            removed.append(reason)
            stop.event.set()

        # The signals stay the node's, and are taken (``watching``), until
        # its nursery is done, payload scripts included: a second SIGTERM
        # while the stop went on took the default action, killing the node
        # and leaving its leader script running (in a session of its own)
        # for ever. One left pending would be redelivered as the receiver
        # closes, with the same effect.
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as watching:
                watching.start_soon(_stop_on_signals, stop, signals)
                await _run_until_stopped(
                    settings, node, storage, space, payload, app, listener, stop, on_removed, task_status
                )
                watching.cancel_scope.cancel()
    finally:
        # The commit index it knows, for the next start to hold its log to:
        # as far as it holds for the entries on disk (a review found the
        # core's own commit could rest on entries not yet written, which
        # replaced conflicting ones the disk still had).
        commit = node.core.durable_commit() if node is not None else None
        with trio.CancelScope(shield=True):
            await writer(partial(storage.close, commit))
        writer.stop()
    log.info("stopped")
    return bool(removed)


async def _run_until_stopped(
    settings: NodeSettings,
    node: RaftNode,
    storage: DurableStorage,
    space: SpaceGuard,
    payload: PayloadSupervisor,
    app: QuartTrio,
    listener: socket.socket,
    stop: StopRequest,
    on_removed: Callable[[str], None],
    task_status: trio.TaskStatus[RaftNode],
) -> None:
    """The node with its disk watch, payload scripts, joining or discovery
    and HTTP server, until ``stop``; then the orderly stop: leadership
    handed over (unless fast), the requests taken answered, the server's
    responses under way sent."""
    http_shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        nursery.start_soon(
            disk_watch.watch, node, storage, space, disk_watch.WATCH_INTERVAL_S, node.wakeups.sleep
        )
        nursery.start_soon(payload.run)
        if settings.join and not node.membership.members:
            nursery.start_soon(_join, settings.join, node, settings.http.api_prefix)
        if settings.discovery is not None:
            resolver = settings.discovery.resolver()
            if not node.membership.members:
                nursery.start_soon(discovery.join_discovered, node, settings.discovery, resolver)
            nursery.start_soon(discovery.manage_membership, node, settings.discovery, resolver, on_removed)
        async with trio.open_nursery() as http:
            addresses = await http.start(
                _serving(
                    app,
                    settings,
                    listener,
                    http_shutdown,
                    upgrades=upgrades(app, settings.root_path),
                    front=front_door(app),
                )
            )
            log.info("node %s serving on %s as %s", settings.node_id, ", ".join(addresses), settings.url)
            task_status.started(node)
            await stop.event.wait()
            log.info("stopping%s", " fast (SIGINT): no leadership hand-over" if stop.fast else "")
            node.begin_stop()
            payload.stopping()
            if not stop.fast:
                await _hand_over_leadership(node)
            # Answer the requests already taken before stopping: writes
            # that were in flight at a leader that handed over commit
            # under the new leader, and this node still hears it (peer
            # messages are served until the end). In a fast stop the
            # others are likely stopping too: a second at most.
            drain_bound = FAST_DRAIN_SECONDS if stop.fast else node.write_timeout + 1.0
            if not await node.drain(drain_bound):
                log.warning("requests still waiting after %.1f s; stopping anyway", drain_bound)
            node.close()
            # Hypercorn stops accepting, then gives the responses under
            # way its graceful timeout to go out.
            http_shutdown.set()
        nursery.cancel_scope.cancel()


async def _open_storage(
    settings: NodeSettings, initial: Membership | None, hard_state: HardState | None = None
) -> DurableStorage:
    """The node's storage; a new directory takes ``initial`` and
    ``hard_state`` together."""
    return await trio.to_thread.run_sync(
        partial(
            DurableStorage.open,
            settings.data_dir,
            settings.node_id,
            settings.cluster_id,
            initial_snapshot=Snapshot(SnapshotMeta(0, 0, initial)) if initial is not None else None,
            policy=SnapshotPolicy(max_entries=settings.snapshot_entries),
            adopt=settings.adopt_data_dir,
            initial_hard_state=hard_state,
        )
    )


async def _open_static(
    settings: NodeSettings, listener: socket.socket
) -> tuple[DurableStorage, dict[str, str]] | None:
    """The storage of a node started with ``--peers`` or ``--join``, and
    the members' addresses when it starts empty as a learner. A new data
    directory first asks the cluster whether this member has started
    before (:mod:`raft_trio.node.first_start`), serving a waiting page
    meanwhile. None if the node was stopped while it waited."""
    initial = Membership.of(settings.peers) if settings.peers else None
    others = {i: url for i, url in settings.peers.items() if i != settings.node_id}
    voters = list(settings.peers)
    if not settings.peers and settings.join:
        others, voters = {"join": settings.join.rstrip("/")}, []
    if not others:
        return await _open_storage(settings, initial), {}
    storage = await _open_storage(settings, None)
    restored = restored_and_never_ran(storage)  # possibly a second restore of a member that ran
    if not restored and not _is_new(storage):
        return storage, {}
    await trio.to_thread.run_sync(storage.close)
    status = first_start.waiting_status(settings.node_id, others)
    api_prefix = settings.http.api_prefix

    async def ask() -> first_start.Decision:
        async with TrioClient(
            (),
            api_prefix=api_prefix,
            security=settings.security,
            authorization=settings.security.node_authorization(settings.node_id),
        ) as client:
            fetch = first_start.client_fetch_status(client)
            return await first_start.check(
                settings.node_id,
                others,
                voters,
                fetch,
                never_ran=settings.never_ran,
                fresh_term=RESTORED_TERM if restored else 0,
            )

    decision = await _serve_waiting_page(settings, listener, lambda: status, ask)
    if decision is None:
        return None
    if restored:
        storage = await _open_storage(settings, None)
        held = storage.hard_state()
        if decision.term_floor > held.term:
            counted = msgspec.structs.replace(held, term=decision.term_floor, vote=settings.node_id)
            await trio.to_thread.run_sync(storage.set_hard_state, counted)
        return storage, {}
    if decision.action == "bootstrap":
        # What it may have voted before its directory was lost is at most
        # this term: the term is counted as voted, for itself.
        floor = HardState(decision.term_floor, settings.node_id) if decision.term_floor else None
        return await _open_storage(settings, initial, floor), {}
    return await _open_storage(settings, None), decision.peers


def _serving(
    app: Any, settings: NodeSettings, listener: socket.socket, shutdown: trio.Event, **extra: Any
) -> Callable[..., Awaitable[None]]:
    """``serve_app`` of ``app`` on the node's listener, with its address,
    root path and TLS: the node's app and the waiting page before it are
    served alike. ``extra``: serve_app's keywords besides."""
    return partial(
        serve_app,
        app,
        settings.listen_host,
        settings.listen_port,
        shutdown,
        settings.root_path,
        tls=settings.security,
        listener=listener,
        **extra,
    )


async def _serve_waiting_page(
    settings: NodeSettings,
    listener: socket.socket,
    status: Callable[[], schema.Status],
    work: Callable[[], Awaitable[first_start.Decision]],
) -> first_start.Decision | None:
    """Serve ``discovery.WaitingApp`` on the node's port while ``work``
    runs; its result, or None if a signal stopped the node first."""
    decided: list[first_start.Decision] = []
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_cancel_on_signal, nursery.cancel_scope)
        app = discovery.WaitingApp(status, settings.http.api_prefix)
        await nursery.start(_serving(app, settings, listener, shutdown))
        decided.append(await work())
        shutdown.set()
        nursery.cancel_scope.cancel()
    return decided[0] if decided else None


def _is_new(storage: DurableStorage) -> bool:
    """Nothing was ever written: no configuration, no entry, no vote."""
    snapshot = storage.snapshot().meta
    return (
        not snapshot.membership.members
        and snapshot.index == 0
        and storage.last_index() == 0
        and storage.hard_state() == HardState()
    )


async def _open_discovered(
    settings: NodeSettings, found: discovery.DiscoverySettings, listener: socket.socket
) -> DurableStorage | None:
    """The storage of a node started with ``--discover``: as it is when it
    holds a configuration (a restart); else after the bootstrap decided.
    None if the node was stopped while it waited."""
    storage = await _open_storage(settings, None)
    if not _is_new(storage):
        log.info("data dir in use: restarting as %s", settings.node_id)
        return storage
    await trio.to_thread.run_sync(storage.close)
    bootstrap = discovery.Bootstrap(
        settings.node_id, settings.url, settings.data_dir, found, cluster_id=settings.cluster_id
    )
    decided: list[discovery.Decision] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_cancel_on_signal, nursery.cancel_scope)
        decided.append(
            await bootstrap.serve_and_decide(
                settings.listen_host, settings.listen_port, settings.root_path, listener=listener
            )
        )
        nursery.cancel_scope.cancel()
    if not decided:
        return None
    decision = decided[0]
    initial = None
    if decision.action in ("bootstrap", "adopt"):
        initial = Membership.of([Member(m.id, m.url, m.voter) for m in decision.members])
        log.info(
            "starting with the configuration %s",
            ", ".join(f"{m.id}={m.url}{'' if m.voter else ' (learner)'}" for m in initial.members),
        )
    return await _open_storage(settings, initial)


#: How long a stopping leader tries to hand leadership over; the process
#: still exits within about a second of this bound.
HANDOVER_SECONDS = 1.0


async def _hand_over_leadership(node: RaftNode) -> None:
    """A leader that is told to stop hands leadership to its most
    caught-up follower first (§3.10), so a rolling restart costs a round
    trip instead of an election timeout. Best effort: if no follower takes
    over within ``HANDOVER_SECONDS``, the node stops anyway and the others
    elect a leader as after a crash."""
    if not node.is_leader or len(node.membership.voters) < 2:
        return
    with trio.move_on_after(HANDOVER_SECONDS):
        try:
            target = await node.transfer_leadership(None)
        except (NotLeaderError, RaftError) as error:
            log.info("no leadership hand-over: %s", error)
            return
        if node.leader_id == target:
            log.info("handed leadership to %s before stopping", target)
            return
    log.warning("leadership hand-over did not finish in %.1f s; stopping anyway", HANDOVER_SECONDS)


#: How long a fast stop (SIGINT) waits for the requests already taken.
FAST_DRAIN_SECONDS = 1.0


@dataclasses.dataclass
class StopRequest:
    """The node was told to stop (``event``), and how. SIGTERM, what
    service managers and container engines send, stops gracefully: a
    leader hands leadership over first. SIGINT (Ctrl-C, and what
    ``raft-trio up`` sends when the whole cluster stops) stops fast, with
    no hand-over to followers that may be stopping too; as PostgreSQL's
    smart and fast shutdown."""

    event: trio.Event = dataclasses.field(default_factory=trio.Event)
    fast: bool = False


async def _stop_on_signals(stop: StopRequest, signals: AsyncIterator[int]) -> None:
    """Set ``stop`` at the first SIGTERM or SIGINT from ``signals`` (a
    receiver its caller keeps open until all is stopped), and go on taking
    them: one sent while the node stops is logged and changes nothing,
    where the default action would kill the node halfway."""
    async for signum in signals:
        if stop.event.is_set():
            log.warning("%s: already stopping", signal.Signals(signum).name)
            continue
        stop.fast = signum == signal.SIGINT
        stop.event.set()


async def _cancel_on_signal(scope: trio.CancelScope) -> None:
    """Cancel ``scope`` at the first SIGTERM or SIGINT (a node still
    waiting for its cluster has nothing to hand over or drain)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return


async def _join(cluster_url: str, node: RaftNode, api_prefix: str = "/api") -> None:
    """Ask the cluster to add this node (as a learner) until it answers."""
    authorization = node.security.node_authorization(node.id)
    async with TrioClient(
        (), api_prefix=api_prefix, security=node.security, authorization=authorization
    ) as client:
        while not await discovery.request_membership(client, cluster_url.rstrip("/"), node):  # noqa: ASYNC110 (a retry)
            await trio.sleep(1.0)
