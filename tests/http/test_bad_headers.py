"""Headers are latin-1, and Python's ``str.isdigit`` is true for "²"
(byte 0xb2) while ``int("²")`` raises: a header checked that way got a 500
where bad input gets a 400 (a review's finding). So did an id of more
than 4,300 digits, which ``int`` refuses to convert."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from raft_trio.http.app import create_app
from raft_trio.node import RaftNode
from tests.http.test_answers import scope_of
from tests.node.harness import ELECTION_MAX_S, Cluster


async def test_a_last_event_id_of_superscript_digits_is_a_400(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await answers_400(leader, b"\xb2")


async def test_a_last_event_id_past_the_largest_revision_is_a_400(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    await answers_400(leader, b"9" * 5000)  # int() refuses it: was a 500
    await answers_400(leader, str(2**63).encode())  # no revision is that large


async def answers_400(leader: RaftNode, last_event_id: bytes) -> None:
    app: Any = create_app(leader)  # called as the server calls it, with raw header bytes
    scope = scope_of("GET", "/api/watch", {})
    scope["headers"] = [(b"last-event-id", last_event_id)]
    sent: list[dict[str, Any]] = []
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with trio.move_on_after(1):
        await app(scope, receive, send)
    assert sent and sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 400
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert b"Last-Event-ID must be the revision" in body
