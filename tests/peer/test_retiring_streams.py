"""A stream to a removed member retires: it ends within the deadline and
until then still carries the leader's last heartbeat, the one that tells
the member its removal committed. If the member is added again first, the
retiring stream ends at once: that heartbeat's commit index is the old
server's, and a new one with an empty disk at the same URL took it for its
own log and stopped on the core's assertion (found by the simulator's
wiped re-adds)."""

from __future__ import annotations

import trio
import trio.testing

from raft_trio.core import Heartbeat
from raft_trio.peer.transport import Transport
from raft_trio.testing.waiting import wait_for

URL = "http://127.0.0.1:1"  # nothing listens: the streams retry


async def test_a_member_added_again_ends_its_removed_selfs_stream() -> None:
    async with trio.open_nursery() as nursery:
        transport = Transport("n1", nursery, 5.0, lambda peer: None, lambda peer, ok: None)
        transport.set_peers({"n2": URL})
        removed_self = transport.senders["n2"]
        transport.set_peers({})
        transport.send([Heartbeat(3, "n1", "n2", commit=40, seq=7)])
        await trio.testing.wait_all_tasks_blocked()
        assert not removed_self.ended  # retiring: the last heartbeat may still go

        transport.set_peers({"n2": URL})
        with trio.fail_after(1):
            await wait_for(lambda: removed_self.ended)

        assert transport.senders["n2"] is not removed_self
        nursery.cancel_scope.cancel()


async def test_a_removed_members_stream_still_retires_within_the_deadline() -> None:
    async with trio.open_nursery() as nursery:
        transport = Transport("n1", nursery, 0.3, lambda peer: None, lambda peer, ok: None)
        transport.set_peers({"n2": URL})
        removed = transport.senders["n2"]
        transport.set_peers({})
        await trio.testing.wait_all_tasks_blocked()
        assert not removed.ended
        with trio.fail_after(2):
            await wait_for(lambda: removed.ended)
        assert "n2" not in transport.senders
        nursery.cancel_scope.cancel()
