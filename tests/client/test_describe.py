"""How a node that did not answer is described: in a few words a user
can act on."""

from __future__ import annotations

import httpx
import pytest

from raft_trio.client._http import describe


@pytest.mark.parametrize(
    ("error", "said"),
    [
        # A TLS handshake with a node serving plain HTTP: it waits for a
        # request line that never comes, until the connect timeout.
        (
            httpx.ConnectTimeout("handshake", request=httpx.Request("GET", "https://a:9001/api/status")),
            "timed out connecting with TLS: does the node serve https?",
        ),
        (
            httpx.ConnectTimeout("connect", request=httpx.Request("GET", "http://a:9001/api/status")),
            "timed out",
        ),
        (httpx.ConnectTimeout("connect"), "timed out"),
        (httpx.ReadTimeout("read", request=httpx.Request("GET", "https://a:9001/api/status")), "timed out"),
    ],
)
def test_a_connect_timeout_over_tls_suggests_the_scheme(error: Exception, said: str) -> None:
    assert describe(error) == said
