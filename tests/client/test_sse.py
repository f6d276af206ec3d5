"""The server-sent-events line parser."""

from __future__ import annotations

from raft_trio.client.sse import SseComment, SseDropped, SseEvent, SseParser


def feed_all(parser: SseParser, lines: list[str]) -> list[object]:
    return [item for line in lines if (item := parser.feed(line)) is not None]


def test_events_comments_and_multi_line_data() -> None:
    parser = SseParser()
    lines = [
        "event: role",
        'data: {"a":',
        "data: 1}",
        "",
        ": keep-alive",
        "",
        "data: plain",
        "id: 7",
        "retry: 10",
        "",
    ]
    assert feed_all(parser, lines) == [
        SseEvent("role", '{"a":\n1}'),
        SseComment("keep-alive"),
        SseEvent("message", "plain", "7"),
    ]


def test_the_last_event_id_stays_with_later_events() -> None:
    lines = ["id: 5", "event: put", "data: {}", "", "event: put", "data: {}", "", "id: 9", "data: x", ""]
    assert [e.id for e in feed_all(SseParser(), lines) if isinstance(e, SseEvent)] == ["5", "5", "9"]


def test_an_event_without_data_is_not_dispatched() -> None:
    assert feed_all(SseParser(), ["event: role", "", ""]) == []


def test_an_oversized_event_is_dropped_whole_and_the_stream_goes_on() -> None:
    parser = SseParser(max_bytes=100)
    lines = ["event: membership", "data: " + "x" * 80, "data: " + "y" * 80, "", "event: role", "data: {}", ""]
    items = feed_all(parser, lines)
    assert isinstance(items[0], SseDropped) and items[0].name == "membership"
    assert items[1:] == [SseEvent("role", "{}")]
