"""How the client commands print: ``-o json`` prints the API's JSON answer
(one line), ``-o table`` aligned columns with a title row; errors go to
stderr as one line, or, with ``-o json``, the answer's JSON to stdout."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from ..client import ApiError, BadRequest
from .errors import EXIT_USAGE

#: ``kv`` prints JSON unless told otherwise (the contract's form, and what
#: scripts read), but ``kv ls`` a key a line, as ``ls`` does; ``snapshot``
#: prints JSON too (what a backup script keeps: the file's revision and
#: digest); the cluster commands and ``watch`` print tables.
DEFAULT_OUTPUT = {"kv": "json", "kv ls": "table", "snapshot": "json"}
DEFAULT_OTHERWISE = "table"


def output_for(command: str, asked: str | None) -> str:
    """``command`` is the command's words (``kv ls``)."""
    return asked or DEFAULT_OUTPUT.get(command, DEFAULT_OUTPUT.get(command.split()[0], DEFAULT_OTHERWISE))


def print_json(value: Any) -> None:
    """One value of :mod:`raft_trio.schema` (or plain JSON types) as one
    line of JSON, UTF-8 as it is (no ``\\u`` escapes) whatever the
    locale."""
    print_bytes(msgspec.json.encode(value) + b"\n")


def print_line(text: str) -> None:
    """One line, out at once (a watch's reader waits for each)."""
    print(text, flush=True)


def print_bytes(data: bytes) -> None:
    """Bytes to stdout as they are, after what was printed before.

    A write larger than a pipe holds can come back short (the reader
    closed the pipe meanwhile) without an error: the rest is written
    again, which raises ``BrokenPipeError`` then (``main`` ends quietly)."""
    sys.stdout.flush()
    rest = memoryview(data)
    while rest:
        written = sys.stdout.buffer.write(rest)
        rest = rest[written:]


#: A table's cell shows at most this many characters of a value; the
#: rest is counted (``-o json`` and ``kv get --print-value-only`` show all).
MAX_CELL_CHARS = 60
#: Characters that would break a table's line, shown escaped.
LINE_BREAKERS = {ord(c): repr(c)[1:-1] for c in "\n\r\t\v\f\x1b\x00"}


def cell(value: Any, cut: bool = True) -> str:
    if value is None or value is msgspec.UNSET:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value).translate(LINE_BREAKERS)
    if cut and len(text) > MAX_CELL_CHARS:
        rest = len(text) - MAX_CELL_CHARS
        text = f"{text[:MAX_CELL_CHARS]}... ({rest:,} more)"
    return text


def print_table(titles: Sequence[str], rows: Sequence[Sequence[Any]], cut: bool = True) -> None:
    """Aligned columns; ``cut``: values past MAX_CELL_CHARS shown in part
    (not for what is read whole, a file's path or digest)."""
    table = [list(titles), *([cell(value, cut) for value in row] for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(titles))]
    for line in table:
        print("  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip())


def show(
    output: str, answer: Any, titles: Sequence[str], rows: Sequence[Sequence[Any]], cut: bool = True
) -> None:
    """The API's answer (``-o json``), or the table made of it."""
    if output == "json":
        print_json(answer)
    else:
        print_table(titles, rows, cut)


def print_error(error: ApiError, output: str) -> int:
    """The cluster's refusal: its JSON answer (``-o json``) or one line on
    stderr; exit status 1, or 2 for input the cluster found invalid (its
    400 or 413: a usage error, as the same input caught here is)."""
    if output == "json":
        print_json(error.answer)
    else:
        print(f"raft-trio: {error.message} ({error.code})", file=sys.stderr)
    return EXIT_USAGE if isinstance(error, BadRequest) else 1
