"""What the leader's lease clock costs its event loop with many leases,
run by hand (never part of the tests).

The runtime asks the clock for its next deadline whenever it sets its
wake-up (after each Ready, each keep-alive) and, at each ticker turn
(10 ms) past that deadline, for the leases that ran out. This replays
that on a simulated clock and prints the process CPU per simulated
second spent in the clock, for ``--leases`` leases of ``--ttl`` seconds:

- ``kept``: each kept alive every third of its TTL (as etcd's clients
  do), spread evenly; none runs out;
- ``expiring``: granted evenly over one TTL and never kept alive (their
  clients went away), so that one or two run out every ticker turn and
  their revokes go out, their time left recorded (checkpoints) on the way.

To compare two code trees, run it with each on ``PYTHONPATH`` (an
editable install of raft-trio comes first on the path: run it from a
virtual environment without one)::

    python -m bench.lease_clock --leases 100000
"""

from __future__ import annotations

import argparse
import time

from raft_trio.kv import Lease
from raft_trio.node.leases import LeaseClock

TICK_S = 0.01


def check(clock: LeaseClock, now: float) -> list[int]:
    """What the runtime's ticker does once ``next_check`` has come: the
    checkpoints due (proposed at once, as one entry), then the expired."""
    if now < clock.next_check:
        return []
    due = clock.checkpoints_due(now)
    if due:
        clock.checkpoint_proposed(due, index=round(now / TICK_S))
    return clock.due(now)


def kept(leases: int, ttl: int, seconds: float) -> float:
    """CPU seconds spent in the clock per simulated second, every lease
    kept alive."""
    clock = LeaseClock()
    clock.take_over([Lease(lease, ttl) for lease in range(1, leases + 1)], now=0.0)
    per_tick = leases * TICK_S / (ttl / 3)
    owed = 0.0
    next_lease = 1
    started = time.process_time()
    for tick in range(1, round(seconds / TICK_S) + 1):
        now = tick * TICK_S
        owed += per_tick
        while owed >= 1:
            clock.keep_alive(next_lease, now)
            assert not clock.recorded(next_lease), "a lease renewed at a third of its TTL was recorded"
            _ = clock.next_check  # the runtime's wake-up, set again
            next_lease = next_lease % leases + 1
            owed -= 1
        expired = check(clock, now)
        assert not expired, f"a lease kept alive expired at {now:.2f} s"
        _ = clock.next_check
    return (time.process_time() - started) / seconds


def expiring(leases: int, ttl: int, seconds: float) -> float:
    """CPU seconds spent in the clock per simulated second while leases
    granted evenly over one TTL run out one after another (``seconds``
    at most one TTL), their time left recorded on the way. The grants
    run on the same clock for one TTL before the measured window."""
    clock = LeaseClock()
    granted = 0
    for tick in range(-round(ttl / TICK_S) + 1, 1):
        now = tick * TICK_S
        while granted < leases and -ttl + ttl * (granted + 1) / leases <= now:
            granted += 1
            clock.granted(granted, ttl, now)
        for lease in check(clock, now):
            clock.revoked(lease)
    gone = 0
    started = time.process_time()
    for tick in range(1, round(min(seconds, ttl) / TICK_S) + 1):
        now = tick * TICK_S
        for lease in check(clock, now):
            clock.revoked(lease)  # the revoke applied
            gone += 1
        _ = clock.next_check
    elapsed = time.process_time() - started
    assert abs(gone - leases * min(seconds, ttl) / ttl) <= 2 + leases * TICK_S / ttl, gone
    return elapsed / min(seconds, ttl)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leases", type=int, default=100_000)
    parser.add_argument("--ttl", type=int, default=60, help="seconds")
    parser.add_argument("--seconds", type=float, default=20.0, help="simulated time")
    args = parser.parse_args()
    for name, scenario in (("kept", kept), ("expiring", expiring)):
        cost = scenario(args.leases, args.ttl, args.seconds)
        print(
            f"{name:8} {args.leases:,} leases of {args.ttl} s: "
            f"{1000 * cost:.1f} ms of CPU per second in the lease clock ({100 * cost:.1f} % of a core)",
            flush=True,
        )


if __name__ == "__main__":
    main()
