"""Joining a running cluster: a node in no configuration asks the cluster
to add it as a learner, at a URL given (``--join``) or found by DNS."""

from __future__ import annotations

import contextlib
import logging

import trio

from .. import schema
from ..client import ClientError, MembershipConflict, TrioClient
from ..node import RaftNode
from ._dns import DnsError, DnsResolver
from ._probe import probe_all, same_cluster
from ._quiet import QuietRepeats
from ._settings import DiscoverySettings

#: A node refused (a wrong token) asks again every second: each reason is
#: logged once, then every 30 s with a count.
log = logging.getLogger("raft_trio.discovery.join")
log.addFilter(QuietRepeats())

#: A join waits for the leader to commit the new learner.
JOIN_TIMEOUT_S = 10.0


async def request_membership(client: TrioClient, cluster_url: str, node: RaftNode) -> bool:
    """Ask the cluster at ``cluster_url`` to add ``node`` as a learner; True
    once it is a member. The node learns the members' addresses from the
    answer: until the leader's entries reach it, its own configuration is
    empty, and it must still answer the leader."""
    cluster = client.at(cluster_url, timeout=JOIN_TIMEOUT_S)
    try:
        # The cluster's term first: a leader of an older term that slept
        # through this id's removal must find this (maybe empty) server
        # ahead of it (RaftCore.observe_term).
        node.observe_term((await cluster.status()).term)
        members = (await cluster.add_member(node.id, node.url)).members
        log.info("joined the cluster through %s", cluster_url)
    except MembershipConflict as conflict:
        if conflict.code != schema.Code.ALREADY_MEMBER:
            log.warning("join: %s refused: %s", cluster_url, conflict)
            return False
        try:
            members = await cluster.members()
        except ClientError as error:
            log.warning("join: %s: %s", cluster_url, error)
            return False
    except ClientError as error:
        log.warning("join: %s: %s", cluster_url, error)
        return False
    node.add_known_peers({m.id: m.url for m in members if m.id != node.id})
    return True


async def join_discovered(
    node: RaftNode, settings: DiscoverySettings, resolver: DnsResolver | None = None
) -> None:
    """A node that is in no configuration yet asks the cluster to add it, at
    whatever address of the service belongs to it, until it is a member."""
    resolver = resolver or settings.resolver()
    async with settings.client() as client:
        while node.membership.get(node.id) is None:
            urls: list[str] = []
            with contextlib.suppress(DnsError):
                urls = await resolver.resolve(settings.name, settings.port)
            statuses = same_cluster(
                await probe_all(client, [u for u in urls if u != node.url]), node.cluster_id
            )
            clusters = [s for s in statuses.values() if s.members and s.id != node.id]
            if clusters:
                target = next((s.leader_url for s in clusters if s.leader_url), clusters[0].url)
                if await request_membership(client, target, node):
                    return
            await trio.sleep(1.0)
