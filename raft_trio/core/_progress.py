"""What a leader knows about each follower's log (as etcd's ``tracker/``).

Invariant: ``0 <= match < next``. ``match`` is the highest index known to be
durable on the follower and equal to the leader's; ``next`` is the next index
to send.

States:
- PROBE: we do not know where the follower's log diverges; send one
  AppendEntries at a time and wait for the answer (or a heartbeat answer)
  before sending another.
- REPLICATE: the follower is in step; send optimistically, advancing
  ``next`` past what was sent, with at most ``max_inflight`` messages
  unacknowledged (pipelining, §10.2.2).
- SNAPSHOT: the follower needs entries we compacted; an InstallSnapshot is
  on its way and nothing else is sent until it is acknowledged.
"""

from __future__ import annotations

import collections
import enum


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Inflights:
    """The last index of each AppendEntries sent and not yet acknowledged,
    oldest first. Bounded: a follower that stops answering costs at most
    ``capacity`` messages' worth of bookkeeping."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._last_indexes: collections.deque[int] = collections.deque()

    def full(self) -> bool:
        return len(self._last_indexes) >= self.capacity

    def add(self, last_index: int) -> None:
        self._last_indexes.append(last_index)

    def free_up_to(self, index: int) -> None:
        """Forget every message whose entries are all acknowledged."""
        while self._last_indexes and self._last_indexes[0] <= index:
            self._last_indexes.popleft()

    def free_first(self) -> None:
        if self._last_indexes:
            self._last_indexes.popleft()

    def reset(self) -> None:
        self._last_indexes.clear()

    def __len__(self) -> int:
        return len(self._last_indexes)


class Progress:
    def __init__(self, next_index: int, max_inflight: int, epoch: int = 0) -> None:
        #: Names this record in the messages sent under it; an answer that
        #: echoes another epoch answers a record since replaced.
        self.epoch = epoch
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        #: In PROBE, an AppendEntries is outstanding: send no other until
        #: an answer or the next heartbeat round.
        self.probe_sent = False
        #: Index of the snapshot being sent, in SNAPSHOT, and how many
        #: check-quorum rounds it has gone unanswered.
        self.pending_snapshot = 0
        self.snapshot_rounds = 0
        #: Heard from since the last check-quorum round (§6.2).
        self.recent_active = False
        #: Answered at least once since this leader started tracking it: a
        #: learner that never answered is not promoted, however close its
        #: (zero) match index looks.
        self.responded = False
        #: Highest heartbeat sequence number this follower echoed back.
        self.acked_seq = 0
        self.inflights = Inflights(max_inflight)

    def __repr__(self) -> str:
        return (
            f"Progress(match={self.match}, next={self.next}, state={self.state.value}, "
            f"inflight={len(self.inflights)})"
        )

    def paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True

    def become_probe(self) -> None:
        # After a snapshot the follower holds at least the snapshot's index.
        if self.state is ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self._reset(ProgressState.PROBE)

    def become_replicate(self) -> None:
        self.next = self.match + 1
        self._reset(ProgressState.REPLICATE)

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def _reset(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot_rounds = 0
        self.inflights.reset()

    def sent_entries(self, last_index: int) -> None:
        """Record an AppendEntries carrying entries up to ``last_index``."""
        if self.state is ProgressState.REPLICATE:
            self.next = last_index + 1
            self.inflights.add(last_index)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def maybe_update(self, index: int) -> bool:
        """The follower acknowledged ``index``; False if that is old news."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decrease_to(self, rejected: int, hint: int) -> bool:
        """The follower rejected an AppendEntries at ``rejected``; ``hint``
        is the highest index that may still match. False if the rejection
        is stale (answers a message sent before a newer decision)."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        if hint < self.match:
            # It does not hold what was acknowledged under its id: another
            # server's acknowledgement (one removed and added again with an
            # empty disk, while this leader slept through it), or a disk
            # that lost it. Kept, the match index had this probe sent again
            # for every rejection of it, without end; a lower one is always
            # safe (it only counts for less).
            self.match = 0
        self.next = max(min(rejected, hint + 1), self.match + 1, 1)
        self.probe_sent = False
        return True
