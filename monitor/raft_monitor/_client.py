"""How the monitor talks to nodes: their event stream, their status, the
key-value API (for the page's form), and finding them by DNS.

:class:`NodeClient` is the seam the watcher uses; the tests replace it with
a fake on Trio's fake clock, and :class:`HttpNodeClient` is the real one
(httpx, streaming).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol
from urllib.parse import quote

import dns.exception
import dns.resolver
import httpx
import trio

log = logging.getLogger(__name__)


class NodeUnavailable(Exception):
    """The node did not answer usefully; the message says why, briefly."""


#: What httpx raises for a node that is down, slow, or not speaking HTTP.
REQUEST_ERRORS = (httpx.HTTPError, httpx.StreamError, httpx.InvalidURL)


class NodeClient(Protocol):
    def stream(self, url: str) -> contextlib.AbstractAsyncContextManager[AsyncIterator[str]]:
        """The lines of the node's ``/api/events`` (raises NodeUnavailable)."""
        ...

    async def status(self, url: str) -> Any:
        """The node's ``/api/status`` document (raises NodeUnavailable)."""
        ...


def describe(error: Exception) -> str:
    """A few words for the page: why the node did not answer."""
    if isinstance(error, httpx.ConnectError):
        return "connection refused" if _refused(error) else "cannot connect"
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    if isinstance(error, httpx.RemoteProtocolError | httpx.ReadError):
        return "connection lost"
    return type(error).__name__


def _refused(error: BaseException) -> bool:
    """Whether a ConnectionRefusedError is among the causes (Trio wraps
    each attempt's error in an ExceptionGroup)."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return False


@dataclasses.dataclass(frozen=True)
class KvAnswer:
    status: int
    body: Any
    #: The URL of the node that gave the answer (after redirects).
    node_url: str | None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


class HttpNodeClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        api_prefix: str = "/api",
        connect_timeout: float = 1.0,
        status_timeout: float = 1.0,
        stream_timeout: float = 5.0,
    ) -> None:
        self.http = http
        self.prefix = "/" + api_prefix.strip("/") if api_prefix.strip("/") else ""
        self.connect_timeout = connect_timeout
        self.status_timeout = status_timeout
        self.stream_timeout = stream_timeout

    @contextlib.asynccontextmanager
    async def stream(self, url: str) -> AsyncIterator[AsyncIterator[str]]:
        # The watcher times each line itself (to tell a stalled stream from
        # a dead one); the read timeout only bounds the wait for the answer's
        # head from a node that accepts connections but does not serve them
        # (paused), and must stay above the watcher's ``stall_after``.
        timeout = httpx.Timeout(self.stream_timeout, connect=self.connect_timeout)
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        try:
            async with self.http.stream(
                "GET", f"{url}{self.prefix}/events", headers=headers, timeout=timeout
            ) as response:
                if response.status_code != 200:
                    raise NodeUnavailable(f"/events answered HTTP {response.status_code}")
                yield response.aiter_lines()
        except REQUEST_ERRORS as error:
            raise NodeUnavailable(describe(error)) from error

    async def status(self, url: str) -> Any:
        try:
            response = await self.http.get(f"{url}{self.prefix}/status", timeout=self.status_timeout)
        except REQUEST_ERRORS as error:
            raise NodeUnavailable(describe(error)) from error
        if response.status_code != 200:
            raise NodeUnavailable(f"/status answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as error:
            raise NodeUnavailable("/status answered something that is not JSON") from error

    async def kv(
        self,
        method: str,
        urls: Sequence[str],
        key: str,
        body: bytes | None = None,
        *,
        deadline: float = 8.0,
        timeout: float = 6.0,
    ) -> KvAnswer:
        """``method`` on ``/kv/<key>`` of the first node that answers,
        following the leader's redirects; retries while the cluster says
        "no leader yet" (503 with Retry-After) until ``deadline`` seconds."""
        path = f"{self.prefix}/kv/{quote(key, safe='/')}"
        headers = {"Content-Type": "application/json"} if body is not None else {}
        last = KvAnswer(503, {"error": "no node of the cluster answered"}, None)
        with trio.move_on_after(deadline):
            while True:
                for url in urls:
                    try:
                        response = await self.http.request(
                            method,
                            url + path,
                            content=body,
                            headers=headers,
                            timeout=timeout,
                            follow_redirects=True,
                        )
                    except REQUEST_ERRORS as error:
                        last = KvAnswer(503, {"error": f"{url}: {describe(error)}"}, None)
                        continue
                    try:
                        answer = response.json()
                    except ValueError:
                        answer = {"error": response.text[:500]}
                    keep = {
                        k: v
                        for k, v in response.headers.items()
                        if k.lower() in ("retry-after", "x-raft-leader")
                    }
                    origin = f"{response.url.scheme}://{response.url.netloc.decode('ascii')}"
                    last = KvAnswer(response.status_code, answer, origin, keep)
                    if response.status_code == 503 and "retry-after" in response.headers:
                        continue  # no leader known here (yet): try another node, then again
                    return last
                await trio.sleep(0.25)
        return last


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
