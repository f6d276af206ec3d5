"""A watch's cursor: it resumes from the revision before the last one it
delivered and skips what it delivered, so that a reconnect (even in the
middle of a transaction's changes) loses and repeats nothing."""

from __future__ import annotations

import json

import pytest

from raft_trio import schema
from raft_trio.client import Compacted
from raft_trio.client._watch import WatchCursor, why_refused
from raft_trio.client.sse import SseComment, SseEvent


def change(key: str, revision: int, kind: str = "put") -> SseEvent:
    data = {"key": key, "create_revision": revision, "mod_revision": revision, "version": 1}
    if kind == "put":
        data["value"] = f"{key}@{revision}"
    return SseEvent(kind, json.dumps(data), str(revision))


def delivered(cursor: WatchCursor, items: list[SseEvent]) -> list[tuple[str, int]]:
    events = [cursor.accept(item) for item in items]
    return [(e.change.key, e.revision) for e in events if e is not None]


def test_the_first_request_starts_where_asked_and_later_ones_resume() -> None:
    cursor = WatchCursor(prefix="jobs/", start_revision=5, prev_value=True)
    assert cursor.target("/api") == "/api/watch?prefix=jobs%2F&start_revision=5&prev_value=true"
    assert "Last-Event-ID" not in cursor.headers()
    assert delivered(cursor, [change("jobs/a", 5), change("jobs/b", 8)]) == [("jobs/a", 5), ("jobs/b", 8)]
    assert cursor.target("/api") == "/api/watch?prefix=jobs%2F&prev_value=true"
    assert cursor.headers()["Last-Event-ID"] == "7"


def test_a_transaction_cut_in_the_middle_is_finished_without_repeats() -> None:
    cursor = WatchCursor(prefix="")
    # Revision 9 changed a, b and c; the connection broke after b.
    assert delivered(cursor, [change("x", 8), change("a", 9), change("b", 9)]) == [
        ("x", 8),
        ("a", 9),
        ("b", 9),
    ]
    assert cursor.headers()["Last-Event-ID"] == "8"
    # The next node sends revision 9 whole, then goes on.
    again = [change("a", 9), change("b", 9, "delete"), change("c", 9), change("a", 10)]
    assert delivered(cursor, again) == [("c", 9), ("a", 10)]


def test_comments_and_unknown_events_deliver_nothing() -> None:
    cursor = WatchCursor(key="k")
    assert cursor.accept(SseComment("keep-alive")) is None
    assert cursor.accept(SseEvent("hello", "{}")) is None
    assert cursor.accept(None) is None


def test_a_watcher_that_fell_behind_is_told_with_the_oldest_revision() -> None:
    cursor = WatchCursor(key="k")
    data = json.dumps({"error": "no longer kept", "code": "compacted", "compact_revision": 42})
    with pytest.raises(Compacted) as raised:
        cursor.accept(SseEvent("error", data))
    assert raised.value.compact_revision == 42


def test_a_delete_event_has_no_value() -> None:
    event = WatchCursor(key="k").accept(change("k", 3, "delete"))
    assert event == schema.WatchEvent(
        "delete", schema.WatchChange(key="k", create_revision=3, mod_revision=3, version=1)
    )
    assert event.change.value is schema.UNSET


def test_a_key_and_a_prefix_together_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        WatchCursor(key="k", prefix="p")


def test_an_endpoint_that_is_not_a_node_sends_the_watch_to_the_next() -> None:
    """``raft-trio watch`` with the monitor's port first in --endpoints
    stopped at its 404 page; a node's own 404 still ends the watch."""
    cursor = WatchCursor(key="k")
    page = cursor.refused(404, b"<html><h1>Not Found</h1></html>", "http://a:8000")
    assert cursor.may_retry(page)
    node_says = json.dumps({"error": "no such endpoint", "code": "not_found"}).encode()
    assert not cursor.may_retry(cursor.refused(404, node_says, "http://a:9001"))
    assert why_refused(page) == "HTTP 404 that is not a raft-trio node's answer"
