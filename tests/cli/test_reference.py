"""docs/cli.md's reference is generated from the parsers, so that it
cannot drift from the commands: every command and subcommand's
``--help``, as the parser prints it. This test fails when the page is
out of date; ``python -m tests.cli.test_reference`` rewrites it.

Also: every option and argument has a help text, and every command a
description."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from raft_monitor.__main__ import build_parser as build_monitor_parser
from raft_trio.cli import build_parser

PAGE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
BEGIN = "<!-- generated from the parsers by: python -m tests.cli.test_reference -->"
END = "<!-- end of the generated reference -->"
#: The width the reference is written at, whatever the terminal's.
WIDTH = 100
#: argparse's layout of a help text changes between Python versions; the
#: page is written by this one.
PYTHON = (3, 11)


def commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The parser and every subcommand's, depth first, in the order of
    the parser's list."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from commands(sub)


def fixed_width_help(parser: argparse.ArgumentParser) -> str:
    """The parser's help with its own formatter (a raw description stays
    raw), at the reference's width."""
    own = cast(type[argparse.HelpFormatter], parser.formatter_class)
    parser.formatter_class = functools.partial(own, width=WIDTH)
    return parser.format_help().rstrip()


def reference() -> str:
    sections = [
        "## Reference",
        "",
        "Every command's `--help`, generated from the parsers.",
    ]
    for top in (build_parser(), build_monitor_parser()):
        for parser in commands(top):
            sections += ["", f"### `{parser.prog}`", "", "```text", fixed_width_help(parser), "```"]
    return "\n".join(sections) + "\n"


def page_with(text: str, generated: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{generated}{END}{tail}"


@pytest.mark.skipif(sys.version_info[:2] != PYTHON, reason=f"the page is written by Python {PYTHON}")
def test_the_cli_reference_is_up_to_date() -> None:
    text = PAGE.read_text()
    assert BEGIN in text and END in text, f"{PAGE} lacks the markers of its generated part"
    assert text == page_with(text, reference()), (
        f"{PAGE} is out of date: run python -m tests.cli.test_reference"
    )


def test_every_option_and_command_says_what_it_is() -> None:
    missing = []
    for top in (build_parser(), build_monitor_parser()):
        for parser in commands(top):
            if not parser.description:
                missing.append(f"{parser.prog}: no description")
            missing.extend(
                f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
                for action in parser._actions
                if action.help is None and not isinstance(action, argparse._SubParsersAction)
            )
    assert not missing, missing


def main() -> None:
    PAGE.write_text(page_with(PAGE.read_text(), reference()))
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
