"""A call's ``timeout`` is its whole budget, retries included: also the
login again and the second try after a 401 (a stale token)."""

from __future__ import annotations

import httpx
import msgspec
import pytest
import trio
import trio.testing

from raft_trio import schema
from raft_trio.client import Client, TrioClient, Unavailable
from raft_trio.client._calls import Settings

A = "http://a:9001"
TIMEOUT = 2.0
#: Until then the cluster has no leader; then its nodes restarted with a
#: new secret, so the token held is refused.
RESTARTED_AT = 1.5


def answer(request: httpx.Request, now: float) -> httpx.Response:
    if request.url.path == "/api/auth/token":
        return httpx.Response(200, content=msgspec.json.encode(schema.TokenAnswer("new", 300)))
    if now >= RESTARTED_AT and request.headers.get("authorization") == "Bearer old":
        refused = schema.ErrorAnswer("the token is not valid", "unauthorized")
        return httpx.Response(401, content=msgspec.json.encode(refused))
    no_leader = schema.UnavailableAnswer("no leader", "no_leader", False)
    return httpx.Response(503, content=msgspec.json.encode(no_leader))


def test_the_trio_client_s_retry_after_a_401_stays_within_the_call_s_timeout() -> None:
    async def main() -> float:
        async def handler(request: httpx.Request) -> httpx.Response:
            await trio.sleep(0.001)
            return answer(request, trio.current_time())

        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        client = TrioClient([A], timeout=TIMEOUT, user="alice", password="pw", http=http)
        client._keeper.store(schema.TokenAnswer("old", 300), trio.current_time())  # type: ignore[union-attr]
        started = trio.current_time()
        with pytest.raises(Unavailable):
            await client.put("k", "v")
        return trio.current_time() - started

    took = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert took <= TIMEOUT + 0.01


def test_the_blocking_client_s_retry_after_a_401_stays_within_the_call_s_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr("raft_trio.client._sync.time.monotonic", lambda: now[0])
    monkeypatch.setattr(
        "raft_trio.client._sync.time.sleep", lambda seconds: now.__setitem__(0, now[0] + seconds)
    )

    def handler(request: httpx.Request) -> httpx.Response:
        now[0] += 0.001
        return answer(request, now[0] - 1000.0)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = Client([A], timeout=TIMEOUT, user="alice", password="pw", http=http)
    client._keeper.store(schema.TokenAnswer("old", 300), now[0])  # type: ignore[union-attr]
    with pytest.raises(Unavailable):
        client.put("k", "v")
    assert now[0] - 1000.0 <= TIMEOUT + 0.01


def test_the_trio_client_s_attempt_ends_at_its_timeout_whatever_the_node_sends() -> None:
    """httpx bounds each read alone: a node answering a byte at a time (or
    a transport with no timeouts at all, as here) kept a call going far
    past its timeout. An attempt is now bounded as a whole, and a read,
    safe to repeat, then goes on to the next endpoint."""
    b = "http://b:9001"

    async def main() -> tuple[object, float]:
        async def handler(request: httpx.Request) -> httpx.Response:
            if request.url.host == "a":
                await trio.sleep(3600)  # trickling for an hour
            return httpx.Response(200, content=msgspec.json.encode(schema.KeyAnswer("k", "v", 7, 7, 7, 1)))

        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        client = TrioClient([A, b], timeout=30.0, http=http)
        started = trio.current_time()
        answer = await client.get("k")
        return answer, trio.current_time() - started

    answer, took = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert isinstance(answer, schema.KeyAnswer) and answer.value == "v"
    assert took <= Settings().attempt_timeout + 0.01
