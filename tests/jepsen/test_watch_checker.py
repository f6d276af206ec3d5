"""The watch checker catches what it is for: a skipped change, a repeated
one, one out of order, an acknowledged write never watched, a failed
write watched, a stream that ends elsewhere than the cluster."""

from __future__ import annotations

from raft_trio.testing import WatchedChange, check_watch


def put(revision: int, key: str, value: str, version: int) -> WatchedChange:
    return WatchedChange(revision, "put", key, value, version)


STREAM = [
    put(2, "a", "a1", 1),
    put(3, "b", "b1", 1),
    put(5, "a", "a2", 2),
    WatchedChange(6, "delete", "b", None, 0),
]
ACKED = {("a", "a1"): 2, ("b", "b1"): None, ("a", "a2"): 5}
FINAL = {"a": "a2", "b": None}


def test_a_whole_stream_passes() -> None:
    report = check_watch(STREAM, ACKED, [("a", "never")], FINAL)
    assert report.ok, report.message


def test_a_skipped_change_is_caught_by_its_version() -> None:
    stream = [put(2, "a", "a1", 1), put(7, "a", "a3", 3)]
    report = check_watch(stream, {("a", "a1"): 2}, [], {"a": "a3"})
    assert not report.ok and "skipped" in report.message


def test_a_repeated_change_is_caught() -> None:
    report = check_watch([*STREAM[:2], STREAM[1], *STREAM[2:]], ACKED, [], FINAL)
    assert not report.ok and "twice" in report.message


def test_a_change_out_of_order_is_caught() -> None:
    report = check_watch([STREAM[1], STREAM[0], *STREAM[2:]], ACKED, [], FINAL)
    assert not report.ok and "out of order" in report.message


def test_an_acknowledged_write_missing_from_the_stream_is_caught() -> None:
    report = check_watch(STREAM, {**ACKED, ("c", "c1"): None}, [], FINAL)
    assert not report.ok and "never watched" in report.message


def test_an_acknowledged_write_at_another_revision_is_caught() -> None:
    report = check_watch(STREAM, {**ACKED, ("a", "a1"): 3}, [], FINAL)
    assert not report.ok and "watched at 2" in report.message


def test_a_failed_write_in_the_stream_is_caught() -> None:
    report = check_watch(STREAM, ACKED, [("a", "a2")], FINAL)
    assert not report.ok and "failed for certain" in report.message


def test_a_stream_ending_elsewhere_than_the_cluster_is_caught() -> None:
    report = check_watch(STREAM, ACKED, [], {"a": "a2", "b": "b1"})
    assert not report.ok and "cluster holds 'b1'" in report.message
