"""The line of ``raft-trio lock`` and ``raft-trio elect``: the command to
run is everything after the first ``--`` (its own ``--`` and flags
included), other subcommands keep their ``--``, and settings that cannot
work are refused before anything is asked of a cluster."""

from __future__ import annotations

import pytest

from raft_trio.cli import build_parser, main
from raft_trio.cli.argv import extract_globals
from raft_trio.cli.errors import UsageError
from raft_trio.cli.lock import DEFAULT_GRACE_S, DEFAULT_TTL_S, hold_settings, take_command


def parsed(*line: str) -> tuple[object, list[str] | None]:
    rest, _ = extract_globals(list(line))
    rest, command = take_command(rest)
    return build_parser().parse_args(rest), command


def test_the_command_is_everything_after_the_first_double_dash() -> None:
    args, command = parsed("lock", "jobs/x", "--ttl", "5", "--", "git", "log", "--ttl", "--", "-o", "json")
    assert command == ["git", "log", "--ttl", "--", "-o", "json"]
    hold = hold_settings(args, command)  # type: ignore[arg-type]
    assert (hold.verb, hold.name, hold.ttl, hold.grace) == ("lock", "jobs/x", 5, DEFAULT_GRACE_S)


def test_flags_of_raft_trio_may_stand_before_the_double_dash_only() -> None:
    rest, options = extract_globals(
        ["--endpoints", "http://a:1", "elect", "e", "-o", "json", "--", "x", "-o", "table"]
    )
    assert options.endpoints == ["http://a:1"] and options.output == "json"
    assert take_command(rest) == (["elect", "e"], ["x", "-o", "table"])


def test_other_commands_keep_their_double_dash() -> None:
    assert take_command(["kv", "put", "k", "--", "-v"]) == (["kv", "put", "k", "--", "-v"], None)


def test_defaults_and_elect_settings() -> None:
    args, command = parsed("elect", "svc", "--proposal", "host-a:8080")
    hold = hold_settings(args, command)  # type: ignore[arg-type]
    assert (hold.verb, hold.proposal, hold.listen, hold.command, hold.ttl) == (
        "elect", "host-a:8080", False, None, DEFAULT_TTL_S
    )  # fmt: skip


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (["lock", "x", "--ttl", "0", "--", "true"], "--ttl must be at least 1"),
        (["lock", "x", "--grace", "10", "--", "true"], "--grace must be at least 0 and less than --ttl (10)"),
        (["lock", "x", "--grace", "-1", "--", "true"], "--grace must be at least 0"),
        (["lock", "x", "--"], "nothing to run after --"),
        (["lock", "///", "--", "true"], "the lock name is empty"),
        (["lock", "x" * 1100, "--", "true"], "the lock name is too long"),
        (["elect", "x", "--listen", "--", "true"], "elect --listen runs no command"),
        (["elect", "x", "--listen", "--proposal", "me"], "elect --listen does not campaign: --proposal"),
    ],
)
def test_settings_that_cannot_work_are_refused(line: list[str], message: str) -> None:
    args, command = parsed(*line)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        hold_settings(args, command)  # type: ignore[arg-type]


def test_help_names_the_environment_and_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("lock", "elect"):
        with pytest.raises(SystemExit) as shown:
            main([command, "--help"])
        assert shown.value.code == 0
        text = capsys.readouterr().out
        assert "RAFT_FENCING_TOKEN" in text and "exit status:" in text and "--grace S" in text
