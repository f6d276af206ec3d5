"""A lease kept alive by its client, and until when the client can be
sure it still lives: what a lock or a leadership stands on.

The cluster never revokes a lease before its TTL has passed since the
client *sent* its last answered keep-alive (the leader answers one only
after a quorum confirmed it still leads, and a new leader gives every
lease a full TTL when it takes over; see docs/coordination.md). So the
client counts from the moment it sent each keep-alive: until
``deadline = sent + ttl`` the lease certainly lives. After that, unless a
newer keep-alive was answered, it may be gone and what was held with it
may be someone else's.

The keep-alives are plain ``POST /api/leases/{id}/keepalive`` requests on
the client's kept-alive connection to the leader, every third of the TTL
(this is the "streaming" keep-alive of a long-lived client: one request
and one small answer per renewal, no new connection). A renewal that
fails is tried again at once, backing off, until one is answered or the
lease can no longer be vouched for. A server that renewed by itself while
a connection stayed open would keep a stopped (SIGSTOP) client's lease,
and its lock, alive for ever; here a client renews only while it runs.

``margin``: the holder gives up this many seconds before the deadline,
so that what it must stop (a command, the body of a ``with``) is stopped
by the time another could get the lock.

A machine that sleeps (suspend to RAM, a laptop's lid): Trio's clock
(``CLOCK_MONOTONIC``) stands still meanwhile, the cluster's does not, so a
holder that woke would go on counting its lease from before the sleep,
and run what stood on it past a lease long gone, until its next
keep-alive was refused. The time slept is what ``CLOCK_BOOTTIME`` ran
ahead of ``CLOCK_MONOTONIC`` (Linux); the holder looks at it at least
every ``SUSPEND_CHECK_S`` and after each answer, and takes it off the
deadline: a sleep past the cutoff loses the lease within that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import trio

from .. import schema
from . import suspend
from ._errors import ClientError, LeaseNotFound

#: First pause after a failed keep-alive; it doubles up to a third of the
#: time between renewals.
RETRY_FIRST_S = 0.1

KeepAlive = Callable[[str], Awaitable[schema.LeaseAnswer]]

#: A holder looks this often (on Trio's clock) whether the machine slept.
SUSPEND_CHECK_S = 0.5


def sending() -> tuple[float, float]:
    """When a grant is sent: Trio's clock and ``suspend.machine_slept_s()``, for
    :meth:`Session.granted` (a sleep while the grant is on its way counts
    against it, as for a keep-alive)."""
    return trio.current_time(), suspend.machine_slept_s()


#: Less than this between two looks is the two clocks read a moment apart.
_SLEPT_NOISE_S = 0.01


@dataclasses.dataclass
class Session:
    """A granted lease: ``deadline`` (on Trio's clock) is how long it
    certainly lives, ``cutoff`` when its holder gives up on it."""

    id: str
    ttl: int
    deadline: float
    margin: float = 0.0
    #: When the cluster said the lease, or the key held with it, is gone:
    #: from then on another may hold what stood on it.
    taken_at: float | None = None
    #: ``suspend.machine_slept_s()`` when last counted (see the module).
    slept_seen: float = dataclasses.field(default_factory=lambda: suspend.machine_slept_s())
    #: Seconds the machine slept since the last answered keep-alive (or
    #: the grant) was sent: taken off ``deadline``.
    slept: float = 0.0

    @classmethod
    def granted(
        cls, answer: schema.LeaseAnswer, sent: float, margin: float = 0.0, slept_at_sent: float | None = None
    ) -> Session:
        """The lease ``answer`` granted to a request sent at ``sent``;
        ``slept_at_sent``: ``suspend.machine_slept_s()`` then (:func:`sending`), so
        that a sleep while the grant was on its way is counted."""
        if not 0 <= margin < answer.ttl:
            raise ValueError(
                f"the margin ({margin} s) must be at least 0 and less than the TTL ({answer.ttl} s)"
            )
        session = cls(answer.id, answer.ttl, sent + answer.ttl, margin)
        if slept_at_sent is not None:
            session.slept_seen = slept_at_sent
            session.count_sleep()
        return session

    @property
    def cutoff(self) -> float:
        return self.deadline - self.margin

    @property
    def safe_until(self) -> float:
        """Until when nobody else can hold what stands on this lease: its
        deadline, unless the cluster said it is gone before that."""
        return self.deadline if self.taken_at is None else min(self.taken_at, self.deadline)

    @property
    def interval(self) -> float:
        """Seconds between renewals: a third of what the holder may use."""
        return (self.ttl - self.margin) / 3

    async def keep(self, keep_alive: KeepAlive) -> str:
        """Renew the lease until cancelled; returns (instead) why it was
        lost: refused (expired or revoked), or no renewal answered before
        the cutoff."""
        next_renewal = self.deadline - self.ttl + self.interval
        while True:
            while (now := trio.current_time()) < min(next_renewal, self.cutoff):
                await trio.sleep_until(min(next_renewal, self.cutoff, now + SUSPEND_CHECK_S))
                self.count_sleep()
            backoff = RETRY_FIRST_S
            failure = ""
            while True:
                self.count_sleep()
                sent = trio.current_time()
                if sent >= self.cutoff:
                    if sent < self.cutoff + self.slept:  # it would not have passed without the sleep
                        return (
                            f"this machine was suspended for {self.slept:.1f} s: the lease may have run out"
                        )
                    silent = sent - (self.deadline - self.ttl)
                    return (
                        f"no keep-alive was answered for {silent:.1f} s: the lease may have run out{failure}"
                    )
                slept_before = self.slept
                with trio.move_on_at(self.cutoff) as scope:
                    try:
                        answer = await self._answer(keep_alive, scope)
                    except LeaseNotFound:
                        self.taken_at = trio.current_time()
                        return "the lease expired or was revoked"
                    except ClientError as error:
                        failure = f" (the last try: {error})"
                    else:
                        self.count_sleep()
                        self.ttl = answer.ttl
                        # A sleep after it was sent counts: the cluster's TTL
                        # ran from before it.
                        self.slept -= slept_before
                        self.deadline = sent + answer.ttl - self.slept
                        break
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, self.interval / 3)
            next_renewal = sent + self.interval

    async def _answer(self, keep_alive: KeepAlive, scope: trio.CancelScope) -> schema.LeaseAnswer:
        """``keep_alive``'s answer, looking meanwhile (every
        ``SUSPEND_CHECK_S``) whether the machine slept, and bringing
        ``scope``'s deadline (the cutoff) forward by it: a keep-alive that
        hangs across a sleep (a connection the suspend broke) does not hold
        the holder past its lease on Trio's clock, which did not count it."""

        async def follow() -> None:
            while True:
                await trio.sleep(SUSPEND_CHECK_S)
                self.count_sleep()
                scope.deadline = min(scope.deadline, self.cutoff)

        answer: schema.LeaseAnswer | None = None
        failed: ClientError | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow)
            try:
                answer = await keep_alive(self.id)
            except ClientError as error:  # raised out here, not in a group
                failed = error
            finally:
                nursery.cancel_scope.cancel()
        if failed is not None:
            raise failed
        assert answer is not None
        return answer

    def count_sleep(self) -> None:
        """Take the time the machine slept since the last look off the
        deadline: the cluster counted it."""
        now = suspend.machine_slept_s()
        slept = now - self.slept_seen
        if slept >= _SLEPT_NOISE_S:
            self.deadline -= slept
            self.slept += slept
            self.slept_seen = now
