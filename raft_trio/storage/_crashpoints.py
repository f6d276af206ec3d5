"""Named failure points for crash tests: die abruptly at a chosen moment of
a disk write.

Set ``RAFT_CRASH_POINT=<name>[:<n>]`` in a node's environment and the
process kills itself with SIGKILL (no cleanup, no flush, no ``finally``:
what ``kill -9`` does) the ``n``-th time (default the first) execution
reaches the point ``name``. The variable is read once, when this module is
imported; a name that is not one of the points below, or an ``n`` below 1,
raises ``ValueError`` then, so a typo cannot make a crash test pass
without crashing anything. When the variable is unset, each point costs one
module-level ``None`` check.

Before dying the process writes one line to stderr (the node's log):
``raft-trio: crash point <name> reached (hit <n>): SIGKILL``.

The points, in the order a write meets them:

``before_fsync``
    In :meth:`DurableStorage.write_to_disk` (every ``Ready`` the runtime
    persists: hard state, entries, an installed snapshot), after the SQL
    statements of its transaction ran, before the ``COMMIT`` that fsyncs
    the WAL. Recovery must find none of that transaction.
``after_fsync``
    In :meth:`DurableStorage.write_to_disk`, right after the ``COMMIT``
    returned: everything of that ``Ready`` is durable, nothing that
    depended on it (a vote, an acknowledgement, a client's answer) has left
    the process yet.
``before_rename``
    In :meth:`SnapshotStore.write`, once the snapshot's temporary file
    (``<index>-<term>.snap.tmp``) is written and fsynced, before it is
    renamed to its final name. Recovery removes the ``.tmp`` file.
``after_rename``
    In :meth:`SnapshotStore.write`, right after the rename, before the
    directory is fsynced and before anything points at the new file.
    Recovery removes the file nothing points at.
``before_compact_commit``
    In :meth:`DurableStorage.compact_on_disk`, with the snapshot file in
    place and the rows of the compacted prefix deleted inside the
    transaction, before its ``COMMIT``: the database still points at the
    previous snapshot and still holds the prefix.
``after_compact_commit``
    In :meth:`DurableStorage.compact_on_disk`, right after that ``COMMIT``
    returned, before the old snapshot file is pruned and the freed pages
    are given back.

Counting starts when the process starts and covers every call of the
point, from every thread. Note for the rename points: a node whose data
directory is new writes its bootstrap snapshot (index 0) on first start,
which is hit 1; each compaction and each snapshot installed from a leader
is one more.

SIGKILL of a process is not a power cut: what the process wrote reached the
kernel and survives it, fsynced or not. These points prove that a crash at
any of these moments is recovered from (no acknowledged write lost, term
and vote kept), not that the fsyncs reach the platter; that is SQLite's and
the file system's promise (``synchronous=FULL``, fsync before rename, fsync
of the directory after it).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

ENV_VAR = "RAFT_CRASH_POINT"

BEFORE_FSYNC = "before_fsync"
AFTER_FSYNC = "after_fsync"
BEFORE_RENAME = "before_rename"
AFTER_RENAME = "after_rename"
BEFORE_COMPACT_COMMIT = "before_compact_commit"
AFTER_COMPACT_COMMIT = "after_compact_commit"

POINTS = (
    BEFORE_FSYNC,
    AFTER_FSYNC,
    BEFORE_RENAME,
    AFTER_RENAME,
    BEFORE_COMPACT_COMMIT,
    AFTER_COMPACT_COMMIT,
)


def parse(value: str) -> tuple[str, int]:
    """``"<name>[:<n>]"`` -> ``(name, n)``; ``ValueError`` naming the
    problem for anything else."""
    name, sep, count = value.strip().partition(":")
    if name not in POINTS:
        raise ValueError(f"{ENV_VAR}={value!r}: unknown crash point {name!r}; known: {', '.join(POINTS)}")
    if not sep:
        return name, 1
    try:
        n = int(count)
    except ValueError:
        raise ValueError(f"{ENV_VAR}={value!r}: the count after ':' must be a whole number") from None
    if n < 1:
        raise ValueError(f"{ENV_VAR}={value!r}: the count after ':' must be at least 1")
    return name, n


class _Armed:
    """The one point this process dies at, and how often it was reached."""

    def __init__(self, name: str, at: int) -> None:
        self.name = name
        self.at = at
        self.hits = 0
        self.lock = threading.Lock()

    def reach(self, name: str) -> None:
        if name != self.name:
            return
        with self.lock:
            self.hits += 1
            if self.hits < self.at:
                return
            os.write(2, f"raft-trio: crash point {name} reached (hit {self.hits}): SIGKILL\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)
            # SIGKILL cannot be caught; should delivery lag, wait for it
            # here rather than let the write go on.
            while True:
                signal.pause()


def _from_environment() -> _Armed | None:
    """The point the environment arms. A value that names none stops the
    process at once (a crash test must not run unarmed), as a bad setting
    stops a node: one line, status 2, no traceback."""
    value = os.environ.get(ENV_VAR)
    if not value:
        return None
    try:
        return _Armed(*parse(value))
    except ValueError as error:
        print(f"raft-trio: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


#: None unless ``RAFT_CRASH_POINT`` is set: call sites test this before
#: calling :func:`reach`, so an unset variable costs one attribute check.
armed: _Armed | None = _from_environment()


def reach(name: str) -> None:
    """Execution reached the point ``name``: die if it is the armed one
    and this is the chosen hit."""
    if armed is not None:
        armed.reach(name)
