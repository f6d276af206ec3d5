"""Ports for test and bench processes, planned so that nothing else takes
them between the plan and the bind.

A port the kernel hands out for port 0 comes from its ephemeral range,
the same range it draws the local end of every outgoing connection from.
A node restarted on "its" port, or ``raft-trio up`` binding a few seconds
after the probe, could then find that port taken by some client's
connection (the likeliest cause of a CI run where ``up`` exited at once
without its banner). So ports come from below the ephemeral
range, where the kernel never picks one by itself, and each pytest-xdist
worker walks a slice of its own, so that two workers never plan the same
port and one worker hands a port out again only after it has walked its
whole slice. Every port is still tried with a bind before it is handed
out, for whatever else on the machine listens there.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

#: The lowest port planned: well above the well-known and registered
#: services that a developer's machine may run.
PLAN_FLOOR = 20000
#: The kernel's ephemeral range starts here unless the machine says otherwise.
DEFAULT_EPHEMERAL_FLOOR = 32768
#: Fewer ports than this below the ephemeral range (a machine that gave
#: the kernel nearly every port): the plan runs up to 65535 instead, still
#: tried with a bind, only no longer clear of the kernel's own choices.
MIN_PLAN = 2000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_floor() -> int:
    """Where the kernel's own port choices start on this machine."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_FLOOR


def plan_range(ephemeral: int) -> range:
    """The ports planned on a machine whose ephemeral range starts at
    ``ephemeral``: those below it, if there are enough."""
    return range(PLAN_FLOOR, ephemeral if ephemeral - PLAN_FLOOR >= MIN_PLAN else 65536)


def worker_slice(ports: range) -> range:
    """This process's share of ``ports``: one slice per xdist worker
    (``gw3`` of 4 takes the last quarter), all of them otherwise."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1), 1)
    index = int(worker[2:]) % count if worker.startswith("gw") and worker[2:].isdigit() else 0
    width = len(ports) // count
    return ports[index * width : (index + 1) * width]


class PortPlan:
    """Walks one slice of ports, from a random place in it, and hands out
    those that bind."""

    def __init__(self, ports: range) -> None:
        self.ports = ports
        self.cursor = random.randrange(len(ports))

    def _next(self) -> int:
        port = self.ports[self.cursor]
        self.cursor = (self.cursor + 1) % len(self.ports)
        return port

    def take(self, count: int, host: str, *, consecutive: bool) -> list[int]:
        """``count`` ports free on ``host`` now, each tried with a bind;
        with ``consecutive``, a run of them."""
        chosen: list[int] = []
        for _ in range(len(self.ports)):
            port = self._next()
            if consecutive and chosen and port != chosen[-1] + 1:
                chosen = []  # wrapped around the slice's end: start the run again
            if binds(host, port):
                chosen.append(port)
                if len(chosen) == count:
                    return chosen
            elif consecutive:
                chosen = []
        raise RuntimeError(f"no {count} free ports on {host} in {self.ports}")


def binds(host: str, port: int) -> bool:
    """Whether a listener could bind ``host:port`` now (without
    SO_REUSEADDR, so a port with connections lingering in TIME_WAIT counts
    as taken too)."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


_plan = PortPlan(worker_slice(plan_range(ephemeral_floor())))


def free_ports(count: int, host: str) -> list[int]:
    """``count`` different ports, free on ``host`` when asked and outside
    the range the kernel takes ports from by itself."""
    return _plan.take(count, host, consecutive=False)


def consecutive_free_ports(count: int, host: str) -> int:
    """The first of ``count`` consecutive free ports (for what numbers its
    ports from a base, as ``raft-trio up`` does)."""
    return _plan.take(count, host, consecutive=True)[0]
