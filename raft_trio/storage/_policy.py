"""When to take a snapshot: the log is compacted once it holds too many
entries or too many bytes after the last snapshot.

Both limits bound something real: entries bound the time a restarted node
spends loading and the core spends scanning configuration entries; bytes
bound the memory of the entry cache (every entry after the snapshot is held
in memory, see :mod:`._durable`) and the disk. The snapshot itself is taken
by the state machine's owner (the runtime); storage only says it is due.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SnapshotPolicy:
    #: Take a snapshot once more than this many entries follow the last one.
    #: A follower that falls further behind than this gets a snapshot
    #: instead of entries, so it also trades replication cost for disk.
    max_entries: int = 10_000
    #: ... or once the entries after it hold more than this many bytes of
    #: data (``Entry.size()``): the cache's memory bound.
    max_bytes: int = 64 << 20

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first setting that cannot work."""
        if self.max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if self.max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")

    def due(self, entries: int, size: int) -> bool:
        """Whether a log of ``entries`` entries and ``size`` bytes after its
        snapshot should be compacted."""
        return entries > self.max_entries or size > self.max_bytes
