"""A refusal by the cluster is exit status 1, except a 400 or 413: input
the cluster found invalid is a usage error (2), as the same input caught
before anything is sent is."""

from __future__ import annotations

import pytest

from raft_trio import schema
from raft_trio.cli.output import print_error
from raft_trio.client._errors import api_error


@pytest.mark.parametrize(
    ("status", "code", "exit_status"),
    [
        (400, "bad_request", 2),
        (413, "too_large", 2),
        (404, "key_not_found", 1),
        (412, "compare_failed", 1),
        (403, "permission_denied", 1),
    ],
)
def test_invalid_input_is_a_usage_error_and_a_refusal_is_1(
    capsys: pytest.CaptureFixture[str], status: int, code: str, exit_status: int
) -> None:
    error = api_error(status, schema.ErrorAnswer(f"an answer {code}", code), "http://a:9001")
    assert print_error(error, "table") == exit_status
    assert capsys.readouterr().err == f"raft-trio: an answer {code} ({code})\n"
