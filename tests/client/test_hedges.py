"""A call that is safe to repeat goes to the next endpoint as well once its
endpoint has been silent for ``hedge_after`` (a paused node accepts the
connection and says nothing): the way of the call without I/O, then both
drivers over httpx's mock transport (the Trio one on the fake clock)."""

from __future__ import annotations

import contextvars
import dataclasses
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msgspec
import pytest
import trio

from raft_trio import schema
from raft_trio.client import Client, Indeterminate, TrioClient, Unavailable, _api
from raft_trio.client._calls import Call, Endpoints, Failure, Reply, Send, Settings, attempts
from raft_trio.client._workers import DaemonPool

from .test_calls import KEY, Script, err, ok, redirect

A, B, C = "http://a:9001", "http://b:9001", "http://c:9001"
SETTINGS = Settings(timeout=10.0, hedge_after=1.0)
NO_LEADER = err(503, "no_leader")


def run(call: Call[Any], answer: Callable[[Send], Reply | Failure], token: str | None = None) -> Script:
    """``answer`` returns what the driver would: the first endpoint's
    answer, or one marked ``hedged`` as the hedge's."""
    script = Script(answer)
    script.run(attempts(call, Endpoints([A, B, C]), SETTINGS, lambda: script.now, token))
    return script


def sends(script: Script) -> list[Send]:
    return [step for step in script.steps if isinstance(step, Send)]


def test_a_read_names_the_next_endpoint_as_its_hedge() -> None:
    script = run(_api.get("k", stale=False), lambda send: ok(KEY))
    (send,) = sends(script)
    assert (send.url, send.hedge, send.hedge_after) == (f"{A}/api/kv/k", f"{B}/api/kv/k", 1.0)
    assert send.the_hedge() == Send("GET", f"{B}/api/kv/k", send.headers, None, send.timeout - 1.0)


def test_a_write_without_a_key_is_never_hedged_but_with_one_it_is() -> None:
    unkeyed = run(_api.put("k", "v", None), lambda send: ok(KEY))
    keyed = run(_api.put("k", "v", None), lambda send: ok(KEY), token="key")
    assert [send.hedge for send in sends(unkeyed)] == [None]
    assert [send.hedge for send in sends(keyed)] == [f"{B}/api/kv/k"]


def test_no_hedge_without_another_endpoint_or_time_for_it() -> None:
    def hedges(endpoints: list[str], settings: Settings) -> list[str | None]:
        script = Script(lambda send: ok(KEY))
        script.run(attempts(_api.get("k", stale=True), Endpoints(endpoints), settings, lambda: 0.0, None))
        return [send.hedge for send in sends(script)]

    assert hedges([A], SETTINGS) == [None]
    assert hedges([A, B], Settings(hedge_after=None)) == [None]
    assert hedges([A, B], Settings(timeout=0.8, hedge_after=1.0)) == [None]


def test_the_hedges_answer_is_taken_and_the_silent_endpoint_not_asked_again() -> None:
    """A is silent, B answers "no leader yet" through the hedge: the round
    goes on to C, with no hedge left to send (A failed in this round, B
    answered in it)."""
    endpoints = Endpoints([A, B, C])

    def answer(send: Send) -> Reply | Failure:
        if send.url.startswith(A):
            return dataclasses.replace(NO_LEADER, hedged=True)
        return ok(KEY)

    script = Script(answer)
    value = script.run(attempts(_api.get("k", stale=False), endpoints, SETTINGS, lambda: script.now, None))
    assert value == KEY
    assert [send.url for send in sends(script)] == [f"{A}/api/kv/k", f"{C}/api/kv/k"]
    assert sends(script)[1].hedge is None
    assert endpoints.last == C


def test_a_hedged_redirect_is_followed_and_a_silent_leader_forgotten() -> None:
    """The client takes A for the leader, and A is paused: the hedge at B
    redirects to C, the new leader, which answers."""
    endpoints = Endpoints([A, B, C])
    endpoints.leader = A

    def answer(send: Send) -> Reply | Failure:
        if send.url.startswith(A):
            return Reply(307, redirect(C).headers, redirect(C).body, hedged=True)
        return ok(KEY)

    script = Script(answer)
    assert script.run(attempts(_api.get("k", stale=False), endpoints, SETTINGS, lambda: 0.0, None)) == KEY
    assert [send.url for send in sends(script)] == [f"{A}/api/kv/k", f"{C}/api/kv/k"]
    assert endpoints.leader == C


def test_a_keyed_write_whose_first_endpoint_went_silent_may_have_been_applied() -> None:
    """The silent endpoint had the write: when the rest only say "no
    leader" until the time is up, its fate is unknown (Indeterminate with
    its key), not certainly unapplied."""

    def answer(send: Send) -> Reply | Failure:
        if send.hedge is not None and send.url.startswith(A):
            return dataclasses.replace(NO_LEADER, hedged=True)
        return NO_LEADER

    script = Script(answer)
    with pytest.raises(Indeterminate) as raised:
        script.run(
            attempts(_api.put("k", "v", None), Endpoints([A, B, C]), SETTINGS, lambda: script.now, "key")
        )
    assert "no answer within 1 s" in str(raised.value)
    assert raised.value.idempotency_key == "key"


def test_when_both_fail_the_next_endpoint_is_asked() -> None:
    def answer(send: Send) -> Reply | Failure:
        if send.url.startswith(A):
            return Failure("connection lost", sent=True, hedged=True)
        return ok(KEY)

    script = Script(answer)
    value = script.run(
        attempts(_api.get("k", stale=False), Endpoints([A, B, C]), SETTINGS, lambda: 0.0, None)
    )
    assert value == KEY
    assert [send.url for send in sends(script)] == [f"{A}/api/kv/k", f"{C}/api/kv/k"]


# -- the drivers ------------------------------------------------------------------


def key_answer() -> httpx.Response:
    return httpx.Response(200, content=msgspec.json.encode(KEY))


def no_leader_answer() -> httpx.Response:
    return httpx.Response(503, content=msgspec.json.encode(schema.ErrorAnswer("no leader", "no_leader")))


def held_at_a(
    released: threading.Event,
    asked: list[str],
    at_a: Callable[[], httpx.Response],
    elsewhere: Callable[[], httpx.Response],
) -> Callable[[httpx.Request], httpx.Response]:
    """A blocking transport's handler that records each host asked: A, as
    a paused node, answers ``at_a()`` only once ``released`` is set; the
    others answer ``elsewhere()`` at once."""

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        if request.url.host == "a":
            released.wait(30)
            return at_a()
        return elsewhere()

    return handler


async def test_the_trio_client_asks_the_next_endpoint_once_the_first_is_silent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    asked: list[str] = []
    cancelled = trio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        if request.url.host == "a":
            try:
                await trio.sleep_forever()
            finally:
                cancelled.set()
        return key_answer()

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with TrioClient([A, B, C], http=http, hedge_after=1.5) as client:
        start = trio.current_time()
        assert await client.get("k") == KEY
        assert trio.current_time() - start == pytest.approx(1.5)
        assert asked == ["a", "b"] and cancelled.is_set()
        # An endpoint that answers in time is the only one asked.
        asked.clear()
        assert await client.get("k", stale=True) == KEY
        assert asked == ["b"]
    await http.aclose()


async def test_the_trio_client_waits_for_the_other_when_one_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A answers after 3 s, B (its hedge, at 1 s) fails at once: A's
    answer is the call's."""

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "b":
            raise httpx.ConnectError("refused", request=request)
        await trio.sleep(3)
        return key_answer()

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with TrioClient([A, B], http=http, hedge_after=1.0) as client:
        start = trio.current_time()
        assert await client.get("k", stale=True) == KEY
        assert trio.current_time() - start == pytest.approx(3.0)
    await http.aclose()


async def test_a_trio_hedged_call_raises_what_an_attempt_raised_as_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """What is not a node failing (the client closed under the call) comes
    out as itself, as from a call without a hedge, not in a group: from
    the first attempt, and from the hedge."""

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a":
            await trio.sleep_forever()
        raise RuntimeError("the hedge's")

    closed = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    await closed.aclose()
    async with TrioClient([A, B], http=closed) as client:
        with pytest.raises(RuntimeError, match="closed"):
            await client.get("k", stale=True)
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, TrioClient([A, B], http=http) as client:
        with pytest.raises(RuntimeError, match="the hedge's"):
            await client.get("k", stale=True)


async def test_a_trio_call_cancelled_while_its_hedge_is_out_raises_cancelled_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Both attempts hang when the caller's scope is cancelled: the call
    raises one ``trio.Cancelled``, as a call without a hedge does, so
    that ``except trio.Cancelled`` around it still runs (it raised a
    group of both attempts' Cancelled, which only Trio's cancel scopes
    took apart)."""

    async def handler(request: httpx.Request) -> httpx.Response:
        await trio.sleep_forever()
        raise AssertionError("never answered")

    caught: list[BaseException] = []
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, TrioClient([A, B], http=http, hedge_after=1.0) as client:
        with trio.move_on_after(2.0) as scope:
            try:
                await client.get("k", stale=True)
            except trio.Cancelled as cancelled:
                caught.append(cancelled)
                raise
    assert scope.cancelled_caught and len(caught) == 1


def test_a_blocking_hedged_call_raises_what_an_attempt_raised_as_itself() -> None:
    """The blocking twin: a closed client's error, and the hedge's, are
    raised, not turned into "no endpoint answered"."""
    released = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a":
            released.wait(30)
        raise RuntimeError("the hedge's")

    closed = httpx.Client(transport=httpx.MockTransport(handler))
    closed.close()
    with Client([A, B], http=closed) as client, pytest.raises(RuntimeError, match="closed"):
        client.get("k", stale=True)
    try:
        http = httpx.Client(transport=httpx.MockTransport(handler))
        with (
            http,
            Client([A, B], http=http, hedge_after=0.2) as client,
            pytest.raises(RuntimeError, match="the hedge's"),
        ):
            client.get("k", stale=True)
    finally:
        released.set()


def test_the_blocking_client_answers_from_the_hedge_while_the_first_still_hangs() -> None:
    released = threading.Event()
    asked: list[str] = []
    http = httpx.Client(
        transport=httpx.MockTransport(held_at_a(released, asked, no_leader_answer, key_answer))
    )
    try:
        with Client([A, B, C], http=http, hedge_after=0.2) as client:
            start = time.monotonic()
            assert client.get("k") == KEY
            took = time.monotonic() - start
            assert not released.is_set() and asked == ["a", "b"], asked
            assert took >= 0.2
            asked.clear()
            assert client.get("k", stale=True) == KEY  # B answered last: asked first, and in time
            assert asked == ["b"]
    finally:
        released.set()
        http.close()


async def test_a_trio_keyed_write_whose_hedge_went_out_unanswered_may_have_been_applied(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A says "no leader" only after the hedge went to B (which may have
    taken the write and not answered yet): A's answer is taken, but when
    the rest only say "no leader", the write's fate is unknown."""
    hedge_at_b = trio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a":
            await trio.sleep(1.5)
        elif request.url.host == "b" and not hedge_at_b.is_set():
            hedge_at_b.set()
            await trio.sleep_forever()
        return no_leader_answer()

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, TrioClient([A, B, C], http=http, retry=False, hedge_after=1.0) as client:
        with pytest.raises(Indeterminate) as raised:
            await client.put("k", "v", idempotency_key="key")
    assert hedge_at_b.is_set()
    assert raised.value.idempotency_key == "key"


async def test_a_trio_keyed_write_whose_hedge_never_connected_certainly_was_not_applied(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The hedge could not connect: only A had the write, and A said "no
    leader", as did the rest: certainly not applied."""
    refused = trio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a":
            await refused.wait()
        elif request.url.host == "b" and not refused.is_set():
            refused.set()
            raise httpx.ConnectError("refused", request=request)
        return no_leader_answer()

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, TrioClient([A, B, C], http=http, retry=False, hedge_after=1.0) as client:
        with pytest.raises(Unavailable):
            await client.put("k", "v", idempotency_key="key")
    assert refused.is_set()


def test_a_blocking_keyed_write_whose_hedge_failed_after_it_went_out_may_have_been_applied() -> None:
    """B's connection broke after the hedge's request went out; A then
    says "no leader": the write's fate is unknown, not certainly unapplied."""
    hedge_failed = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a":
            hedge_failed.wait(30)
        elif request.url.host == "b" and not hedge_failed.is_set():
            hedge_failed.set()
            raise httpx.ReadError("connection reset", request=request)
        return no_leader_answer()

    http = httpx.Client(transport=httpx.MockTransport(handler))
    try:
        with (
            Client([A, B, C], http=http, retry=False, hedge_after=0.2) as client,
            pytest.raises(Indeterminate) as raised,
        ):
            client.put("k", "v", idempotency_key="key")
        assert hedge_failed.is_set()
        assert raised.value.idempotency_key == "key"
    finally:
        hedge_failed.set()
        http.close()


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("REQUEST_ID", default="none")


def test_a_blocking_call_sends_its_attempts_in_the_callers_context() -> None:
    """The attempts run on the pool's threads, with the caller's context
    variables (a tracer's current span, a log's request id), as they were
    when the caller's thread sent them itself."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(REQUEST_ID.get())
        return key_answer()

    http = httpx.Client(transport=httpx.MockTransport(handler))
    try:
        with Client([A, B], http=http, hedge_after=5.0) as client:
            token = REQUEST_ID.set("r1")
            try:
                assert client.get("k", stale=True) == KEY
            finally:
                REQUEST_ID.reset(token)
        assert seen == ["r1"]
    finally:
        http.close()


def test_the_pool_reuses_an_idle_thread_starts_one_when_none_is_and_lets_idle_ones_go() -> None:
    pool = DaemonPool(idle_s=0.2)
    ran: queue.SimpleQueue[threading.Thread] = queue.SimpleQueue()
    hold = threading.Event()
    pool.submit(lambda: ran.put(threading.current_thread()))
    first = ran.get(timeout=5)
    pool.submit(lambda: ran.put(threading.current_thread()))
    assert ran.get(timeout=5) is first and first.daemon

    # A job that blocks keeps its thread: the next job gets another.
    def blocking() -> None:
        ran.put(threading.current_thread())
        hold.wait(5)

    pool.submit(blocking)
    blocked = ran.get(timeout=5)
    pool.submit(lambda: ran.put(threading.current_thread()))
    other = ran.get(timeout=5)
    assert other is not blocked
    hold.set()
    # Idle for longer than idle_s, both threads end.
    blocked.join(timeout=5)
    other.join(timeout=5)
    assert not blocked.is_alive() and not other.is_alive()


def test_a_child_of_fork_starts_its_own_threads() -> None:
    """The parent's idle thread is not in the child: a job there must
    start one, not wait on the queue for a thread that is gone."""
    pool = DaemonPool()
    done = threading.Event()
    pool.submit(done.set)
    assert done.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if the job ran
        ran = threading.Event()
        pool.submit(ran.set)
        os._exit(0 if ran.wait(5) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# -- a stream's head ----------------------------------------------------------------

CHANGE = schema.WatchChange(key="w/a", value="one", create_revision=5, mod_revision=5, version=1)
EVENTS = b"id: 5\nevent: put\ndata: " + msgspec.json.encode(CHANGE) + b"\n\n"


def events_answer() -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=EVENTS)


def first_blocking_change(handler: Callable[[httpx.Request], httpx.Response]) -> schema.WatchEvent:
    """The first change a blocking watch of ``w/`` from revision 5 gets
    from endpoints A and B that ``handler`` answers for (hedge_after 0.2 s)."""
    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as http,
        Client([A, B], http=http, hedge_after=0.2) as client,
        client.watch(prefix="w/", start_revision=5) as changes,
    ):
        return next(changes)


async def test_a_trio_watch_leaves_an_endpoint_that_sends_no_head(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A paused node never sends the watch's head: after hedge_after
    (not the stream's 15 s stall) the watch opens at the next endpoint."""
    asked: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        if request.url.host == "a":
            await trio.sleep_forever()
        return events_answer()

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, TrioClient([A, B], http=http, hedge_after=1.0) as client:
        start = trio.current_time()
        with trio.fail_after(30):  # the stream's stall is 15 s
            async with client.watch(prefix="w/", start_revision=5) as changes:
                first = await changes.__anext__()
        assert trio.current_time() - start == pytest.approx(1.0)
    assert (first.kind, first.change) == ("put", CHANGE)
    assert asked == ["a", "b"]


def test_a_blocking_watch_leaves_an_endpoint_that_sends_no_head() -> None:
    released = threading.Event()
    asked: list[str] = []
    try:
        first = first_blocking_change(held_at_a(released, asked, events_answer, events_answer))
        assert (first.kind, first.change) == ("put", CHANGE)
        assert asked == ["a", "b"] and not released.is_set()
    finally:
        released.set()


async def test_a_trio_watch_opens_where_every_head_comes_late(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Every endpoint sends the head after 1.5 s (a slow link, a TLS
    handshake across regions): the head's bound only sends the watch on
    to another endpoint, so the last one of a round is waited for, up to
    the stream's own stall, and the watch opens."""
    asked: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        await trio.sleep(1.5)
        return events_answer()

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, TrioClient([A, B], http=http, hedge_after=1.0) as client:
        start = trio.current_time()
        with trio.fail_after(30):
            async with client.watch(prefix="w/", start_revision=5) as changes:
                first = await changes.__anext__()
        assert trio.current_time() - start == pytest.approx(2.5)
    assert first.change == CHANGE
    assert asked == ["a", "b"]


def test_a_blocking_watch_opens_where_every_head_comes_late() -> None:
    asked: list[str] = []
    late = threading.Event()  # never set: each head waits out 0.3 s

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        late.wait(0.3)
        return events_answer()

    assert first_blocking_change(handler).change == CHANGE
    assert asked == ["a", "b"]


# -- a slow leader ------------------------------------------------------------------


def redirect_to_a(request: httpx.Request) -> httpx.Response:
    """A follower's answer while A leads."""
    body = {"error": "not the leader", "code": "not_leader", "leader_id": "a"}
    return httpx.Response(307, headers={"location": A + request.url.raw_path.decode()}, json=body)


async def test_a_trio_call_at_a_slow_leader_is_not_sent_back_to_it_by_its_hedge(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A answers after 1.5 s; the hedge at B (after 1 s) only redirects to
    A, where the call already waits: it is no answer, and A is not asked
    again from the start (it was, once for each endpoint, taking 3.5 s)."""
    asked: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        if request.url.host != "a":
            return redirect_to_a(request)
        await trio.sleep(1.5)  # the slow leader
        return key_answer()

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, TrioClient([A, B, C], http=http, hedge_after=1.0) as client:
        client.endpoints.leader = A
        start = trio.current_time()
        assert await client.put("k", "v") == KEY
        assert trio.current_time() - start == pytest.approx(1.5)
    assert asked == ["a", "b"]


def test_a_blocking_call_at_a_slow_leader_is_not_sent_back_to_it_by_its_hedge() -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        if request.url.host != "a":
            return redirect_to_a(request)
        time.sleep(0.6)  # the slow leader
        return key_answer()

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with http, Client([A, B, C], http=http, hedge_after=0.2) as client:
        client.endpoints.leader = A
        assert client.put("k", "v") == KEY
    assert asked == ["a", "b"]


@pytest.mark.parametrize("hedge_after", [0, -1.0, float("nan")])
def test_a_hedge_after_that_is_no_time_is_refused_when_the_client_is_made(hedge_after: float) -> None:
    with pytest.raises(ValueError, match="hedge_after must be a number of seconds above 0"):
        Client([A, B], hedge_after=hedge_after)
    with pytest.raises(ValueError, match="hedge_after must be a number of seconds above 0"):
        TrioClient([A, B], hedge_after=hedge_after)


async def test_an_answer_that_comes_as_the_hedge_is_due_is_taken_without_waiting_for_the_hedge(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A answers at the very moment the hedge is due, and B never answers:
    whichever of the two wakes first (Trio shuffles each batch), the call
    ends then. A hedge sent anyway, and not cancelled, held the call until
    its own timeout. Twenty times, for both orders."""
    asked: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        if request.url.host == "b":
            await trio.sleep_forever()
        await trio.sleep(1.0)
        return key_answer()

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, TrioClient([A, B], http=http, hedge_after=1.0) as client:
        for _ in range(20):
            start = trio.current_time()
            assert await client.get("k", stale=True) == KEY
            assert trio.current_time() - start == pytest.approx(1.0)


def test_ctrl_c_while_a_blocking_stream_head_is_awaited_leaves_nothing_open() -> None:
    """KeyboardInterrupt in the caller while A's head is late: the stream
    A then opens is closed by its thread, not left to the pool's end."""
    released, closed = threading.Event(), threading.Event()

    class Body(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield EVENTS

        def close(self) -> None:
            closed.set()

    def handler(request: httpx.Request) -> httpx.Response:
        released.wait(30)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Body())

    http = httpx.Client(transport=httpx.MockTransport(handler))
    try:
        with Client([A, B], http=http, hedge_after=5.0) as client:
            threading.Timer(0.2, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)).start()
            with pytest.raises(KeyboardInterrupt), client.watch(prefix="w/", start_revision=5) as changes:
                next(changes)
        released.set()
        assert closed.wait(5), "the late stream was left open"
    finally:
        released.set()
        http.close()
