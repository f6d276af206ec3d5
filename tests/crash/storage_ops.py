"""A fixed sequence of storage writes, run by a child process that a crash
point kills part way (``python -m tests.crash.storage_ops DIR``), and
replayed on the in-memory model by the test to know what must survive.

The child prints ``done <i>`` after operation ``i`` returned, so the test
knows which operation was in progress when the process died.

Which hit of each crash point lands in which operation:

- write points (``before_fsync``/``after_fsync``): hit ``k`` is the ``k``-th
  ``persist`` (operations 1, 2, 4, 5, 7, 8, 9: seven hits; the first six
  append after the last entry, the seventh overwrites a suffix);
- rename points: hit 1 is the bootstrap snapshot written by ``open``
  (operation 0), hits 2 and 3 the two compactions (operations 3 and 6);
- compaction points: hits 1 and 2 are the two compactions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from raft_trio.core import Entry, EntryKind, HardState, MemoryStorage, Snapshot, SnapshotMeta
from raft_trio.storage import DurableStorage

from ..storage.helpers import INITIAL, MEMBERSHIP, open_storage

Storage = MemoryStorage | DurableStorage
Op = tuple[str, Callable[[Storage], None]]


def _entries(lo: int, hi: int, term: int) -> list[Entry]:
    return [Entry(i, term, EntryKind.NORMAL, f"put key-{i} term {term}".encode()) for i in range(lo, hi)]


def _persist(batch: int) -> Op:
    """Batch ``k``: entries 10(k-1)+1 .. 10k in term k, and the hard state
    term k, vote n2, commit at the end of the previous batch."""
    lo, hi = 10 * (batch - 1) + 1, 10 * batch + 1

    def apply(storage: Storage) -> None:
        hard_state = HardState(term=batch, vote="n2", commit=lo - 1)
        if isinstance(storage, DurableStorage):  # one transaction: one hit of a write point
            storage.persist(hard_state, _entries(lo, hi, batch))
        else:
            storage.set_hard_state(hard_state)
            storage.append(_entries(lo, hi, batch))

    return f"persist batch {batch}", apply


def _overwrite() -> Op:
    """A new leader's entries 55..57 in term 7 replace 55..60 (batch 6's
    tail, never committed): the write that must DELETE the old suffix."""

    def apply(storage: Storage) -> None:
        hard_state = HardState(term=7, vote="n3", commit=50)
        if isinstance(storage, DurableStorage):
            storage.persist(hard_state, _entries(55, 58, 7))
        else:
            storage.set_hard_state(hard_state)
            storage.append(_entries(55, 58, 7))

    return "overwrite 55.. in term 7", apply


def _compact(index: int) -> Op:
    def apply(storage: Storage) -> None:
        storage.compact(Snapshot(SnapshotMeta(index, storage.term(index), MEMBERSHIP), b"state %d" % index))

    return f"compact at {index}", apply


#: Operation 0 is opening the directory (bootstrap snapshot); these follow.
OPS: list[Op] = [
    _persist(1),
    _persist(2),
    _compact(15),
    _persist(3),
    _persist(4),
    _compact(35),
    _persist(5),
    _persist(6),
    _overwrite(),
]


def model(completed: int) -> MemoryStorage:
    """The in-memory storage after operations 1..``completed``."""
    storage = MemoryStorage(INITIAL)
    for _, apply in OPS[:completed]:
        apply(storage)
    return storage


def main(path: str) -> None:
    storage = open_storage(Path(path))
    print("done 0", flush=True)
    for i, (_, apply) in enumerate(OPS, start=1):
        apply(storage)
        print(f"done {i}", flush=True)
    storage.close()
    print("finished", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
