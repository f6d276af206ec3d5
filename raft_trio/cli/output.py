"""How the client commands print: ``-o json`` prints the API's JSON answer
(one line), ``-o table`` aligned columns with a title row; errors go to
stderr as one line, or, with ``-o json``, the answer's JSON to stdout."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from ..client import ApiError

#: ``kv`` prints JSON unless told otherwise (the contract's form, and what
#: scripts read); the cluster commands print tables.
DEFAULT_OUTPUT = {"kv": "json"}
DEFAULT_OTHERWISE = "table"


def output_for(command: str, asked: str | None) -> str:
    return asked or DEFAULT_OUTPUT.get(command, DEFAULT_OTHERWISE)


def print_json(value: Any) -> None:
    """One value of :mod:`raft_trio.schema` (or plain JSON types) as one
    line of JSON, UTF-8 as it is (no ``\\u`` escapes)."""
    print(msgspec.json.encode(value).decode())


def cell(value: Any) -> str:
    if value is None or value is msgspec.UNSET:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def print_table(titles: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = [list(titles), *([cell(value) for value in row] for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(titles))]
    for line in table:
        print("  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip())


def show(output: str, answer: Any, titles: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """The API's answer (``-o json``), or the table made of it."""
    if output == "json":
        print_json(answer)
    else:
        print_table(titles, rows)


def print_error(error: ApiError, output: str) -> int:
    """The cluster's refusal: its JSON answer (``-o json``) or one line on
    stderr; exit status 1."""
    if output == "json":
        print_json(error.answer)
    else:
        print(f"raft-trio: {error.message} ({error.code})", file=sys.stderr)
    return 1
