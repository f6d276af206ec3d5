"""Tools for testing raft-trio: checkers for histories that black-box tests
(Jepsen-style) record against a real cluster; the launcher of node
processes (:mod:`.processes`, which the tests, the benches and ``raft-trio
up`` share); waits for a state no event announces (:mod:`.waiting`); a
write load (:mod:`.load`); the Ready loop for cores in memory, with a
cluster of them driven by hand (:mod:`.memory`).

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
from .memory import MemoryCluster, finish_ready, persist, take_ready
from .watch_check import WatchedChange, WatchReport, check_watch

__all__ = [
    "KeyReport",
    "Kind",
    "MemoryCluster",
    "Operation",
    "Outcome",
    "Result",
    "Status",
    "Value",
    "WatchReport",
    "WatchedChange",
    "check_history",
    "check_watch",
    "finish_ready",
    "persist",
    "take_ready",
]
