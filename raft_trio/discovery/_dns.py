"""Resolving the service name to node URLs.

:class:`DnsResolver` asks for the SRV records of NAME (their targets and
ports, where a DNS server has them: Consul, Kubernetes) and its A
records (every replica of a compose service, on the nodes' common
port). dnspython's blocking resolver runs in a worker thread
(``dns.asyncresolver`` does not run on Trio). ``RAFT_DNS_SERVER``
(``HOST[:PORT]``) replaces the system's resolver, for tests.
"""

from __future__ import annotations

import contextlib
import ipaddress
import time

import dns.exception
import dns.rdatatype
import dns.resolver
import trio

from ._identity import endpoint_url

DNS_TIMEOUT_S = 2.0
#: After an SRV query times out, A records only for this long.
SRV_RETRY_S = 60.0


class DnsError(Exception):
    """The name could not be resolved now (no answer is not an error)."""


def parse_nameserver(text: str) -> tuple[str, int]:
    """``HOST`` or ``HOST:PORT`` (``[V6]:PORT``) of a DNS server."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":") or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, "53"
    if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"a DNS server is HOST or HOST:PORT, got {text!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"a DNS server is an IP address, not a name: got {host!r}") from None
    return host, int(port)


class DnsResolver:
    """SRV and A records of a service name, as node URLs."""

    def __init__(
        self, nameserver: str | None = None, *, timeout: float = DNS_TIMEOUT_S, scheme: str = "http"
    ) -> None:
        self._scheme = scheme
        if nameserver:
            host, port = parse_nameserver(nameserver)
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [host]
            resolver.port = port
        else:
            try:
                resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                resolver = dns.resolver.Resolver(configure=False)
                resolver.nameservers = ["127.0.0.1"]
        resolver.timeout = timeout
        resolver.lifetime = timeout
        self._resolver = resolver
        self._srv_after = 0.0

    def lookup(self, name: str, default_port: int) -> list[str]:
        """Blocking: the sorted node URLs for ``name``; raises DnsError when
        the DNS server cannot be asked."""
        urls = self._srv(name)
        if urls is None:
            urls = [endpoint_url(address, default_port, self._scheme) for address in self._addresses(name)]
        return sorted(set(urls))

    async def resolve(self, name: str, default_port: int) -> list[str]:
        return await trio.to_thread.run_sync(self.lookup, name, default_port, abandon_on_cancel=True)

    def addresses(self, name: str) -> list[str]:
        """Blocking: the A records of ``name`` (an IP literal: itself)."""
        with contextlib.suppress(ValueError):
            return [str(ipaddress.ip_address(name))]
        return self._addresses(name)

    def reverse(self, address: str) -> list[str]:
        """Blocking: the names a reverse (PTR) lookup gives for ``address``;
        raises DnsError when the DNS server does not answer."""
        try:
            answer = self._resolver.resolve_address(address)
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as error:
            raise DnsError(f"{address}: {error}") from error
        except dns.exception.DNSException:
            return []
        return [rdata.target.to_text(omit_final_dot=True) for rdata in answer]

    def _addresses(self, name: str) -> list[str]:
        try:
            answer = self._resolver.resolve(name, "A", search=True, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return []
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as error:
            raise DnsError(f"{name}: {error}") from error
        except dns.exception.DNSException as error:
            raise DnsError(f"{name}: {type(error).__name__}: {error}") from error
        return [rdata.address for rdata in answer]

    def _srv(self, name: str) -> list[str] | None:
        """URLs from SRV records, or None where the name has none; raises
        DnsError when a target's addresses cannot be asked: a shorter list
        would hide a replica that may be a paused member, beside which new
        replicas could form a second cluster."""
        if time.monotonic() < self._srv_after:
            return None
        try:
            answer = self._resolver.resolve(name, "SRV", search=True)
        except dns.exception.Timeout:
            # A DNS server that forwards unknown types can be slow to say no.
            self._srv_after = time.monotonic() + SRV_RETRY_S
            return None
        except dns.exception.DNSException:
            return None
        additional: dict[str, list[str]] = {}
        for rrset in answer.response.additional:
            if rrset.rdtype == dns.rdatatype.A:
                additional.setdefault(rrset.name.to_text(), []).extend(r.address for r in rrset)
        urls: list[str] = []
        for rdata in answer:
            target = rdata.target.to_text()
            addresses = additional.get(target)
            if addresses is None:
                addresses = self._addresses(target)  # a target that does not exist has none
            urls.extend(endpoint_url(address, rdata.port, self._scheme) for address in addresses)
        return urls or None
