"""A node cut off from its cluster does not serve watches.

A watch served from a node that hears nothing from the leader waits for
changes the rest of the cluster makes without it, and its keep-alives
keep the client from looking elsewhere: a lock's next waiter watching
through such a node never saw the release, nor did anyone queued behind
it (a review's finding). As etcd's require-leader watches, such a node
refuses new watches (503) and ends a quiet stream at its next
keep-alive; the client opens the watch again elsewhere with
``Last-Event-ID`` and loses nothing.
"""

from __future__ import annotations

import trio
import trio.testing

from raft_trio.http import coordination
from raft_trio.http.app import create_app
from raft_trio.node import RaftNode
from raft_trio.testing.waiting import wait_for
from tests.http.test_answers import Sent, call
from tests.node.harness import ELECTION_MAX_S, Cluster


async def watch_until_it_ends(node: RaftNode, started: trio.Event, sent: list[Sent]) -> None:
    """A watch on ``node`` through its whole app; ``started`` is set once
    the stream's first comment went out (the watch is open)."""
    app = create_app(node)

    async def opened() -> None:
        await wait_for(lambda: len(node.watches) > 0 or bool(sent))
        started.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(opened)
        sent.append(await call(app, "GET", "/api/watch", keep=None))
        nursery.cancel_scope.cancel()


async def test_a_cut_off_node_ends_its_quiet_watches_and_refuses_new_ones(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    host = next(h for h in cluster.hosts.values() if h.node is not leader)
    follower = host.node
    with trio.fail_after(5):
        await wait_for(lambda: follower.out_of_touch() is None)
    sent: list[Sent] = []
    started = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_until_it_ends, follower, started, sent)
        with trio.fail_after(5):
            await started.wait()
        assert not sent, sent  # open, not refused
        # In touch: the stream stays open past several keep-alives.
        await trio.sleep(4 * coordination.WATCH_KEEPALIVE_S)
        assert not sent
        host.paused = True  # it hears nothing from the leader from now on
        cut_off_at = trio.current_time()
        with trio.fail_after(coordination.WATCH_KEEPALIVE_S + ELECTION_MAX_S + 1):
            await wait_for(lambda: bool(sent), poll=0.1)
        assert trio.current_time() - cut_off_at <= coordination.WATCH_KEEPALIVE_S + ELECTION_MAX_S
    ((status, _, body),) = sent
    assert status == 200
    assert body.count(b": keep-alive") >= 3
    assert body.endswith(b"; watch elsewhere\n\n") and b": ended: this node is out of touch" in body
    assert len(follower.watches) == 0

    # A new watch is answered (a browser's EventSource gives up for good on
    # a 503) and ends at once, saying why, without this node's revision
    # (perhaps old: a client resumes a watch from the first answer's).
    status, headers, answer = await call(create_app(follower), "GET", "/api/watch", keep=None)
    assert status == 200 and "x-raft-revision" not in headers
    assert answer.startswith(b": ended: this node is out of touch") and answer.endswith(
        b"; watch elsewhere\n\n"
    )
    assert len(follower.watches) == 0
    # The leader, in touch, still serves watches.
    assert leader.out_of_touch() is None
