"""A node that keeps asking to join a cluster that refuses it logs each
reason once, then again only after 30 s, with a count of the repeats
(raft_trio.discovery._quiet)."""

from __future__ import annotations

import logging

import pytest

from raft_trio.core import Membership, Snapshot, SnapshotMeta
from raft_trio.discovery import request_membership
from raft_trio.discovery._quiet import QuietRepeats
from raft_trio.node import RaftNode, Timing
from tests.discovery.test_join_term import _Cluster
from tests.node.harness import MemoryNodeStorage


def record(message: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("raft_trio.discovery.join", level, __file__, 1, message, (), None)


def test_a_repeat_is_held_for_the_window_then_passes_with_its_count() -> None:
    now = [0.0]
    quiet = QuietRepeats(window=30.0, clock=lambda: now[0])
    assert quiet.filter(record("join: refused: 401"))
    for now[0] in (1.0, 10.0, 29.0):
        assert not quiet.filter(record("join: refused: 401"))
    assert quiet.filter(record("join: cannot connect"))  # another reason passes
    assert quiet.filter(record("joined", logging.INFO)) and quiet.filter(record("joined", logging.INFO))
    now[0] = 31.0
    again = record("join: refused: 401")
    assert quiet.filter(again)
    assert again.getMessage() == "join: refused: 401 (3 more like it in 31 s)"
    now[0] = 32.0
    assert not quiet.filter(record("join: refused: 401"))


def test_many_reasons_are_not_kept_for_ever() -> None:
    now = [0.0]
    quiet = QuietRepeats(window=30.0, clock=lambda: now[0])
    for i in range(200):
        now[0] = i * 10.0
        assert quiet.filter(record(f"join: reason {i}"))
    assert len(quiet._seen) <= 65


async def test_a_join_refused_again_and_again_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="raft_trio")
    storage = MemoryNodeStorage(Snapshot(SnapshotMeta(0, 0, Membership())))
    node = RaftNode("n4", "http://n4:9001", storage, Timing(), seed=1)
    cluster = _Cluster()
    url = "http://quiet-repeats:9001"  # a message of this test's own: the filter outlives tests
    for _ in range(5):
        assert not await request_membership(cluster, url, node)  # type: ignore[arg-type]
    assert [r.getMessage() for r in caplog.records] == [f"join: {url}: the leader is busy"]
