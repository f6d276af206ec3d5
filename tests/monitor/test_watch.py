"""The watcher on Trio's fake clock, against fake nodes: it subscribes to
each node, tells a paused node from a quiet one within the stated bound,
backs off from dead nodes, follows membership, and survives bad events."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable

import pytest
import trio
import trio.testing

from raft_monitor import ClusterView, Hub, Watcher, WatchSettings
from raft_trio.testing.waiting import wait_for

from .helpers import URLS, FakeNodes, doc

SETTINGS = WatchSettings(stall_after=1.25, probe_timeout=0.5, refresh=0.5, backoff_min=0.1, backoff_max=2.0)
#: The latest a paused node is shown unreachable, after the last thing it
#: sent: the stall timeout plus the status probe's timeout.
PAUSE_BOUND = SETTINGS.stall_after + SETTINGS.probe_timeout


def three_nodes() -> FakeNodes:
    nodes = FakeNodes()
    members = ("n1", "n2", "n3")
    nodes.add("n1", doc("n1", role="leader", term=2, leader_id="n1", with_members=members))
    nodes.add("n2", doc("n2", term=2, leader_id="n1", with_members=members))
    nodes.add("n3", doc("n3", term=2, leader_id="n1", with_members=members))
    return nodes


async def until(predicate: Callable[[], bool], within: float = 30.0, step: float = 0.01) -> float:
    """Wait (on the fake clock) until ``predicate()`` holds; returns when."""
    with trio.fail_after(within):
        await wait_for(predicate, poll=step)
    return trio.current_time()


@pytest.fixture
async def cluster(
    autojump_clock: trio.testing.MockClock,
) -> AsyncIterator[tuple[FakeNodes, ClusterView, Watcher]]:
    nodes = three_nodes()
    view = ClusterView()
    watcher = Watcher(view, Hub(), nodes, SETTINGS)
    async with trio.open_nursery() as nursery:
        await nursery.start(watcher.run, [URLS["n1"]])
        yield nodes, view, watcher
        nursery.cancel_scope.cancel()


def role(view: ClusterView, node_id: str) -> str | None:
    node = view.nodes.get(node_id)
    return node.role if node is not None else None


async def test_one_seed_is_enough_the_membership_brings_the_others(
    cluster: tuple[FakeNodes, ClusterView, Watcher], autojump_clock: trio.testing.MockClock
) -> None:
    _, view, watcher = cluster
    await until(lambda: [role(view, n) for n in ("n1", "n2", "n3")] == ["leader", "follower", "follower"])
    assert watcher.watching() == sorted(URLS[n] for n in ("n1", "n2", "n3"))
    assert trio.current_time() < 0.1


async def test_events_reach_the_view_at_once(
    cluster: tuple[FakeNodes, ClusterView, Watcher], autojump_clock: trio.testing.MockClock
) -> None:
    nodes, view, _ = cluster
    await until(lambda: role(view, "n3") == "follower")
    start = trio.current_time()
    nodes.by_url[URLS["n2"]].emit("role", doc("n2", role="candidate", term=2, leader_id=None))
    nodes.by_url[URLS["n2"]].emit("term", doc("n2", role="candidate", term=3, leader_id=None))
    nodes.by_url[URLS["n2"]].emit("role", doc("n2", role="leader", term=3, leader_id="n2"))
    when = await until(lambda: role(view, "n2") == "leader", step=0.001)
    assert when - start <= 0.01
    assert [(e.kind, e.new) for e in view.timeline][-4:] == [
        ("role", "candidate"),
        ("term", None),
        ("role", "leader"),
        ("leader", "n2"),
    ]


async def test_a_paused_node_is_unreachable_within_the_bound_and_returns(
    cluster: tuple[FakeNodes, ClusterView, Watcher], autojump_clock: trio.testing.MockClock
) -> None:
    nodes, view, _ = cluster
    await until(lambda: role(view, "n2") == "follower")
    await trio.sleep(3.3)  # some keep-alives and refreshes go by
    n2 = nodes.by_url[URLS["n2"]]
    last_heard = view.nodes["n2"].last_contact
    assert last_heard is not None
    n2.pause()
    paused_at = trio.current_time()
    when = await until(lambda: role(view, "n2") == "unreachable", step=0.001)
    assert when - last_heard <= PAUSE_BOUND + 0.01
    assert when - paused_at <= PAUSE_BOUND
    assert view.nodes["n2"].reason == "silent for 1.25 s"
    assert view.nodes["n2"].term == 2  # what it last said stays shown
    await trio.sleep(10)
    assert role(view, "n2") == "unreachable"
    n2.resume()
    resumed_at = trio.current_time()
    back = await until(lambda: role(view, "n2") == "follower")
    assert back - resumed_at <= SETTINGS.backoff_max + 0.1


async def test_a_quiet_stream_from_a_live_node_is_not_unreachable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    nodes = FakeNodes()
    quiet = nodes.add("n1", doc("n1", role="leader", leader_id="n1"), keepalive=False)
    view = ClusterView()
    async with trio.open_nursery() as nursery:
        await nursery.start(Watcher(view, Hub(), nodes, SETTINGS).run, [URLS["n1"]])
        seen: list[str] = []
        for _ in range(1000):
            await trio.sleep(0.01)
            seen.append(view.nodes["n1"].role)
        assert set(seen) == {"leader"}
        assert quiet.connects >= 5  # the silent stream was replaced each time
        nursery.cancel_scope.cancel()


async def test_a_killed_node_is_unreachable_at_once_and_retried_with_back_off(
    cluster: tuple[FakeNodes, ClusterView, Watcher], autojump_clock: trio.testing.MockClock
) -> None:
    nodes, view, _ = cluster
    await until(lambda: role(view, "n1") == "leader")
    n1 = nodes.by_url[URLS["n1"]]
    n1.kill()
    killed_at = trio.current_time()
    when = await until(lambda: role(view, "n1") == "unreachable", step=0.001)
    assert when - killed_at <= 0.01
    assert view.leader() is None
    connects = n1.connects
    tries = 0
    original = nodes.stream

    def counting(url: str):  # type: ignore[no-untyped-def]
        nonlocal tries
        tries += url == URLS["n1"]
        return original(url)

    nodes.stream = counting  # type: ignore[method-assign]
    await trio.sleep(20)
    # 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s, then every 2 s: about 12 tries in 20 s.
    assert 8 <= tries <= 14
    assert n1.connects == connects
    n1.state = "up"
    await until(lambda: role(view, "n1") == "leader", within=2.1)


async def test_nodes_that_join_appear_without_a_restart(
    cluster: tuple[FakeNodes, ClusterView, Watcher], autojump_clock: trio.testing.MockClock
) -> None:
    nodes, view, watcher = cluster
    await until(lambda: role(view, "n3") == "follower")
    nodes.add("n4", doc("n4", role="learner", term=2, leader_id="n1"))
    members = ("n1", "n2", "n3", "n4")
    nodes.by_url[URLS["n1"]].emit(
        "membership", doc("n1", role="leader", term=2, leader_id="n1", with_members=members)
    )
    await until(lambda: role(view, "n4") == "learner")
    assert URLS["n4"] in watcher.watching()


async def test_a_malformed_event_is_logged_and_skipped(
    cluster: tuple[FakeNodes, ClusterView, Watcher],
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    nodes, view, _ = cluster
    await until(lambda: role(view, "n2") == "follower")
    n2 = nodes.by_url[URLS["n2"]]
    with caplog.at_level(logging.WARNING, logger="raft_monitor"):
        n2.emit("role", "{broken")
        n2.emit("role", json.dumps({"id": "n2", "role": "emperor", "term": 2}))
        n2.emit("role", doc("n2", role="candidate", term=2, leader_id=None))
        await until(lambda: role(view, "n2") == "candidate")
    messages = [r.getMessage() for r in caplog.records]
    assert any("malformed event skipped" in m and "not JSON" in m for m in messages)
    assert any("malformed event skipped" in m and "emperor" in m for m in messages)
    assert n2.connects == 1  # the stream went on


async def test_a_missing_node_never_stops_the_watcher(autojump_clock: trio.testing.MockClock) -> None:
    nodes = three_nodes()
    view = ClusterView()
    async with trio.open_nursery() as nursery:
        watcher = Watcher(view, Hub(), nodes, SETTINGS)
        await nursery.start(watcher.run, ["http://10.9.9.9:9001", URLS["n2"]])
        await until(lambda: role(view, "n1") == "leader")
        await trio.sleep(5)
        assert view.nodes["http://10.9.9.9:9001"].reason == "cannot connect"
        nursery.cancel_scope.cancel()


async def test_pages_get_each_change_as_it_happens(autojump_clock: trio.testing.MockClock) -> None:
    nodes = three_nodes()
    view, hub = ClusterView(), Hub()
    async with trio.open_nursery() as nursery, hub.subscribe() as page:
        await nursery.start(Watcher(view, hub, nodes, SETTINGS).run, [URLS["n1"]])
        await until(lambda: role(view, "n3") == "follower")
        received: list[tuple[str, dict[str, object]]] = []
        while True:
            try:
                chunk = page.receive_nowait()
            except trio.WouldBlock:
                break
            name, data = chunk.decode().split("\n")[:2]
            received.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
        names = {name for name, _ in received}
        assert {"node", "removed", "timeline"} <= names
        cards = {data["id"]: data["role"] for name, data in received if name == "node"}
        assert cards["n1"] == "leader" and cards["n2"] == cards["n3"] == "follower"
        nursery.cancel_scope.cancel()


async def test_dns_discovery_adds_replicas_as_they_appear() -> None:
    # Real clock: the resolver runs in a thread.
    from raft_monitor._run import discover_nodes

    nodes = three_nodes()
    view = ClusterView()
    answers = [["10.0.0.1"], ["10.0.0.1", "10.0.0.2"]]

    def resolve(name: str) -> list[str]:
        assert name == "raft"
        return answers.pop(0) if len(answers) > 1 else answers[0]

    async with trio.open_nursery() as nursery:
        watcher = Watcher(view, Hub(), nodes, SETTINGS)
        await nursery.start(watcher.run)
        nursery.start_soon(discover_nodes, watcher, "raft", 9001, 0.05, resolve)
        with trio.fail_after(5):
            await wait_for(lambda: all(role(view, n) == "follower" for n in ("n2", "n3")))
            # n2 was named by n1's membership, then found by DNS too.
            await wait_for(lambda: view.nodes["n2"].seed)
        assert view.nodes["n1"].seed and not view.nodes["n3"].seed
        assert watcher.watching() == sorted(URLS[n] for n in ("n1", "n2", "n3"))
        nursery.cancel_scope.cancel()


async def test_the_chart_gets_a_sample_every_refresh_period_without_any_polling(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Indexes come with the events; the watcher asks no node's status
    while the streams are live, and publishes a chart sample each period."""
    nodes = three_nodes()
    view, hub = ClusterView(), Hub()
    async with trio.open_nursery() as nursery, hub.subscribe() as page:
        await nursery.start(Watcher(view, hub, nodes, SETTINGS).run, [URLS["n1"]])
        await until(lambda: role(view, "n3") == "follower")
        started = trio.current_time()
        statuses_before = nodes.status_calls
        await trio.sleep(2.0)
        samples = []
        while True:
            try:
                chunk = page.receive_nowait().decode()
            except trio.WouldBlock:
                break
            if chunk.startswith("event: sample\n"):
                samples.append(json.loads(chunk.split("\n")[1].removeprefix("data: ")))
        assert len(samples) in (4, 5), (len(samples), trio.current_time() - started)
        assert set(samples[-1]["nodes"]) == {"n1", "n2", "n3"} and samples[-1]["leader"] == "n1"
        assert nodes.status_calls == statuses_before
        nursery.cancel_scope.cancel()
