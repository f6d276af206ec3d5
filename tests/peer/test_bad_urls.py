"""A member URL httpx cannot use (``http://n4:80a``): refused where it
comes in, and, in a configuration that holds one already, a peer never
reached rather than a crash. A review found that httpx raises InvalidURL,
which is not an HTTPError, so it left the stream's task and the node's
nursery: every node that appended the member stopped, and again at every
restart."""

from __future__ import annotations

import pytest
import trio

from raft_trio.core import AddLearner, ConfigChangeRejected, Membership, Snapshot, SnapshotMeta
from raft_trio.node import RaftNode, Timing
from raft_trio.peer.transport import Transport
from raft_trio.peer.wire import peer_url_problem
from raft_trio.testing.waiting import wait_for
from tests.node.harness import MemoryNodeStorage


@pytest.mark.parametrize(
    "url",
    [
        "http://n4:80a",
        "http://n4:99999",
        "http://:80",
        "ftp://n4:80",
        "http://n4:80/?x=1",
        "http://exa\tmple:1",
    ],
)
def test_a_url_the_transport_cannot_use_is_named(url: str) -> None:
    assert peer_url_problem(url) is not None


@pytest.mark.parametrize(
    "url", ["http://n4:9001", "https://10.0.0.4", "http://[::1]:9001/", "http://n4:9001/raft"]
)
def test_a_usable_url_passes(url: str) -> None:
    assert peer_url_problem(url) is None


async def test_a_member_url_httpx_cannot_parse_is_an_unreachable_peer() -> None:
    unreachable: list[str] = []
    async with trio.open_nursery() as nursery:  # the stream's error would end it
        transport = Transport("n1", nursery, 0.2, unreachable.append, lambda peer, ok: None)
        transport.set_peers({"n4": "http://n4:80a"})
        with trio.fail_after(5):
            await wait_for(lambda: "n4" in unreachable)
        nursery.cancel_scope.cancel()


async def test_a_running_node_survives_a_member_with_a_bad_url_in_its_configuration() -> None:
    storage = MemoryNodeStorage(Snapshot(SnapshotMeta(0, 0, Membership.of({"n1": "http://127.0.0.1:1"}))))
    node = RaftNode("n1", "http://127.0.0.1:1", storage, Timing(), seed=1)
    crashed: list[BaseException] = []
    with trio.move_on_after(8):
        async with trio.open_nursery() as outer:

            async def run() -> None:
                try:
                    await node.run()
                except BaseException as error:  # what a server's nursery would get
                    crashed.append(error)

            outer.start_soon(run)
            with trio.fail_after(5):
                await wait_for(lambda: node.is_leader)
            while True:
                try:
                    await node.change_membership(AddLearner("n4", "http://n4:80a"))
                    break
                except ConfigChangeRejected:  # no entry of its term committed yet
                    await trio.sleep(0.05)
            await trio.sleep(0.5)
            node.close()
    assert not crashed, repr(crashed)
