"""How long this machine has been suspended: the time a lease holder's
clock must count and ``CLOCK_MONOTONIC`` (Trio's clock, and
``time.monotonic``) does not. Without Trio, so that the blocking client
loads no more than it did."""

from __future__ import annotations

import time


def machine_slept_s() -> float:
    """Seconds this machine has been suspended since it booted: what
    ``CLOCK_BOOTTIME`` ran ahead of ``CLOCK_MONOTONIC`` (0 where there is
    no ``CLOCK_BOOTTIME``: not Linux)."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is None:
        return 0.0
    return time.clock_gettime(boottime) - time.clock_gettime(time.CLOCK_MONOTONIC)


def suspend_aware_clock() -> float:
    """Seconds on a clock that runs on while the machine is suspended
    (``CLOCK_BOOTTIME`` on Linux, else ``CLOCK_MONOTONIC``): for a blocking
    holder, which counts its lease on it."""
    return time.monotonic() + machine_slept_s()
