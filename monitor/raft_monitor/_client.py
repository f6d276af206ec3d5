"""How the monitor talks to nodes: their event stream, their status, the
key-value API (for the page's form), and finding them by DNS.

:class:`NodeClient` is the seam the watcher uses; the tests replace it with
a fake on Trio's fake clock, and :class:`HttpNodeClient` is the real one,
raft-trio's public client (:mod:`raft_trio.client`) over one shared
connection pool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import dns.exception
import dns.resolver
import httpx
import msgspec

from raft_trio import schema
from raft_trio.client import ApiError, ClientError, NoEndpointAnswered, TrioClient, Unavailable
from raft_trio.client.sse import SseComment, SseDropped, SseEvent

log = logging.getLogger(__name__)

SseItem = SseEvent | SseComment | SseDropped

#: A node's events are status and membership documents, a few hundred
#: bytes a member: anything near this is not a node talking.
MAX_EVENT_BYTES = 1 << 20


class NodeUnavailable(Exception):
    """The node did not answer usefully; the message says why, briefly."""


class NodeClient(Protocol):
    def stream(self, url: str) -> contextlib.AbstractAsyncContextManager[AsyncIterator[SseItem]]:
        """The node's ``/api/events``, parsed (raises NodeUnavailable)."""
        ...

    async def status(self, url: str) -> schema.Status:
        """The node's ``/api/status`` document (raises NodeUnavailable)."""
        ...


@dataclasses.dataclass(frozen=True)
class KvAnswer:
    status: int
    body: msgspec.Struct
    #: The URL of the node that gave the answer (after redirects).
    node_url: str | None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


def _reason(error: ClientError) -> str:
    if isinstance(error, NoEndpointAnswered) and error.tried:
        return error.tried[-1][1]
    if isinstance(error, ApiError) and error.status is not None:
        return f"/events answered HTTP {error.status}"
    return str(error)


class HttpNodeClient:
    """The real :class:`NodeClient`: a :class:`~raft_trio.client.TrioClient`
    for each request, all over the one connection pool ``http``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_prefix: str = "/api",
        connect_timeout: float = 1.0,
        status_timeout: float = 1.0,
        stream_timeout: float = 5.0,
        *,
        user: str | None = None,
        password: str | None = None,
        admin_token: str | None = None,
    ) -> None:
        self.http = http
        self.api_prefix = api_prefix
        self.connect_timeout = connect_timeout
        self.status_timeout = status_timeout
        self.stream_timeout = stream_timeout
        # With auth on, the monitor is a user of the cluster: the clients
        # made for each request share this one's login (one token for all),
        # or send the admin token, which the nodes take as root.
        authorization = (lambda: f"Bearer {admin_token}") if admin_token and user is None else None
        self._cluster = TrioClient(
            (),
            connect_timeout=connect_timeout,
            api_prefix=api_prefix,
            user=user,
            password=password,
            admin_token=admin_token,
            authorization=authorization,
            http=http,
        )

    def client(self, endpoints: str | Sequence[str], timeout: float) -> TrioClient:
        return self._cluster.at(endpoints, timeout=timeout)

    @contextlib.asynccontextmanager
    async def stream(self, url: str) -> AsyncIterator[AsyncIterator[SseItem]]:
        # The watcher times each item itself (to tell a stalled stream from
        # a dead one); the read timeout only bounds the wait for the answer's
        # head from a node that accepts connections but does not serve them
        # (paused), and must stay above the watcher's ``stall_after``.
        node = self.client(url, self.stream_timeout)
        try:
            async with node.open_sse(
                "/events", max_event_bytes=MAX_EVENT_BYTES, stall=self.stream_timeout
            ) as items:
                yield items
        except ClientError as error:
            raise NodeUnavailable(_reason(error)) from error

    async def status(self, url: str) -> schema.Status:
        try:
            return await self.client(url, self.status_timeout).status()
        except ClientError as error:
            raise NodeUnavailable(_reason(error).replace("/events", "/status")) from error

    async def kv(
        self, method: str, urls: Sequence[str], key: str, body: bytes | None = None, *, deadline: float = 8.0
    ) -> KvAnswer:
        """``method`` (PUT or GET) on the key, through the first node that
        answers, following the leader's redirects; retries while the
        cluster has no leader until ``deadline`` seconds."""
        if method == "PUT":
            try:
                request = msgspec.json.decode(body or b"", type=schema.PutRequest)
            except (msgspec.DecodeError, msgspec.ValidationError) as error:
                message = f'the body must be {{"value": "<string>"}}: {error}'
                return KvAnswer(400, schema.ErrorAnswer(message, schema.Code.BAD_REQUEST), None)
        cluster = self.client(list(urls), deadline)
        answer: msgspec.Struct
        try:
            if method != "PUT":
                answer = await cluster.get(key)
            elif request.expect is msgspec.UNSET:
                answer = await cluster.put(key, request.value, lease=request.lease)
            else:
                answer = await cluster.compare_and_set(
                    key, request.expect, request.value, lease=request.lease
                )
        except ApiError as error:
            headers = {"Retry-After": "1"} if isinstance(error, Unavailable) else {}
            return KvAnswer(error.status or 503, error.answer, error.url, headers)
        except ClientError as error:
            return KvAnswer(503, schema.ErrorAnswer(str(error), schema.Code.UNAVAILABLE), None)
        return KvAnswer(200, answer, cluster.endpoints.last)


def resolve_addresses(name: str) -> list[str]:
    """IPv4 addresses of ``name`` (blocking: run it in a thread).

    DNS A records through dnspython (a service name answering with every
    replica), falling back to the system resolver for names that live in
    /etc/hosts."""
    try:
        answer = dns.resolver.resolve(name, "A")
        return sorted({record.address for record in answer})
    except dns.exception.DNSException as error:
        log.debug("DNS lookup of %s failed (%s); trying the system resolver", name, error)
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})
