"""What a node says about itself: its ``/api/status`` as the other nodes
see it (its id, the URL it advertises, its members, its leader, its
bootstrap state, and as leader how far its log is committed)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import trio

from .. import schema
from ..client import ClientError, TrioClient

PROBE_TIMEOUT_S = 1.5


@dataclasses.dataclass(frozen=True)
class MemberView:
    id: str
    url: str
    voter: bool = True
    #: The cluster recorded that it started (it acknowledged entries).
    started: bool = False


@dataclasses.dataclass(frozen=True)
class PeerStatus:
    """A node's ``/api/status``, as probed at ``url``."""

    url: str
    id: str
    members: tuple[MemberView, ...] = ()
    leader_url: str | None = None
    #: Still in the bootstrap phase (serving the waiting page).
    waiting: bool = False
    #: The seed it acked, while waiting.
    ack: str | None = None
    #: The URL it says the others reach it at (None: it does not say).
    advertised: str | None = None
    #: As leader: its term, and its commit and last log index.
    leader_log: tuple[int, int, int] | None = None
    #: The cluster id it records (None: none, or it does not say).
    cluster_id: str | None = None

    @property
    def reach_url(self) -> str:
        """Where the others should reach it: its own word, else where it
        was probed."""
        return self.advertised or self.url

    @classmethod
    def of(cls, url: str, status: schema.Status) -> PeerStatus:
        bootstrap = status.bootstrap if isinstance(status.bootstrap, schema.Bootstrap) else None
        return cls(
            url=url,
            id=status.id,
            members=tuple(MemberView(m.id, m.url, m.voter, m.started) for m in status.members),
            leader_url=status.leader_url or None,
            waiting=bootstrap is not None,
            ack=bootstrap.ack or None if bootstrap is not None else None,
            advertised=status.url.rstrip("/") if status.url else None,
            leader_log=(
                (status.term, status.commit_index, status.last_log_index) if status.role == "leader" else None
            ),
            cluster_id=status.cluster_id,
        )

    def foreign(self, cluster_id: str | None) -> bool:
        """It records another cluster id than ``cluster_id`` (either
        unknown: it cannot tell, as the peers' own check)."""
        return cluster_id is not None and self.cluster_id is not None and self.cluster_id != cluster_id

    def member(self, node_id: str) -> MemberView | None:
        for member in self.members:
            if member.id == node_id:
                return member
        return None


async def probe(client: TrioClient, url: str) -> PeerStatus | None:
    """Ask ``url`` who it is; None if it does not answer sensibly."""
    try:
        return PeerStatus.of(url, await client.at(url, timeout=PROBE_TIMEOUT_S).status())
    except ClientError:
        return None


async def probe_all(client: TrioClient, urls: Iterable[str]) -> dict[str, PeerStatus]:
    """Probe every URL at once; the ones that answered."""
    found: dict[str, PeerStatus] = {}

    async def one(url: str) -> None:
        status = await probe(client, url)
        if status is not None:
            found[url] = status

    async with trio.open_nursery() as nursery:
        for url in set(urls):
            nursery.start_soon(one, url)
    return found


def same_cluster(statuses: dict[str, PeerStatus], cluster_id: str | None) -> dict[str, PeerStatus]:
    """``statuses`` but for those of another cluster than ``cluster_id``
    (replicas of another cluster under the same DNS name): their peers
    refuse this cluster's messages, so a node that joined theirs, or that
    their leader added, was stuck as a learner for ever."""
    return {url: s for url, s in statuses.items() if not s.foreign(cluster_id)}
