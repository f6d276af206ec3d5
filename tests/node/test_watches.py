"""Watches: a watcher gets every change it follows, in revision order and
once, from any revision the history still holds; one that falls behind
the history is told and ends; the node stops them all when it stops.

The hub is tested over a bare store (no cluster needed: it reads only the
store's history), then through a three-node cluster on Trio's fake clock,
where a watcher on a follower sees what one on the leader sees."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from raft_trio.kv import Change, Delete, History, KeyValueStore, OpDelete, OpPut, Put, Txn
from raft_trio.node.runtime import COMMIT_EVENT_INTERVAL_S
from raft_trio.node.watches import Selector, TooManyWatchers, WatchClosed, WatchCompacted, WatchHub

from .harness import ELECTION_MAX_S, Cluster


class Store:
    """A store with its hub, applying commands at consecutive indexes."""

    def __init__(self, history: History | None = None, **hub_options: int) -> None:
        self.kv = KeyValueStore(history=history)
        self.hub = WatchHub(self.kv.history, lambda: self.kv.applied_index, **hub_options)

    def apply(self, *commands: Put | Delete | Txn) -> None:
        for command in commands:
            self.kv.apply(self.kv.applied_index + 1, command)
        self.hub.notify()


def seen(changes: list[Change]) -> list[tuple[int, str, str]]:
    return [(c.revision, c.kind, c.key) for c in changes]


async def test_a_watcher_gets_every_change_under_its_prefix_from_its_start_revision() -> None:
    store = Store()
    store.apply(Put("app/a", "1"), Put("other", "x"), Put("app/b", "1"))
    watcher = store.hub.open(Selector.prefix("app/"), start_revision=2)
    assert seen(await watcher.next_changes()) == [(3, "put", "app/b")]
    store.apply(Delete("app/a"), Put("apq", "no"), Put("app/a", "2"))
    assert seen(await watcher.next_changes()) == [(4, "delete", "app/a"), (6, "put", "app/a")]


async def test_a_single_key_watch_sees_only_that_key() -> None:
    store = Store()
    watcher = store.hub.open(Selector.key("k"), start_revision=None)
    store.apply(Put("k/sub", "1"), Put("k", "1"), Put("j", "1"))
    assert seen(await watcher.next_changes()) == [(2, "put", "k")]


async def test_without_a_start_revision_a_watcher_begins_with_the_next_change() -> None:
    store = Store()
    store.apply(Put("k", "1"))
    watcher = store.hub.open(Selector.key("k"), start_revision=None)
    store.apply(Put("k", "2"))
    changes = await watcher.next_changes()
    assert [(c.revision, c.value, c.prev_value, c.version) for c in changes] == [(2, "2", "1", 2)]


async def test_the_changes_of_one_transaction_come_together() -> None:
    store = Store(batch=2)
    watcher = store.hub.open(Selector.prefix(""), start_revision=None)
    store.apply(
        Txn([], [OpPut("a", "1"), OpPut("b", "1"), OpPut("c", "1"), OpDelete("a")], []), Put("d", "1")
    )
    assert seen(await watcher.next_changes()) == [
        (1, "put", "a"),
        (1, "put", "b"),
        (1, "put", "c"),
        (1, "delete", "a"),
    ]
    assert seen(await watcher.next_changes()) == [(2, "put", "d")]


async def test_a_watcher_waits_for_the_next_change() -> None:
    store = Store()
    watcher = store.hub.open(Selector.key("k"), start_revision=None)
    got: list[Change] = []

    async def watch() -> None:
        got.extend(await watcher.next_changes())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        store.apply(Put("other", "1"))
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        store.apply(Put("k", "1"))
    assert seen(got) == [(2, "put", "k")]


async def test_a_start_older_than_the_history_is_refused_with_the_oldest_revision_held() -> None:
    store = Store(History(max_changes=3))
    store.apply(*(Put("k", str(n)) for n in range(6)))
    with pytest.raises(WatchCompacted) as refused:
        store.hub.open(Selector.key("k"), start_revision=3)
    assert refused.value.compact_revision == 4
    assert seen(await store.hub.open(Selector.key("k"), start_revision=4).next_changes())[0] == (
        4,
        "put",
        "k",
    )


async def test_a_watcher_that_falls_behind_the_history_is_told_and_the_writes_go_on() -> None:
    store = Store(History(max_changes=10))
    slow = store.hub.open(Selector.prefix(""), start_revision=None)
    store.apply(*(Put(f"k{n}", "v") for n in range(25)))  # never waits for the watcher
    assert store.kv.applied_index == 25
    with pytest.raises(WatchCompacted) as told:
        await slow.next_changes()
    assert told.value.compact_revision == store.kv.history.floor == 16


async def test_a_long_backlog_of_other_keys_is_scanned_in_batches() -> None:
    store = Store(batch=4)
    watcher = store.hub.open(Selector.key("needle"), start_revision=None)
    store.apply(*(Put(f"hay{n}", "v") for n in range(50)), Put("needle", "x"))
    assert seen(await watcher.next_changes()) == [(51, "put", "needle")]


async def test_a_node_serves_at_most_its_number_of_watchers() -> None:
    store = Store(max_watchers=2)
    first = store.hub.open(Selector.key("a"), None)
    store.hub.open(Selector.key("b"), None)
    with pytest.raises(TooManyWatchers):
        store.hub.open(Selector.key("c"), None)
    store.hub.release(first)
    store.hub.open(Selector.key("c"), None)


async def test_closing_the_hub_ends_every_waiting_watcher() -> None:
    store = Store()
    watcher = store.hub.open(Selector.key("k"), None)
    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                with pytest.raises(WatchClosed):
                    await watcher.next_changes()

            nursery.start_soon(watch)
            await trio.testing.wait_all_tasks_blocked()
            store.hub.close()
    with pytest.raises(WatchClosed):
        store.hub.open(Selector.key("k"), None)


async def test_a_watcher_on_a_follower_sees_what_one_on_the_leader_sees(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    follower = next(h.node for h in cluster.hosts.values() if h.node is not leader)
    start = leader.kv.applied_index + 1
    watchers = [node.watches.open(Selector.prefix("w/"), start) for node in (leader, follower)]
    await leader.write(Put("w/1", "a"))
    await leader.write(Txn([], [OpPut("w/2", "b"), OpDelete("w/1")], []))
    await leader.write(Put("x", "not watched"))
    await leader.write(Delete("w/2"))
    sequences = []
    for watcher in watchers:
        changes: list[Change] = []
        with trio.fail_after(1):
            while len(changes) < 4:
                changes.extend(await watcher.next_changes())
        sequences.append([(c.revision, c.kind, c.key, c.value) for c in changes])
    assert sequences[0] == sequences[1]
    assert [kind for _, kind, _, _ in sequences[0]] == ["put", "put", "delete", "delete"]
    revisions = [revision for revision, *_ in sequences[0]]
    assert revisions == sorted(revisions) and revisions[1] == revisions[2]


async def test_the_event_stream_announces_commits_at_most_every_interval(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The monitor follows the indexes through ``commit`` events instead of
    polling: one per interval while writes go on, the last one always."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    async with leader.subscribe() as events:
        started = trio.current_time()
        for n in range(20):
            await leader.write(Put(f"c{n}", "v"))
            await trio.sleep(0.01)
        await trio.sleep(2 * COMMIT_EVENT_INTERVAL_S)
        commits = []
        while True:
            try:
                event = events.receive_nowait()
            except trio.WouldBlock:
                break
            if event.name == "commit":
                commits.append(event.data)
    elapsed = trio.current_time() - started
    assert 1 <= len(commits) <= elapsed / COMMIT_EVENT_INTERVAL_S + 1, len(commits)
    assert commits[-1].applied_index == leader.kv.applied_index
    assert [c.applied_index for c in commits] == sorted(c.applied_index for c in commits)
