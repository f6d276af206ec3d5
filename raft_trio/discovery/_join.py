"""Joining a running cluster: a node in no configuration asks the cluster
to add it as a learner, at a URL given (``--join``) or found by DNS."""

from __future__ import annotations

import contextlib
import logging

import httpx
import trio

from ..node import RaftNode
from ._dns import DnsError, DnsResolver
from ._probe import PeerStatus, probe_all
from ._settings import DiscoverySettings

log = logging.getLogger("raft_trio.discovery")


async def request_membership(
    client: httpx.AsyncClient, cluster_url: str, node: RaftNode, api_prefix: str = "/api"
) -> bool:
    """Ask the cluster at ``cluster_url`` to add ``node`` as a learner; True
    once it is a member. The node learns the members' addresses from the
    answer: until the leader's entries reach it, its own configuration is
    empty, and it must still answer the leader."""
    members_url = f"{cluster_url}{api_prefix}/members"
    try:
        response = await client.post(members_url, json={"id": node.id, "url": node.url}, timeout=10)
        if response.status_code == 409 and "already a member" in response.text:
            response = await client.get(members_url, timeout=10)
        elif response.status_code == 200:
            log.info("joined the cluster through %s", cluster_url)
        else:
            log.warning("join: %s answered %s %s", cluster_url, response.status_code, response.text[:200])
            return False
        members = PeerStatus.parse(cluster_url, {"id": "-", **response.json()})
    except (httpx.HTTPError, ValueError) as error:
        log.warning("join: %s: %r", cluster_url, error)
        return False
    if response.status_code != 200 or members is None:
        return False
    node.add_known_peers({m.id: m.url for m in members.members if m.id != node.id})
    return True


async def join_discovered(
    node: RaftNode, settings: DiscoverySettings, resolver: DnsResolver | None = None
) -> None:
    """A node that is in no configuration yet asks the cluster to add it, at
    whatever address of the service belongs to it, until it is a member."""
    resolver = resolver or settings.resolver()
    async with settings.http_client() as client:
        while node.core.membership.get(node.id) is None:
            urls: list[str] = []
            with contextlib.suppress(DnsError):
                urls = await resolver.resolve(settings.name, settings.port)
            statuses = await probe_all(client, [u for u in urls if u != node.url], settings.api_prefix)
            clusters = [s for s in statuses.values() if s.members and s.id != node.id]
            if clusters:
                target = next((s.leader_url for s in clusters if s.leader_url), clusters[0].url)
                if await request_membership(client, target, node, settings.api_prefix):
                    return
            await trio.sleep(1.0)
