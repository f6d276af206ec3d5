"""The term and vote checks of the crash tests can fail: each rule of
:func:`harness.check_terms` on made-up observations (no processes)."""

from __future__ import annotations

import pytest

from .harness import TERM_GRACE_S, Seen, check_terms


def disk(at: float, term: int, vote: str | None) -> Seen:
    return Seen(at, at, term, vote, None)


def status(at: float, term: int, pid: int = 100) -> Seen:
    return Seen(at, at + 0.01, term, None, pid)


def test_a_consistent_history_passes() -> None:
    history = check_terms(
        {
            "n1": [
                status(0.0, 1),
                status(1.0, 2),
                disk(2.0, 2, "n1"),
                status(3.0, 2, pid=101),
                status(4.0, 3, pid=101),
                disk(5.0, 3, None),
                disk(6.0, 3, "n2"),  # a vote given later in the same term
            ]
        }
    )
    assert history == {"n1": [(2, "n1"), (3, None), (3, "n2")]}


@pytest.mark.parametrize(
    ("observations", "problem"),
    [
        ([disk(1.0, 3, "n1"), disk(2.0, 2, "n1")], "term on disk went back from 3 to 2"),
        ([disk(1.0, 3, "n1"), disk(2.0, 3, "n2")], "vote in term 3 changed from n1 to n2"),
        ([disk(1.0, 3, "n1"), disk(2.0, 3, None)], "vote in term 3 changed from n1 to None"),
        ([status(1.0, 4), status(2.0, 3)], "status term went back from 4 to 3"),
        ([disk(1.0, 4, "n1"), status(2.0, 3, pid=101)], "showed term 3 below the 4"),
        ([status(1.0, 5), status(1.0 + 2 * TERM_GRACE_S, 5), disk(9.0, 4, "n1")], "showed term 5 for over"),
    ],
)
def test_each_rule_catches_its_violation(observations: list[Seen], problem: str) -> None:
    with pytest.raises(AssertionError, match=problem):
        check_terms({"n1": observations})


def test_a_term_shown_only_during_its_fsync_may_be_missing_from_disk() -> None:
    # Shown once, just before the process died: the kill may have landed in
    # the fsync that was writing it, and no message of that term left.
    check_terms({"n1": [status(1.0, 4), status(1.1, 5), disk(3.0, 4, "n1")]})
