"""The resolver against a real DNS server (dnsmasq): A records on the
nodes' common port, SRV records with their own ports, no answer, no server."""

from __future__ import annotations

import pytest

from raft_trio.discovery import DnsError, DnsResolver, parse_nameserver

from .dnsmasq import Dnsmasq, free_udp_port, loopback_block


def test_a_records_become_urls_on_the_common_port(dnsmasq: Dnsmasq) -> None:
    block = loopback_block()
    dnsmasq.addresses = [f"{block}3", f"{block}1", f"{block}2"]
    dnsmasq.start()
    resolver = DnsResolver(dnsmasq.server)
    assert resolver.lookup("node", 9001) == [f"http://{block}{i}:9001" for i in (1, 2, 3)]
    dnsmasq.set_addresses([*dnsmasq.addresses, f"{block}4"])
    assert resolver.lookup("node", 9001)[-1] == f"http://{block}4:9001"
    assert resolver.lookup("nothing-here", 9001) == []


def test_srv_records_give_their_own_ports(dnsmasq: Dnsmasq) -> None:
    block = loopback_block()
    dnsmasq.addresses = [f"{block}1"]
    dnsmasq.srv = [("_raft._tcp.cluster", "node", 9100)]
    dnsmasq.start()
    resolver = DnsResolver(dnsmasq.server)
    assert resolver.lookup("_raft._tcp.cluster", 9001) == [f"http://{block}1:9100"]


async def test_an_unreachable_dns_server_is_an_error_not_an_empty_answer() -> None:
    resolver = DnsResolver(f"127.0.0.1:{free_udp_port()}", timeout=0.3)
    with pytest.raises(DnsError):
        await resolver.resolve("node", 9001)


def test_nameserver_syntax() -> None:
    assert parse_nameserver("127.0.0.1") == ("127.0.0.1", 53)
    assert parse_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_nameserver("[::1]:5353") == ("::1", 5353)
    for bad in ("dns.example:53", "127.0.0.1:0", "127.0.0.1:x", ""):
        with pytest.raises(ValueError):
            parse_nameserver(bad)
