"""The leader's clock for leases.

Which leases exist, their granted TTLs and their keys are replicated
state (``raft_trio.kv``). When each one runs out is not: only the leader
keeps deadlines, on its own monotonic clock, and when one passes it
proposes a ``LeaseRevoke``, so that every replica deletes the same keys at
the same revision. Keep-alives reset a deadline without a log entry, as
in etcd.

Never early, across leaders (the rule etcd calls "promote"): a new leader
does not know when its predecessor last extended a lease, so it gives
every live lease a full TTL (or the time recorded for it, below) from the
moment it takes over. A keep-alive is
answered only after a ReadIndex round confirmed this node still leads
(the runtime does that), so every later leader took over after the
keep-alive was granted, and its fresh TTL ends after the client's.

Checkpoints (etcd's): a full TTL at every takeover would let leaders that
change more often than the TTL keep a lease nobody renews alive for ever.
So once half of what a lease was last given has gone by without a
keep-alive, the leader writes how long it has left into the log
(``LeaseCheckpoint``), and again at half of that, down to
``MIN_CHECKPOINT_S``; the next leader gives it that long from its takeover
instead of a full TTL. A client renewing at a third of the TTL never
causes one. Never early still holds:

- a recorded time is what the recording leader's deadline left at that
  moment, and every later takeover comes after it;
- a keep-alive of a lease with a recorded time, or one being recorded,
  writes a clear (0) and is answered once that is applied, so no later
  leader counts from a time recorded before the keep-alive;
- a new leader starts its clock only once it has applied an entry of its
  own term, so every record and clear committed before it are applied.

Clock assumptions: the leader's and the clients' clocks advance at about
the same rate (no bound on their offset is needed); a client that counts
its lease from when it *sent* the keep-alive never holds it past the
leader's deadline. A lease nobody renews runs out after its TTL, plus, at
each failover, the time without a leader and the time the leader that left
still led after it last recorded the lease (after its takeover, if it
recorded nothing): under half of the time it last recorded or gave, or
under that time once it is below ``2 * MIN_CHECKPOINT_S``. So leaders that
each lead for less than the last time recorded (0.5 to 1 s) keep a lease
alive while they change that fast.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable

from ..kv import Lease


def minimum_ttl(election_max_ms: int) -> int:
    """The shortest TTL granted, in seconds: one and a half upper election
    timeouts (etcd's rule), so that a lease kept alive by its client
    survives a failover."""
    return max(1, math.ceil(1.5 * election_max_ms / 1000))


#: Entries of revoked leases the heap may hold beyond twice the live ones
#: before it is rebuilt.
_SLACK_ENTRIES = 1024

#: No lease's time left is recorded once it is under twice this (seconds):
#: the last time recorded is between this and twice it, so leaders that
#: each lead for less keep a lease nobody renews alive; none that is
#: elected leads so briefly (an election takes longer), only transfers in a
#: loop. Lower, a lease near its end would cost more records.
MIN_CHECKPOINT_S = 0.5

#: Leases recorded in one checkpoint entry at most (etcd's batch too).
CHECKPOINT_BATCH = 1000


class _Timers:
    """One time per key, the earliest found without scanning: a heap with
    lazy updates (the leases' deadlines and their checkpoint times). Every
    key has an entry no later than its time; a time moved later leaves the
    entry in place, moved on when it comes up, so a keep-alive costs a
    dictionary update; a key dropped leaves its entry until it comes up,
    and many dropped are cleared out at once."""

    def __init__(self) -> None:
        self.at: dict[int, float] = {}
        self._heap: list[tuple[float, int]] = []

    def set(self, key: int, when: float) -> None:
        earlier = self.at.get(key)
        self.at[key] = when
        if earlier is not None and earlier <= when:
            return  # its entry is no later: moved on when it comes up
        heapq.heappush(self._heap, (when, key))
        self._compact()

    def discard(self, key: int) -> None:
        if self.at.pop(key, None) is not None:
            self._compact()

    def _compact(self) -> None:
        """Rebuild the heap once entries left behind outnumber the keys."""
        if len(self._heap) > 2 * len(self.at) + _SLACK_ENTRIES:
            self._heap = [(t, k) for k, t in self.at.items()]
            heapq.heapify(self._heap)

    def __len__(self) -> int:
        """Entries in the heap (about one a key)."""
        return len(self._heap)

    def clear(self) -> None:
        self.at.clear()
        self._heap.clear()

    @property
    def first(self) -> float:
        """No key's time is earlier (it may be later than this)."""
        return self._heap[0][0] if self._heap else math.inf

    def pop_due(self, now: float) -> list[int]:
        """The keys whose time is ``now`` or earlier, earliest first; they
        have no time any more."""
        due = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, key = heap[0]
            current = self.at.get(key)
            if current is None or current < when:
                heapq.heappop(heap)  # dropped, or set earlier with an entry of its own
            elif current > when:
                heapq.heapreplace(heap, (current, key))
            else:
                heapq.heappop(heap)
                del self.at[key]
                due.append(key)
        return due


class LeaseClock:
    """The deadlines of the leases this leader keeps, in a heap, so that
    what a ticker turn costs does not grow with the number of leases:
    a keep-alive is a dictionary update, finding the leases that ran out
    pops only those (and entries left behind by keep-alives), as etcd's
    lease queue does. Before, each turn after the earliest deadline
    scanned every lease."""

    def __init__(self) -> None:
        #: Every lease this leader keeps, with its TTL.
        self._ttls: dict[int, int] = {}
        #: Leases whose revoke was proposed and has not yet applied.
        self._revoking: set[int] = set()
        #: Leases among those whose revoke could not be proposed (the core
        #: dropped it), to propose again at the next check (a dict for its
        #: order: a set of them).
        self._dropped: dict[int, None] = {}
        #: The deadlines of the leases not being revoked (``.at``), the
        #: earliest found without a scan.
        self._deadlines = _Timers()
        #: When to record each lease's time left next (see the module).
        self._checkpoints = _Timers()
        #: Leases whose time left may stand recorded in the log: the index
        #: of the newest record (a clear after it removes them).
        self._recorded: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._ttls)

    @property
    def next_deadline(self) -> float:
        """No lease runs out before this (it may be earlier than the first
        that does, an entry a keep-alive moved on): when to call ``due``
        next. Asked after every keep-alive, so it only looks."""
        return self._deadlines.first

    @property
    def next_check(self) -> float:
        """When to call ``due`` and ``checkpoints_due`` next."""
        return min(self.next_deadline, self._checkpoints.first)

    def take_over(self, leases: Iterable[Lease], now: float, applied: int = 0) -> None:
        """This node leads and has applied (up to ``applied``) every entry
        committed before its term: each lease gets the time a leader last
        recorded for it, else its full TTL, from now."""
        self.step_down()
        for lease in leases:
            left = lease.remaining_ms / 1000 if lease.remaining_ms else lease.ttl
            self._ttls[lease.id] = lease.ttl
            self._plan_checkpoint(lease.id, now, left)
            self._deadlines.set(lease.id, now + left)
            if lease.remaining_ms:
                self._recorded[lease.id] = applied

    def step_down(self) -> None:
        """Only a leader keeps deadlines."""
        self._ttls.clear()
        self._revoking.clear()
        self._dropped.clear()
        self._deadlines.clear()
        self._checkpoints.clear()
        self._recorded.clear()

    def granted(self, lease: int, ttl: int, now: float) -> None:
        self._ttls[lease] = ttl
        if lease not in self._revoking:  # its revoke stands: not due again
            self._deadlines.set(lease, now + ttl)
        self._plan_checkpoint(lease, now, ttl)

    def revoked(self, lease: int) -> None:
        self._ttls.pop(lease, None)
        self._revoking.discard(lease)
        self._deadlines.discard(lease)
        self._checkpoints.discard(lease)
        self._recorded.pop(lease, None)

    def keep_alive(self, lease: int, now: float) -> int | None:
        """Extend a lease to a full TTL from ``now``; its TTL, or None if
        this leader does not hold it (gone, or being revoked)."""
        ttl = self._ttls.get(lease)
        if ttl is None or lease in self._revoking:
            return None
        self._deadlines.set(lease, now + ttl)
        self._plan_checkpoint(lease, now, ttl)
        return ttl

    def recorded(self, lease: int) -> bool:
        """Whether a time left may stand recorded for ``lease``: then a
        keep-alive is answered only once a clear after it is applied."""
        return lease in self._recorded

    def checkpoints_due(self, now: float) -> list[tuple[int, int]]:
        """The leases whose time left is to be recorded now, with it (ms,
        rounded up: never early); the caller proposes them, in entries of
        at most :data:`CHECKPOINT_BATCH` (:meth:`checkpoint_proposed`), or
        gives them back (:meth:`checkpoint_failed`)."""
        due = []
        for lease in self._checkpoints.pop_due(now):
            deadline = self._deadlines.at.get(lease)  # None: revoked, or being revoked
            if deadline is None or deadline <= now:
                continue
            due.append((lease, math.ceil((deadline - now) * 1000)))
            self._plan_checkpoint(lease, now, deadline - now)
        return due

    def checkpoint_proposed(self, leases: Iterable[tuple[int, int]], index: int) -> None:
        for lease, _ in leases:
            self._recorded[lease] = index

    def checkpoint_failed(self, leases: Iterable[tuple[int, int]], now: float) -> None:
        """Not proposed (a transfer under way, too many entries waiting):
        try again in a while."""
        for lease, _ in leases:
            if lease in self._deadlines.at:
                self._checkpoints.set(lease, now + MIN_CHECKPOINT_S)

    def checkpoint_applied(self, leases: Iterable[tuple[int, int]], index: int) -> None:
        """A checkpoint entry at ``index`` applied: its clears remove the
        records proposed before it."""
        for lease, remaining_ms in leases:
            if remaining_ms == 0 and self._recorded.get(lease, index) < index:
                del self._recorded[lease]

    def _plan_checkpoint(self, lease: int, now: float, left: float) -> None:
        """Record ``lease``'s time left once half of ``left`` (what it has
        now) passed without a keep-alive, unless that is too near its end."""
        if left / 2 >= MIN_CHECKPOINT_S:
            self._checkpoints.set(lease, now + left / 2)
        else:
            self._checkpoints.discard(lease)

    def remaining(self, lease: int, now: float) -> float | None:
        """Seconds left before this leader revokes it (0 while revoking)."""
        if lease not in self._ttls:
            return None
        deadline = self._deadlines.at.get(lease)
        if deadline is None:
            return 0.0  # being revoked
        return max(0.0, deadline - now)

    def due(self, now: float) -> list[int]:
        """The leases to propose the revoke of: those whose revoke was
        dropped last time, then those that ran out and are not yet being
        revoked, oldest deadline first; they count as being revoked from
        now on."""
        expired = [lease for lease in self._dropped if lease in self._revoking]
        self._dropped.clear()
        ran_out = self._deadlines.pop_due(now)
        self._revoking.update(ran_out)
        return expired + ran_out

    def revoke_failed(self, lease: int) -> None:
        """A revoke could not be proposed (a transfer under way, too many
        entries uncommitted): :meth:`due` gives it again at the next check.
        Not through the heap: its deadline has passed, so
        :attr:`next_deadline` would ask for that check at once, and the
        ticker spun until the core took proposals again. It stays being
        revoked meanwhile: an expired lease is not kept alive again (etcd's
        rule too)."""
        if lease in self._revoking:
            self._dropped[lease] = None
