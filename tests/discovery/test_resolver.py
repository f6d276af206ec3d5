"""The resolver against a real DNS server (dnsmasq): A records on the
nodes' common port, SRV records with their own ports, no answer, no server;
a replica's stable name, as Docker and Podman give it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dns.exception
import dns.name
import pytest

from raft_trio.discovery import DnsError, DnsResolver, parse_nameserver, replica_name

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
        with pytest.raises(ValueError, match="a DNS server is"):
            parse_nameserver(bad)


def test_a_replica_is_named_as_docker_names_it_by_the_reverse_lookup(
    dnsmasq: Dnsmasq, tmp_path: Path
) -> None:
    """Docker's DNS answers the reverse lookup of a container's address
    with ``<container>.<network>``; the container name resolves to that
    address alone. The service name (every replica) and the hostname (the
    container's id) are never taken."""
    block = loopback_block()
    dnsmasq.addresses = [f"{block}{i}" for i in (1, 2, 3)]
    dnsmasq.names = [(f"{block}2", "proj_node_2.proj_default"), (f"{block}2", "proj_node_2")]
    dnsmasq.start()
    resolver = DnsResolver(dnsmasq.server)
    no_hosts = str(tmp_path / "none")
    assert replica_name(f"{block}2", resolver, "0123abcd", no_hosts) == "proj_node_2"
    assert replica_name(f"{block}1", resolver, "0123abcd", no_hosts) is None  # only "node": all three
    assert replica_name(f"{block}2", resolver, "proj_node_2", no_hosts) == "proj_node_2.proj_default"


def test_a_replica_is_named_as_podman_names_it_in_etc_hosts(dnsmasq: Dnsmasq, tmp_path: Path) -> None:
    """Podman writes ``<address> <hostname> <container name>`` into the
    container's /etc/hosts and resolves the container name by DNS."""
    block = loopback_block()
    dnsmasq.addresses = [f"{block}1", f"{block}2"]
    dnsmasq.names = [(f"{block}1", "proj_node_1")]
    dnsmasq.start()
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{block}1 62c5d2d319d4 proj_node_1  # the container\n")
    resolver = DnsResolver(dnsmasq.server)
    assert replica_name(f"{block}1", resolver, "62c5d2d319d4", str(hosts)) == "proj_node_1"
    # A name in /etc/hosts that DNS does not resolve to the address is no stable name.
    hosts.write_text(f"{block}2 62c5d2d319d4 elsewhere\n")
    assert replica_name(f"{block}2", resolver, "62c5d2d319d4", str(hosts)) is None


class SrvOfTwo:
    """A DNS server whose SRV answer names two targets (no additional
    records) and which times out on the second one's A record."""

    class Answer(list[Any]):
        response = SimpleNamespace(additional=[])

    def resolve(self, name: str, rdtype: str, **options: Any) -> Any:
        if rdtype == "SRV":
            targets = ("node-0.node.", "node-1.node.")
            return self.Answer(SimpleNamespace(target=dns.name.from_text(t), port=9001) for t in targets)
        if name == "node-1.node.":
            raise dns.exception.Timeout
        return [SimpleNamespace(address="10.0.0.1")]


def test_a_target_that_cannot_be_resolved_is_an_error_not_a_shorter_list() -> None:
    """A shorter list hid a replica that may be a paused member: the new
    replicas could then form a second cluster beside it (a target that
    does not exist, NXDOMAIN, is only left out)."""
    resolver = DnsResolver("127.0.0.1")
    resolver._resolver = SrvOfTwo()  # type: ignore[assignment]
    with pytest.raises(DnsError, match="node-1"):
        resolver.lookup("node", 9001)
