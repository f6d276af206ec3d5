"""Keys, names and values are text: an argument that is not UTF-8 (a
shell passes bytes; Python holds the bad ones as lone surrogates) is a
usage error naming it, before any cluster is asked, never a traceback."""

from __future__ import annotations

import pytest

from raft_trio.cli import main

#: ``printf '\xff'`` as Python's argv holds it.
NOT_UTF8 = b"a\xffb".decode("utf-8", "surrogateescape")
#: An endpoint nobody listens at: a command that got as far as asking it
#: would say "no cluster node answered".
NOBODY = "--endpoints=http://127.0.0.1:9"


@pytest.mark.parametrize(
    "line",
    [
        ["kv", "get", NOT_UTF8],
        ["kv", "put", NOT_UTF8, "v"],
        ["kv", "del", NOT_UTF8],
        ["kv", "cas", "k", NOT_UTF8, "new"],
        ["kv", "get", "--prefix", NOT_UTF8],
        ["kv", "ls", NOT_UTF8],
        ["watch", NOT_UTF8],
        ["user", "get", NOT_UTF8],
        ["members", "remove", NOT_UTF8],
        ["transfer-leader", "--to", NOT_UTF8],
        ["lock", NOT_UTF8, "--", "true"],
    ],
)
def test_an_argument_that_is_not_utf8_is_a_usage_error(
    line: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*line, NOBODY])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err == "raft-trio: argument 'a\\xffb' is not UTF-8 text (keys, names and values are text)\n"


def test_the_command_a_lock_runs_may_take_any_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    """What follows ``--`` is the command's own, a file name perhaps:
    passed on as it is, not checked."""
    with pytest.raises(SystemExit) as exited:
        main(["lock", "name", "--ttl", "0", NOBODY, "--", "cat", NOT_UTF8])
    assert exited.value.code == 2
    assert "not UTF-8" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "line",
    [
        ["kv", "get", "k", "--user", "u:" + NOT_UTF8],
        ["kv", "get", "k", "--user=u:" + NOT_UTF8],
        ["user", "add", "u", "--password", NOT_UTF8],
    ],
)
def test_a_password_that_is_not_utf8_is_refused_without_showing_it(
    line: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*line, NOBODY])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.endswith(" is not UTF-8 text (keys, names and values are text)\n")
    assert err.startswith("raft-trio: the value of --") and "xff" not in err
