"""This replica's stable name: a DNS name that resolves to it alone and
stays with it when its address changes (its container name), so that its
URL, its id and its data directory (``{name}`` in ``--data-dir``) survive
a new address and a recreated container.

Docker's DNS answers the reverse lookup of a container's address with
``<container>.<network>``; Podman (aardvark-dns has no reverse lookups)
writes ``<address> <hostname> <container>`` into the container's
``/etc/hosts``. The hostname never counts: it is the container's id, new
with every container."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from ._dns import DnsError, DnsResolver
from ._identity import host_name
from ._settings import DiscoverySettings


def hosts_file_names(address: str, path: str = "/etc/hosts") -> list[str]:
    """The names ``/etc/hosts`` gives ``address``, in order."""
    names: list[str] = []
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            fields = line.split("#", 1)[0].split()
            if fields and fields[0] == address:
                names.extend(fields[1:])
    return names


def replica_name(
    address: str, resolver: DnsResolver, hostname: str, hosts_file: str = "/etc/hosts"
) -> str | None:
    """A name that resolves to ``address`` alone and is not the hostname
    (which is the container's id, new with every container): the
    container's name, found as Docker's DNS answers the reverse lookup
    (``<container>.<network>``) or as Podman writes it in ``/etc/hosts``.
    None if there is none; DnsError if the DNS server did not answer."""
    candidates: list[str] = []
    for name in resolver.reverse(address):
        candidates += [name.split(".", 1)[0], name]
    candidates += hosts_file_names(address, hosts_file)
    excluded = {hostname, hostname.split(".", 1)[0], "localhost"}
    for name in dict.fromkeys(candidates):
        if name and name not in excluded and resolver.addresses(name) == [address]:
            return name
    return None


#: Tries and pause of the first look for a replica name: a container's DNS
#: entry can lag its start by a moment, and the name decides the data
#: directory, so one miss must not make a new member.
NAME_TRIES = 5
NAME_RETRY_S = 0.4
#: How long to keep asking a DNS server that does not answer at all.
NAME_DNS_PATIENCE_S = 60.0


class NoReplicaName(Exception):
    """The DNS server did not answer for as long as a replica waits for its name."""


def find_replica_name(address: str, settings: DiscoverySettings) -> str | None:
    """Blocking, at start: :func:`replica_name` of this replica, asked a few
    times before giving up (then the address is advertised, as before).
    While the DNS server does not answer at all, it keeps asking for up to
    ``NAME_DNS_PATIENCE_S`` and then raises NoReplicaName: guessing would
    pick another data directory, and make a new member of an old one."""
    resolver = settings.resolver()
    hostname = host_name()
    misses = 0
    deadline = time.monotonic() + NAME_DNS_PATIENCE_S
    while True:
        try:
            name = replica_name(address, resolver, hostname)
        except DnsError as error:
            if time.monotonic() > deadline:
                raise NoReplicaName(f"the DNS server does not answer: {error}") from error
        else:
            if name is not None:
                return name
            misses += 1
            if misses >= NAME_TRIES:
                return None
        time.sleep(NAME_RETRY_S)
