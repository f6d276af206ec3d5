"""A watch stream's events for a revision of many changes: written in
pieces, byte for byte what one piece would have been."""

from __future__ import annotations

from raft_trio.http import coordination
from raft_trio.http.coordination import change_event, change_events
from raft_trio.kv import Change


def test_a_revision_of_many_changes_is_written_in_pieces_of_the_same_bytes() -> None:
    """A lease revoke of many keys is one revision, never split between a
    watcher's batches; encoded whole it held the loop and its memory for
    the whole of it, for each watcher."""
    per_write = coordination.WATCH_EVENTS_PER_WRITE
    changes = [Change(7, "delete", f"k/{n:05d}", None, 0, 0, "v", 3) for n in range(2 * per_write + 1)]
    pieces = list(change_events(changes, prev_value=True))
    assert [piece.count(b"\n\n") for piece in pieces] == [per_write, per_write, 1]
    assert b"".join(pieces) == b"".join(change_event(change, True) for change in changes)
    assert list(change_events([], prev_value=False)) == []
