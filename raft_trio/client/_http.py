"""What both clients do with httpx alike: make the connection pool, turn
an answer into a :class:`~._calls.Reply` and an exception into a
:class:`~._calls.Failure`."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from ._calls import Failure, Reply, Send, Settings

#: Failures that happen before a request leaves: safe to send it elsewhere.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
#: What httpx raises for a node that is down, slow, or not speaking HTTP.
REQUEST_ERRORS = (httpx.HTTPError, httpx.StreamError, httpx.InvalidURL)


def verify(ca: str | None, cert: tuple[str, str] | None = None) -> ssl.SSLContext | bool:
    """Servers are verified against ``ca`` (the system's bundle without
    one); hostname checking stays on. ``cert`` (certificate and key files)
    is this client's certificate, for a server that asks (mutual TLS)."""
    if not ca and cert is None:
        return True
    context = ssl.create_default_context(cafile=ca)
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


def client_options(settings: Settings, ca: str | None, cert: tuple[str, str] | None = None) -> dict[str, Any]:
    return {
        "trust_env": False,
        "verify": verify(ca, cert),
        "follow_redirects": False,  # followed by hand: the leader is learned from them
        "timeout": httpx.Timeout(settings.attempt_timeout, connect=settings.connect_timeout),
    }


def timeout(action: Send, settings: Settings) -> httpx.Timeout:
    return httpx.Timeout(action.timeout, connect=min(settings.connect_timeout, action.timeout))


def reply(response: httpx.Response) -> Reply:
    return Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content)


def describe(error: Exception) -> str:
    """Why a node did not answer, in a few words."""
    if isinstance(error, httpx.ConnectError):
        return "connection refused" if _refused(error) else "cannot connect"
    if isinstance(error, httpx.ConnectTimeout) and _scheme(error) == "https":
        # A node serving plain HTTP waits for a request line that a TLS
        # handshake never sends: the wrong scheme looks like this.
        return "timed out connecting with TLS: does the node serve https?"
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    if isinstance(error, httpx.RemoteProtocolError | httpx.ReadError):
        return "connection lost"
    return type(error).__name__


def _scheme(error: httpx.RequestError) -> str | None:
    try:
        return error.request.url.scheme
    except RuntimeError:  # raised without its request
        return None


def failure(error: Exception) -> Failure:
    return Failure(describe(error), sent=not isinstance(error, NOT_SENT))


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
