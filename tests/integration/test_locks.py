"""Locks and elections of the Trio client against real node processes:
holders one at a time in the order they queued, with growing fencing
tokens; a release wakes only the next waiter; a lock is lost (its block
cancelled) when its key is deleted or the cluster is unreachable past its
lease; a waiter that loses its lease queues again; elections are
observed, proclaimed and resigned."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from raft_trio import schema
from raft_trio.client import Client, Leader, LockLost, NoEndpointAnswered, TrioClient
from raft_trio.testing.waiting import wait_for

from .cluster import ELECTION_TIMEOUT_MAX_S, Cluster

pytestmark = pytest.mark.integration

TTL = 3


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def endpoints(cluster: Cluster) -> list[str]:
    return [node.url for node in cluster.nodes.values()]


def run(cluster: Cluster, main: Callable[[TrioClient], Awaitable[Any]]) -> Any:
    async def with_client() -> Any:
        async with TrioClient(endpoints(cluster)) as client:
            return await main(client)

    return trio.run(with_client)


async def waiters_queued(client: TrioClient, name: str, count: int) -> list[schema.RangeItem]:
    with trio.fail_after(10):
        while True:
            page = await client.range(prefix=name + "/")
            if len(page.kvs) >= count:
                return sorted(page.kvs, key=lambda item: item.create_revision)
            await trio.sleep(0.05)


async def held_until_lost(
    client: TrioClient, name: str, body: Callable[[int], Awaitable[None]], margin: float = 0.0
) -> LockLost:
    """Hold the lock ``name`` running ``body(token)``: the LockLost that
    ended it (the test fails if it was not lost)."""
    held: list[int] = []
    try:
        async with client.lock(name, ttl=TTL, margin=margin) as token:
            held.append(token)
            await body(token)
    except LockLost as error:
        lost = error
    else:
        raise AssertionError(f"the lock {name} was not lost")
    assert lost.token == held[0]
    return lost


def test_holders_take_turns_in_the_order_they_queued_with_growing_tokens(shared_cluster: Cluster) -> None:
    name = unique("turns")
    held: list[tuple[str, int, float, float]] = []

    async def main(client: TrioClient) -> None:
        async def worker(number: int) -> None:
            async with client.lock(name, ttl=TTL, value=f"worker {number}") as token:
                started = trio.current_time()
                await trio.sleep(0.2)
                held.append((f"worker {number}", token, started, trio.current_time()))

        async with trio.open_nursery() as nursery, client.lock(name, ttl=TTL) as first:
            started = trio.current_time()
            for number in range(5):
                nursery.start_soon(worker, number)
            queued = await waiters_queued(client, name, 6)
            order = [item.value for item in queued[1:]]
            held.append(("first", first, started, trio.current_time()))
        by_start = sorted(held[1:], key=lambda h: h[2])
        assert [h[0] for h in by_start] == order, "holders took the lock in the order they queued"

    run(shared_cluster, main)
    assert len(held) == 6
    by_start = sorted(held, key=lambda h: h[2])
    tokens = [h[1] for h in by_start]
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens), tokens
    for earlier, later in itertools.pairwise(by_start):
        assert earlier[3] <= later[2], f"{earlier} and {later} overlap"


class CountingClient(TrioClient):
    """Counts the ranges it reads and the watches it opens."""

    ranges = 0
    watches = 0

    async def range(self, *args: Any, **kwargs: Any) -> schema.RangeAnswer:
        self.ranges += 1
        return await super().range(*args, **kwargs)

    def watch(self, *args: Any, **kwargs: Any) -> Any:
        self.watches += 1
        return super().watch(*args, **kwargs)


def test_a_release_wakes_only_the_next_waiter(shared_cluster: Cluster) -> None:
    name = unique("herd")

    async def main(client: TrioClient) -> None:
        waiters = [CountingClient(endpoints(shared_cluster)) for _ in range(4)]
        holding: list[int] = []
        release = trio.Event()

        async def wait(waiter: CountingClient, number: int) -> None:
            async with waiter.lock(name, ttl=TTL):
                holding.append(number)
                await release.wait()

        async with trio.open_nursery() as nursery:
            async with client.lock(name, ttl=TTL):
                for number, waiter in enumerate(waiters):
                    nursery.start_soon(wait, waiter, number)
                    await waiters_queued(client, name, number + 2)
                with trio.fail_after(10):
                    await wait_for(lambda: all(waiter.watches for waiter in waiters))
                await trio.sleep(0.3)  # each is now waiting on its watch
                assert [(w.ranges, w.watches) for w in waiters] == [(0, 1)] * 4, (
                    "one watch each, nothing read"
                )
            with trio.fail_after(10):
                await wait_for(lambda: bool(holding))
            await trio.sleep(0.5)
            assert holding == [0]
            # The next one looked again (one range) and now watches its own
            # key; the others did nothing at all.
            assert [(w.ranges, w.watches) for w in waiters] == [(1, 2), (0, 1), (0, 1), (0, 1)]
            release.set()
        assert holding == [0, 1, 2, 3]
        for waiter in waiters:
            await waiter.aclose()

    run(shared_cluster, main)


def test_a_lock_whose_key_is_deleted_is_lost_and_its_block_cancelled(shared_cluster: Cluster) -> None:
    name = unique("deleted")

    async def main(client: TrioClient) -> None:
        reached_the_end = []

        async def delete_the_key(token: int) -> None:
            (mine,) = (await client.range(prefix=name + "/")).kvs
            assert mine.create_revision == token
            await client.delete(mine.key)
            await trio.sleep(10)
            reached_the_end.append(True)

        lost = await held_until_lost(client, name, delete_the_key)
        assert not reached_the_end
        assert lost.reason == "its key was deleted"
        # The lease is revoked after all: nothing of it is left.
        assert (await client.range(prefix=name + "/")).kvs == []

    run(shared_cluster, main)


def test_a_waiter_whose_lease_is_revoked_gets_in_line_again(shared_cluster: Cluster) -> None:
    name = unique("requeue")

    async def main(client: TrioClient) -> None:
        got: list[int] = []

        async def wait() -> None:
            async with client.lock(name, ttl=TTL) as token:
                got.append(token)

        async with trio.open_nursery() as nursery, client.lock(name, ttl=TTL):
            nursery.start_soon(wait)
            _, waiter = await waiters_queued(client, name, 2)
            assert waiter.lease is not None
            await client.revoke_lease(waiter.lease)
            _, again = await waiters_queued(client, name, 2)
            assert again.key != waiter.key and again.create_revision > waiter.create_revision
        assert got == [again.create_revision]

    run(shared_cluster, main)


def test_a_lock_is_lost_when_the_cluster_is_unreachable_past_its_lease(cluster: Cluster) -> None:
    """Every node paused: no keep-alive is answered, and the block is
    cancelled ``margin`` seconds before the lease could run out, counted
    from the last keep-alive answered before the pause."""
    name = unique("unreachable")
    margin = 0.5
    interval = (TTL - margin) / 3

    async def main(client: TrioClient) -> tuple[float, float, float, LockLost]:
        times: dict[str, float] = {}

        async def pause_every_node(token: int) -> None:
            await trio.sleep(interval + 0.2)  # a keep-alive was answered
            for node in cluster.nodes.values():
                node.pause()
            times["paused"] = trio.current_time()
            try:
                await trio.sleep(30)
            finally:
                times["cancelled"] = trio.current_time()

        lost = await held_until_lost(client, name, pause_every_node, margin=margin)
        return times["paused"], times["cancelled"], trio.current_time(), lost

    try:
        paused_at, cancelled_at, raised_at, lost = run(cluster, main)
    finally:
        for node in cluster.nodes.values():
            node.resume()
    # The last answered keep-alive was sent at most one interval (and the
    # time it took to answer) before the pause.
    assert TTL - margin - interval - 0.3 <= cancelled_at - paused_at <= TTL - margin + 0.3
    # Nobody to release it to: no wait for an answer.
    assert raised_at - cancelled_at < 0.5
    assert "no keep-alive was answered" in lost.reason
    cluster.wait_for_leader()

    async def after(client: TrioClient) -> None:
        # The lease runs out on the cluster too, and the lock is free.
        with trio.fail_after(TTL + 3 * ELECTION_TIMEOUT_MAX_S + 5):
            async with client.lock(name, ttl=TTL) as token:
                assert token > lost.token

    run(cluster, after)


async def leaders_seen(client: TrioClient, name: str, into: list[Leader | None]) -> None:
    async with client.observe(name) as leaders:
        async for leader in leaders:
            into.append(leader)  # noqa: PERF401 (the test reads the list as it grows)


async def until(check: Callable[[], bool], within: float = 10) -> None:
    with trio.fail_after(within):
        await wait_for(check)


def test_an_election_is_observed_proclaimed_and_resigned(shared_cluster: Cluster) -> None:
    name = unique("election")

    async def main(client: TrioClient) -> None:
        seen: list[Leader | None] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(leaders_seen, client, name, seen)
            await until(lambda: seen == [None])
            async with client.campaign(name, "alpha", ttl=TTL) as alpha:
                await until(lambda: len(seen) == 2)
                assert seen[-1] == Leader(name, alpha.key, "alpha", alpha.token)
                assert await client.leader(name) == seen[-1]
                elected: list[str] = []

                async def beta() -> None:
                    async with client.campaign(name, "beta", ttl=TTL) as leading:
                        elected.append(leading.value)
                        await trio.sleep_forever()

                nursery.start_soon(beta)
                await waiters_queued(client, name, 2)
                await alpha.proclaim("alpha 2")
                await until(lambda: len(seen) == 3)
                assert seen[-1] == Leader(name, alpha.key, "alpha 2", alpha.token)
                assert elected == []
            await until(lambda: elected == ["beta"] and len(seen) == 4)
            beta_leader = seen[-1]
            assert beta_leader is not None and beta_leader.value == "beta" and beta_leader.token > alpha.token
            with pytest.raises(LockLost):
                await alpha.proclaim("too late")
            nursery.cancel_scope.cancel()
        assert await client.leader(name) is None  # beta resigned as it was cancelled

    run(shared_cluster, main)


def test_the_blocking_client_holds_a_lock_and_says_when_it_is_lost(shared_cluster: Cluster) -> None:
    name = unique("blocking")
    with Client(endpoints(shared_cluster)) as client:
        assert client.leader(name) is None
        with client.lock(name, ttl=TTL, value="me") as held:
            leader = client.leader(name)
            assert leader is not None and (leader.token, leader.value) == (held.token, "me")
            assert not held.lost.is_set()
        assert client.leader(name) is None, "released as the block ended"
        with client.lock(name, ttl=TTL) as second:
            assert second.token > held.token

        told: list[bool] = []
        with pytest.raises(LockLost, match="its key was deleted"):
            hold_and_delete_the_key(client, name, told)
        assert told == [True], "the block was told at once"
        assert client.leader(name) is None


def hold_and_delete_the_key(client: Client, name: str, told: list[bool]) -> None:
    with client.lock(name, ttl=TTL) as held:
        (mine,) = client.range(prefix=name + "/").kvs
        client.delete(mine.key)
        told.append(held.lost.wait(timeout=10))


def test_what_the_block_raises_comes_out_as_itself_and_the_lock_is_released(shared_cluster: Cluster) -> None:
    name = unique("raises")

    async def fail_inside(client: TrioClient) -> None:
        async with client.lock(name, ttl=TTL):
            raise KeyError("from the block")

    async def main(client: TrioClient) -> None:
        with pytest.raises(KeyError, match="from the block"):
            await fail_inside(client)
        assert await client.leader(name) is None

    run(shared_cluster, main)


def test_a_lock_on_an_unreachable_cluster_raises_no_endpoint_answered() -> None:
    async def main() -> None:
        async with TrioClient("http://127.0.0.1:1", timeout=1) as client:
            with pytest.raises(NoEndpointAnswered):
                await enter_lock(client)

    async def enter_lock(client: TrioClient) -> None:
        async with client.lock("unreachable"):
            pass

    trio.run(main)
