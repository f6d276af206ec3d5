"""What a node says about itself: its ``/api/status`` as the other nodes
see it (its id, its members, its leader, its bootstrap state)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import httpx
import trio

PROBE_TIMEOUT_S = 1.5


@dataclasses.dataclass(frozen=True)
class MemberView:
    id: str
    url: str
    voter: bool = True


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

    @classmethod
    def parse(cls, url: str, doc: Any) -> PeerStatus | None:
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or not doc["id"]:
            return None
        members = []
        for item in doc.get("members") or []:
            if (
                isinstance(item, dict)
                and isinstance(item.get("id"), str)
                and isinstance(item.get("url"), str)
            ):
                members.append(MemberView(item["id"], item["url"], bool(item.get("voter", True))))
        bootstrap = doc.get("bootstrap")
        waiting = isinstance(bootstrap, dict)
        ack = bootstrap.get("ack") if isinstance(bootstrap, dict) else None
        leader_url = doc.get("leader_url")
        return cls(
            url=url,
            id=doc["id"],
            members=tuple(members),
            leader_url=leader_url if isinstance(leader_url, str) and leader_url else None,
            waiting=waiting,
            ack=ack if isinstance(ack, str) and ack else None,
        )

    def member(self, node_id: str) -> MemberView | None:
        for member in self.members:
            if member.id == node_id:
                return member
        return None


async def probe(client: httpx.AsyncClient, url: str, api_prefix: str = "/api") -> PeerStatus | None:
    """Ask ``url`` who it is; None if it does not answer sensibly."""
    try:
        response = await client.get(f"{url}{api_prefix}/status", timeout=PROBE_TIMEOUT_S)
        if response.status_code != 200:
            return None
        return PeerStatus.parse(url, response.json())
    except (httpx.HTTPError, ValueError):
        return None


async def probe_all(
    client: httpx.AsyncClient, urls: Iterable[str], api_prefix: str = "/api"
) -> dict[str, PeerStatus]:
    """Probe every URL at once; the ones that answered."""
    found: dict[str, PeerStatus] = {}

    async def one(url: str) -> None:
        status = await probe(client, url, api_prefix)
        if status is not None:
            found[url] = status

    async with trio.open_nursery() as nursery:
        for url in set(urls):
            nursery.start_soon(one, url)
    return found
