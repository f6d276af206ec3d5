"""Tools for testing raft-trio from the outside: checkers for histories that
black-box tests (Jepsen-style) record against a real cluster; the launcher
of node processes (:mod:`.processes`, which the tests, the benches and
``raft-trio up`` share); waits for a state no event announces
(:mod:`.waiting`); a write load (:mod:`.load`).

They live in the package, not under ``tests/``, so a test harness running
elsewhere (a container, a CI job) can import them from an installed
raft-trio. The checkers are imported here; the other modules are imported
by name (the launcher loads the client and Trio).
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
