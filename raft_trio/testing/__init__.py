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

__all__ = ["KeyReport", "Kind", "Operation", "Outcome", "Result", "Status", "Value", "check_history"]
