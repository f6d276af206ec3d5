"""The leader's clock for leases.

Which leases exist, their granted TTLs and their keys are replicated
state (``raft_trio.kv``). When each one runs out is not: only the leader
keeps deadlines, on its own monotonic clock, and when one passes it
proposes a ``LeaseRevoke``, so that every replica deletes the same keys at
the same revision. Keep-alives reset a deadline without a log entry, as
in etcd.

Never early, across leaders (the rule etcd calls "promote"): a new leader
does not know when its predecessor last extended a lease, so it gives
every live lease a full TTL from the moment it takes over. A keep-alive is
answered only after a ReadIndex round confirmed this node still leads
(the runtime does that), so every later leader took over after the
keep-alive was granted, and its fresh TTL ends after the client's.

Clock assumptions: the leader's and the clients' clocks advance at about
the same rate (no bound on their offset is needed); a client that counts
its lease from when it *sent* the keep-alive never holds it past the
leader's deadline. A lease may outlive its TTL by up to an election
(the time without a leader) plus a TTL for each change of leader before
it runs out: leaders that change more often than the TTL keep a lease
nobody renews alive (etcd bounds that with checkpoints in the log; not
done here).
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


class LeaseClock:
    """The deadlines of the leases this leader keeps, in a heap, so that
    what a ticker turn costs does not grow with the number of leases:
    a keep-alive is a dictionary update, finding the leases that ran out
    pops only those (and entries left behind by keep-alives), as etcd's
    lease queue does. Before, each turn after the earliest deadline
    scanned every lease."""

    def __init__(self) -> None:
        self._deadlines: dict[int, float] = {}
        self._ttls: dict[int, int] = {}
        #: Leases whose revoke was proposed and has not yet applied.
        self._revoking: set[int] = set()
        #: Leases among those whose revoke could not be proposed (the core
        #: dropped it), to propose again at the next check (a dict for its
        #: order: a set of them).
        self._dropped: dict[int, None] = {}
        #: (deadline, lease) entries. Every lease not being revoked has one
        #: no later than its deadline; a keep-alive leaves the old one in
        #: place, and it is moved to the new deadline when it comes up
        #: (:meth:`_settle`), so the heap holds about one entry a lease.
        self._queue: list[tuple[float, int]] = []

    def __len__(self) -> int:
        return len(self._deadlines)

    @property
    def next_deadline(self) -> float:
        """No lease runs out before this (it may be earlier than the first
        that does, an entry a keep-alive moved on): when to call ``due``
        next. Asked after every keep-alive, so it only looks."""
        return self._queue[0][0] if self._queue else math.inf

    def take_over(self, leases: Iterable[Lease], now: float) -> None:
        """This node became leader: every lease gets its full TTL from now."""
        self._deadlines = {lease.id: now + lease.ttl for lease in leases}
        self._ttls = {lease.id: lease.ttl for lease in leases}
        self._revoking.clear()
        self._dropped.clear()
        self._rebuild()

    def step_down(self) -> None:
        """Only a leader keeps deadlines."""
        self._deadlines.clear()
        self._ttls.clear()
        self._revoking.clear()
        self._dropped.clear()
        self._queue.clear()

    def granted(self, lease: int, ttl: int, now: float) -> None:
        self._deadlines[lease] = now + ttl
        self._ttls[lease] = ttl
        heapq.heappush(self._queue, (now + ttl, lease))

    def revoked(self, lease: int) -> None:
        self._deadlines.pop(lease, None)
        self._ttls.pop(lease, None)
        self._revoking.discard(lease)
        # Its entry goes when it comes up; many revoked far ahead of their
        # deadlines are cleared at once.
        if len(self._queue) > 2 * len(self._deadlines) + _SLACK_ENTRIES:
            self._rebuild()

    def keep_alive(self, lease: int, now: float) -> int | None:
        """Extend a lease to a full TTL from ``now``; its TTL, or None if
        this leader does not hold it (gone, or being revoked)."""
        ttl = self._ttls.get(lease)
        if ttl is None or lease in self._revoking:
            return None
        self._deadlines[lease] = now + ttl
        return ttl

    def remaining(self, lease: int, now: float) -> float | None:
        """Seconds left before this leader revokes it (0 while revoking)."""
        deadline = self._deadlines.get(lease)
        if deadline is None:
            return None
        if lease in self._revoking:
            return 0.0
        return max(0.0, deadline - now)

    def due(self, now: float) -> list[int]:
        """The leases to propose the revoke of: those whose revoke was
        dropped last time, then those that ran out and are not yet being
        revoked, oldest deadline first; they count as being revoked from
        now on."""
        expired = [lease for lease in self._dropped if lease in self._revoking]
        self._dropped.clear()
        queue = self._queue
        self._settle()
        while queue and queue[0][0] <= now:
            _, lease = heapq.heappop(queue)
            self._revoking.add(lease)
            expired.append(lease)
            self._settle()
        return expired

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

    def _settle(self) -> None:
        """Bring the first entry up to date: drop those of leases revoked
        or being revoked, move those a keep-alive extended."""
        queue = self._queue
        while queue:
            deadline, lease = queue[0]
            current = self._deadlines.get(lease)
            if current == deadline and lease not in self._revoking:
                return
            if current is None or lease in self._revoking:
                heapq.heappop(queue)
            else:
                heapq.heapreplace(queue, (current, lease))

    def _rebuild(self) -> None:
        self._queue = [
            (deadline, lease) for lease, deadline in self._deadlines.items() if lease not in self._revoking
        ]
        heapq.heapify(self._queue)
