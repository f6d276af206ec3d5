"""The space guard: writes are refused before the disk is full, not
crashed into.

etcd's habit, with free space as the measure. A node needs room on its
data directory's file system for three things besides what it holds:

- a *reserve* the operator sets (``--disk-reserve-bytes`` /
  ``RAFT_DISK_RESERVE_BYTES``; default the smaller of 256 MiB and a tenth
  of the file system), the margin nothing is planned for;
- the next snapshot file, about the size of the key-value state
  (compaction writes it before the older files go: without room for it the
  log could never be compacted again);
- the WAL's growth between checkpoints, and its copy into the database
  while a checkpoint runs (``WAL_HEADROOM_BYTES``, 8 MiB).

While any member has less free space than that, it raises its NOSPACE
alarm (``"alarms": ["NOSPACE"]`` in its ``/api/status``) and the leader
refuses new values (``PUT``, compare-and-set, a transaction that puts)
with a definite ``507`` that changes nothing. Each member tells the others
its alarms on its peer streams (the first frame of each stream, and again
whenever they change: :class:`raft_trio.peer.wire.PeerReport`), so every
node knows every member's alarm without asking; the leader also measures
its own disk for every new value. Everything that needs little
space or gives it back goes on: reads, status, ``/metrics``, deletes,
leases, membership changes, and compaction, which
the runtime runs early while space is short, so that deletes give their
space back. An alarm clears once free space is back above what is needed
by an eighth of the reserve, so that it does not flap.

A write that still meets a full disk (another process filled it, or the
limits were set to nothing) fails with ENOSPC, and the node stops with one
line and exit status 73 (:class:`raft_trio.storage.DiskFull`), never
acknowledging that write.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

#: The default reserve: a tenth of the file system, at most this much.
DEFAULT_RESERVE_MAX_BYTES = 256 << 20
DEFAULT_RESERVE_FRACTION = 0.10
NOSPACE = "NOSPACE"
#: A node measures again after writing an eighth of its reserve, and no
#: sooner than this many bytes (see :meth:`SpaceGuard.wrote`).
MEASURE_AFTER_MIN_BYTES = 64 << 10

StatVfs = Callable[[str | os.PathLike[str]], os.statvfs_result]


def mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


class SpaceGuard:
    """Free space of one data directory's file system against its reserve,
    and the alarms the followers reported (kept by the leader)."""

    def __init__(
        self, path: str | os.PathLike[str], reserve_bytes: int | None = None, statvfs: StatVfs = os.statvfs
    ) -> None:
        self.path = Path(path)
        self._statvfs = statvfs
        if reserve_bytes is None:
            stat = statvfs(self.path)
            size = stat.f_blocks * stat.f_frsize
            reserve_bytes = min(DEFAULT_RESERVE_MAX_BYTES, int(size * DEFAULT_RESERVE_FRACTION))
        if reserve_bytes < 0:
            raise ValueError("the disk reserve must not be negative")
        self.reserve = reserve_bytes
        #: Bytes needed besides the reserve: the next snapshot and the WAL
        #: (the runtime sets it; see the module's documentation).
        self.headroom: Callable[[], int] = lambda: 0
        #: This node's alarm: free space fell below what it needs
        #: (:meth:`needed`: the reserve and room for the next snapshot).
        self.alarm = False
        #: The alarm as its peers, metrics and log were last told it
        #: (:func:`raft_trio.node.disk_watch.tell_if_changed`).
        self.told = False
        #: Member id -> why, for the other members that report an alarm on
        #: their streams (one whose stream broke keeps the alarm it last
        #: reported: it may have stopped for want of space).
        self.peer_alarms: dict[str, str] = {}
        #: Bytes this node wrote since it last measured (see :meth:`wrote`).
        self._written = 0
        self.free = self.free_bytes()
        self.refresh()

    def wrote(self, size: int) -> bool:
        """This node wrote ``size`` bytes of entries; once an eighth of the
        reserve (64 KiB at least) came since the last measure, measure
        again. Returns whether it measured. The disk watch measures
        once a second, and a follower fed large values as fast as they
        come can write more than its reserve in that second: on a small
        file system it met a full disk and stopped, its alarm never told."""
        self._written += size
        if self._written < max(self.reserve // 8, MEASURE_AFTER_MIN_BYTES):
            return False
        self.refresh()
        return True

    def free_bytes(self) -> int:
        """Bytes an unprivileged writer may still use (``f_bavail``)."""
        stat = self._statvfs(self.path)
        return stat.f_bavail * stat.f_frsize

    def needed(self) -> int:
        """Free bytes below which the alarm is raised."""
        return self.reserve + self.headroom()

    def refresh(self) -> bool:
        """Measure free space again and raise or clear the alarm; returns it."""
        self._written = 0
        self.free = self.free_bytes()
        needed = self.needed()
        if self.alarm:
            self.alarm = self.free < needed + self.reserve // 8
        else:
            self.alarm = self.free < needed
        return self.alarm

    def peer_reported(self, member: str, alarms: tuple[str, ...]) -> None:
        """``member`` reported its alarms."""
        if NOSPACE in alarms:
            self.peer_alarms[member] = (
                "NOSPACE alarm: free space below its reserve and the room its next snapshot needs"
            )
        else:
            self.peer_alarms.pop(member, None)

    def keep_members(self, members: set[str]) -> None:
        """Forget the alarms of members no longer in the configuration."""
        for member in [m for m in self.peer_alarms if m not in members]:
            del self.peer_alarms[member]

    def alarms(self) -> list[str]:
        """This node's alarms, as ``/api/status`` reports them."""
        return [NOSPACE] if self.alarm else []

    def refusal(self, size: int) -> str | None:
        """Why a new value of ``size`` bytes is refused now, or None. Each
        call measures free space again (a ``statvfs``, a few microseconds),
        so a burst of large values cannot run through the reserve between
        two periodic checks."""
        self.refresh()
        needed = self.needed()
        if self.alarm or self.free - size < needed:
            return (
                f"insufficient storage: {mib(self.free)} free on {self.path}, below the {mib(needed)} "
                f"needed (a reserve of {mib(self.reserve)}, room for the next snapshot and the WAL); "
                "new values are refused until space is freed (reads, deletes and compaction go on)"
            )
        if self.peer_alarms:
            member, why = sorted(self.peer_alarms.items())[0]
            return (
                f"insufficient storage on member {member} ({why}); new values are refused until "
                "space is freed there (reads, deletes and compaction go on)"
            )
        return None
