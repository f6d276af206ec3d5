"""Tools for testing raft-trio: checkers for histories that black-box tests
(Jepsen-style) record against a real cluster, and the Ready loop for cores
in memory, with a cluster of them driven by hand (:mod:`.memory`).

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
