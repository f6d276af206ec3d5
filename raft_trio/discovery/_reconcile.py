"""Following the replicas: every node reaches the members where they are,
and the leader keeps the membership in step with the service in DNS.

Every node re-resolves NAME and probes every address: each node answers
with its id and the URL it advertises. A member found at another URL
than the configuration records (its container came back at another
address) is sent its messages there at once, by every node, so that
replicas that all moved can still elect a leader. The leader, every
``DISCOVERY_INTERVAL_S`` seconds (every second while no leader is
known), makes one change at a time: it records a member's new URL
(etcd's ``member update``; its own too), adds a replica that is not a
member and reports an empty membership as a learner (the core promotes
it once caught up), and, only if ``AUTO_REMOVE_AFTER_S`` is set,
removes a member that has been missing that long, never going below
``BOOTSTRAP_EXPECT`` voters. A member counts as present while a probe
finds it, or while its URL's host resolves to an address of NAME that
no other node answers at (a paused replica). Nothing is removed while
DNS fails or does not list the leader itself.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Literal

import httpx
import trio

from ..core import AddLearner, ConfChange, RaftError, RemoveMember, UpdateMember
from ..node import NotLeaderError, RaftNode, Unavailable, WriteFailed, WriteIndeterminate
from ._dns import DnsError, DnsResolver
from ._probe import MemberView, PeerStatus, probe_all, same_cluster
from ._removal import RemovalWatch
from ._settings import DiscoverySettings

log = logging.getLogger("raft_trio.discovery")


@dataclasses.dataclass(frozen=True)
class Change:
    kind: Literal["add", "update", "remove"]
    id: str
    url: str
    reason: str


def plan_changes(
    me: str,
    my_url: str,
    members: Sequence[MemberView],
    probes: Mapping[str, PeerStatus],
    last_seen: Mapping[str, float],
    now: float,
    auto_remove_after: float | None,
    keep_voters: int,
) -> list[Change]:
    """What the leader changes in the membership after one look at DNS.

    ``probes`` holds the answers of the service's addresses; ``last_seen``
    when each member was last present; ``auto_remove_after`` None never
    removes, and no removal takes the voters below ``keep_voters``."""
    by_id = {m.id: m for m in members}
    changes: list[Change] = []
    mine = by_id.get(me)
    if mine is not None and mine.url != my_url:
        changes.append(Change("update", me, my_url, f"{me} (the leader) is now at {my_url}, not {mine.url}"))
    for url in sorted(probes):
        status = probes[url]
        member = by_id.get(status.id)
        if member is None:
            if not status.members:
                reach = status.reach_url
                changes.append(Change("add", status.id, reach, f"new replica of the service at {reach}"))
            continue
        if member.id == me or member.url == status.reach_url:
            continue
        if status.advertised is None:
            # A node that does not say its URL: moved only if the old
            # address no longer answers as it.
            at_old = probes.get(member.url)
            if at_old is not None and at_old.id == member.id:
                continue
        reason = f"{member.id} is now at {status.reach_url}, not {member.url}"
        changes.append(Change("update", member.id, status.reach_url, reason))
    if auto_remove_after is not None:
        planned = {c.id for c in changes}
        voters = sum(m.voter for m in members)
        for member in members:
            missing = now - last_seen.get(member.id, now)
            if member.id == me or member.id in planned or missing <= auto_remove_after:
                continue
            if member.voter and voters <= keep_voters:
                continue  # never below BOOTSTRAP_EXPECT voters
            reason = f"{member.id} has been missing from DNS for {missing:.0f} s (AUTO_REMOVE_AFTER_S)"
            changes.append(Change("remove", member.id, member.url, reason))
    return changes


async def apply_change(node: RaftNode, change: Change) -> bool:
    """Make ``change`` through the node (the leader); False if it could not
    be made now (it is planned again next round)."""
    step: ConfChange
    if change.kind == "add":
        step = AddLearner(change.id, change.url)
    elif change.kind == "update":
        step = UpdateMember(change.id, change.url)
    else:
        step = RemoveMember(change.id)
    log.info("discovery: %s", change.reason)
    try:
        await node.change_membership(step)
    except (NotLeaderError, Unavailable, RaftError, WriteFailed, WriteIndeterminate) as error:
        log.warning("discovery: %s %s not done now: %s", change.kind, change.id, error)
        return False
    return True


def url_host(url: str) -> str:
    return httpx.URL(url).host


async def present_members(
    members: Sequence[MemberView],
    probes: Mapping[str, PeerStatus],
    dns_urls: Collection[str],
    resolver: DnsResolver,
) -> set[str]:
    """Ids of the members that are there: found by a probe, or whose URL's
    host resolves to an address of the service at which no other node
    answered (a paused replica answers nothing, and stays in DNS)."""
    found = {status.id for status in probes.values()}
    service_hosts = {url_host(url): url for url in dns_urls}
    present = set()
    for member in members:
        if member.id in found:
            present.add(member.id)
            continue
        try:
            addresses = await trio.to_thread.run_sync(resolver.addresses, url_host(member.url))
        except DnsError:
            continue
        for address in addresses:
            url = service_hosts.get(address)
            if url is not None and (url not in probes or probes[url].id == member.id):
                present.add(member.id)
    return present


async def manage_membership(
    node: RaftNode,
    settings: DiscoverySettings,
    resolver: DnsResolver | None = None,
    on_removed: Callable[[str], None] | None = None,
) -> None:
    """Every node's side and the leader's side of discovery: see the
    module's documentation. ``on_removed`` is called (with the reason) once
    this node is certainly removed from its cluster (:class:`RemovalWatch`)."""
    resolver = resolver or settings.resolver()
    removal = RemovalWatch(node.id)
    last_seen: dict[str, float] = {}
    warned: set[str] = set()
    last_plan = -float("inf")
    async with settings.client() as client:
        while True:
            await trio.sleep(min(settings.interval, 1.0))
            leaderless = node.leader_id is None
            if not leaderless and trio.current_time() - last_plan < settings.interval:
                continue
            last_plan = trio.current_time()
            try:
                urls = set(await resolver.resolve(settings.name, settings.port))
            except DnsError as error:
                log.warning("discovery: cannot resolve %s: %s", settings.name, error)
                continue
            probes = same_cluster(await probe_all(client, urls), node.cluster_id)
            member_ids = {m.id for m in node.membership.members}
            node.use_found_addresses({s.id: s.reach_url for s in probes.values() if s.id in member_ids})
            own = [MemberView(m.id, m.url, m.voter) for m in node.membership.members]
            committed = [MemberView(m.id, m.url, m.voter) for m in node.committed_membership.members]
            why = removal.removed(own, committed, probes.values())
            if why is not None and on_removed is not None:
                on_removed(why)
                return
            if node.role_name != "leader":
                last_seen.clear()  # a new leader starts its own clock
                continue
            now = trio.current_time()
            members = [MemberView(m.id, m.url, m.voter) for m in node.membership.members]
            present = await present_members(members, probes, urls, resolver)
            for member in members:
                last_seen.setdefault(member.id, now)
                if member.id in present:
                    last_seen[member.id] = now
            # DNS that does not list the leader is no ground to remove.
            trusted = node.id in present
            if not trusted and "self" not in warned:
                warned.add("self")
                log.warning("discovery: %s does not list this leader (%s)", settings.name, node.url)
            changes = plan_changes(
                node.id,
                node.url,
                members,
                probes,
                last_seen,
                now,
                settings.auto_remove_after if trusted else None,
                settings.expect,
            )
            for status in probes.values():
                known = status.id in member_ids
                if not known and status.members and status.url not in warned:
                    warned.add(status.url)
                    log.warning(
                        "discovery: %s at %s has a membership of its own (another cluster, or a "
                        "removed member): not adding it; recreate it (or wipe its data directory) to "
                        "add it as a new member",
                        status.id,
                        status.url,
                    )
            if changes and node.role_name == "leader":
                await apply_change(node, changes[0])  # one change at a time
