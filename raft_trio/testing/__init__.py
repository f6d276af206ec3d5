"""Tools for testing raft-trio from the outside: checkers for histories that
black-box tests (Jepsen-style) record against a real cluster.

They live in the package, not under ``tests/``, so a test harness running
elsewhere (a container, a CI job) can import them from an installed
raft-trio.
"""

from .linearizability import (
    KeyReport,
    Kind,
    Operation,
    Outcome,
    Result,
    Status,
    Value,
    check_history,
)
from .watch_check import WatchedChange, WatchReport, check_watch

__all__ = [
    "KeyReport",
    "Kind",
    "Operation",
    "Outcome",
    "Result",
    "Status",
    "Value",
    "WatchReport",
    "WatchedChange",
    "check_history",
    "check_watch",
]
