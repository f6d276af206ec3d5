"""Following the replicas: the leader keeps the membership in step with
the service's replicas in DNS.

The leader re-resolves NAME every ``DISCOVERY_INTERVAL_S`` seconds and
probes every address. A replica that is not a member and reports an
empty membership (a new one) is added as a learner; the core promotes it
once it has caught up. A member found at a new address (its container
got a new IP) is moved there: removed, then added again. A member
whose address has been missing from DNS for ``AUTO_REMOVE_AFTER_S``
seconds is removed, only if that variable is set; otherwise members are
removed only by ``raft-trio members remove``. Nothing is removed while
DNS fails or does not list the leader itself.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Literal

import trio

from ..core import AddLearner, ConfChange, RaftError, RemoveMember
from ..node import NotLeaderError, RaftNode, Unavailable, WriteFailed, WriteIndeterminate
from ._dns import DnsError, DnsResolver
from ._probe import MemberView, PeerStatus, probe_all
from ._settings import DiscoverySettings

log = logging.getLogger("raft_trio.discovery")


@dataclasses.dataclass(frozen=True)
class Change:
    kind: Literal["add", "move", "remove"]
    id: str
    url: str
    reason: str


def plan_changes(
    me: str,
    members: Sequence[MemberView],
    probes: Mapping[str, PeerStatus],
    dns_urls: Collection[str],
    last_seen: Mapping[str, float],
    now: float,
    auto_remove_after: float | None,
) -> list[Change]:
    """What the leader changes in the membership after one look at DNS.

    ``probes`` holds the answers of the addresses in ``dns_urls``;
    ``last_seen`` when each member was last found (at its address or
    another); ``auto_remove_after`` None never removes."""
    by_id = {m.id: m for m in members}
    changes: list[Change] = []
    for url in sorted(dns_urls):
        status = probes.get(url)
        if status is None:
            continue
        member = by_id.get(status.id)
        if member is None:
            if not status.members:
                changes.append(Change("add", status.id, url, f"new replica of the service at {url}"))
            continue
        if member.url == url or member.id == me:
            continue
        at_old = probes.get(member.url)
        if at_old is None or at_old.id != member.id:
            changes.append(Change("move", member.id, url, f"{member.id} moved from {member.url} to {url}"))
    if auto_remove_after is not None:
        planned = {c.id for c in changes}
        for member in members:
            missing = now - last_seen.get(member.id, now)
            if member.id != me and member.id not in planned and missing > auto_remove_after:
                reason = f"{member.id} has been missing from DNS for {missing:.0f} s (AUTO_REMOVE_AFTER_S)"
                changes.append(Change("remove", member.id, member.url, reason))
    return changes


async def apply_change(node: RaftNode, change: Change) -> bool:
    """Make ``change`` through the node (the leader); False if it could not
    be made now (it is planned again next round)."""
    steps: list[ConfChange]
    if change.kind == "add":
        steps = [AddLearner(change.id, change.url)]
    elif change.kind == "move":
        steps = [RemoveMember(change.id), AddLearner(change.id, change.url)]
    else:
        steps = [RemoveMember(change.id)]
    log.info("discovery: %s", change.reason)
    try:
        for step in steps:
            await node.change_membership(step)
    except (NotLeaderError, Unavailable, RaftError, WriteFailed, WriteIndeterminate) as error:
        log.warning("discovery: %s %s not done now: %s", change.kind, change.id, error)
        return False
    return True


async def manage_membership(
    node: RaftNode, settings: DiscoverySettings, resolver: DnsResolver | None = None
) -> None:
    """The leader's side of discovery: see the module's documentation."""
    resolver = resolver or settings.resolver()
    last_seen: dict[str, float] = {}
    warned: set[str] = set()
    async with settings.http_client() as client:
        while True:
            await trio.sleep(settings.interval)
            if node.role_name != "leader":
                last_seen.clear()  # a new leader starts its own clock
                continue
            try:
                urls = set(await resolver.resolve(settings.name, settings.port))
            except DnsError as error:
                log.warning("discovery: cannot resolve %s: %s", settings.name, error)
                continue
            now = trio.current_time()
            members = [MemberView(m.id, m.url, m.voter) for m in node.core.membership.members]
            probes = await probe_all(client, urls, settings.api_prefix)
            for member in members:
                last_seen.setdefault(member.id, now)
                if member.url in urls or any(s.id == member.id for s in probes.values()):
                    last_seen[member.id] = now
            trusted = node.url in urls  # DNS that does not list the leader is no ground to remove
            if not trusted and "self" not in warned:
                warned.add("self")
                log.warning("discovery: %s does not list this leader (%s)", settings.name, node.url)
            changes = plan_changes(
                node.id,
                members,
                probes,
                urls,
                last_seen,
                now,
                settings.auto_remove_after if trusted else None,
            )
            for status in probes.values():
                known = any(m.id == status.id for m in members)
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
