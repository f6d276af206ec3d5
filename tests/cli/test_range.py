"""``kv get --prefix`` and ``kv ls`` read a range page by page and print
it as one answer: every key once, in order, ``--limit`` honoured across
pages, ``revision`` the first page's and ``more`` the last's."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from raft_trio import schema
from raft_trio.cli import client_commands
from raft_trio.client import Client

KEYS = [f"k{i:03d}" for i in range(25)]


class PagedCluster:
    """Answers ``range`` as a node does, ``page`` keys at most a page,
    one revision more on each page (writes in between)."""

    def __init__(self, page: int) -> None:
        self.page = page
        self.asked: list[tuple[int | None, str | None]] = []

    def range(
        self, prefix: str, *, limit: int | None, after: str | None, keys_only: bool, stale: bool
    ) -> Any:
        self.asked.append((limit, after))
        rest = [key for key in KEYS if key.startswith(prefix) and (after is None or key > after)]
        size = min(limit or self.page, self.page)
        items = [
            schema.RangeItem(key, 1, 1, 1, value=schema.UNSET if keys_only else f"v-{key}")
            for key in rest[:size]
        ]
        return schema.RangeAnswer(
            items, count=len(rest), more=len(rest) > size, revision=100 + len(self.asked)
        )


def run(cluster: PagedCluster, capsys: pytest.CaptureFixture[str], **options: Any) -> dict[str, Any]:
    options = {"prefix": "k", "limit": None, "keys_only": False, "stale": False} | options
    client_commands.show_range(
        cast(Client, cluster), "json", options.pop("prefix"), options.pop("limit"), **options
    )
    answer: dict[str, Any] = json.loads(capsys.readouterr().out)
    return answer


def test_every_page_is_read_and_printed_as_one_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(client_commands, "RANGE_PAGE_KEYS", 10)
    cluster = PagedCluster(page=10)
    answer = run(cluster, capsys)
    assert [item["key"] for item in answer["kvs"]] == KEYS
    assert (answer["count"], answer["more"], answer["revision"]) == (25, False, 101)
    assert cluster.asked == [(10, None), (10, "k009"), (10, "k019")]


def test_a_limit_stops_across_pages_and_says_more(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(client_commands, "RANGE_PAGE_KEYS", 10)
    cluster = PagedCluster(page=4)  # the node ends pages early (its byte bound)
    answer = run(cluster, capsys, limit=13, keys_only=True)
    assert [item["key"] for item in answer["kvs"]] == KEYS[:13]
    assert answer["more"] and all("value" not in item for item in answer["kvs"])
    assert cluster.asked == [(10, None), (9, "k003"), (5, "k007"), (1, "k011")]


@pytest.mark.parametrize("listing", [False, True], ids=["kv get --prefix", "kv ls"])
def test_a_table_cut_by_limit_says_so_on_stderr(capsys: pytest.CaptureFixture[str], listing: bool) -> None:
    """The JSON answer carries ``more``; the table showed only the keys,
    as if there were no others (a review of the CLI as a new user). A line
    on stderr says how many were shown of how many; stdout keeps only the
    keys. A range that is not cut says nothing more."""
    client_commands.show_range(
        cast(Client, PagedCluster(page=10)), "table", "k", 5, keys_only=True, stale=False, listing=listing
    )
    shown = capsys.readouterr()
    assert shown.err == "(5 of 25 keys shown: --limit 5)\n"
    assert "k004" in shown.out and "k005" not in shown.out and "shown" not in shown.out
    client_commands.show_range(
        cast(Client, PagedCluster(page=10)),
        "table",
        "k01",
        None,
        keys_only=True,
        stale=False,
        listing=listing,
    )
    assert capsys.readouterr().err == ""
