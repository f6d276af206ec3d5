"""The blocking client's backup download (``Client.snapshot``) follows
the leader's redirects by hand, as calls do, and must end however the
nodes answer."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from raft_trio.client import Client, NoEndpointAnswered

A, B = "http://a:9001", "http://b:9001"
#: More requests than a download that ends could make here.
ENOUGH = 20


def test_two_nodes_that_name_each_other_the_leader_do_not_loop_for_ever() -> None:
    """During a leader change a node can redirect to one that redirects
    back. The download tries each node once and then gives up, instead of
    going back and forth without end (it has no timeout of its own)."""
    requests: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(str(request.url))
        if len(requests) > ENOUGH:
            raise AssertionError(f"still going after {ENOUGH} requests: {requests[-4:]}")
        other = B if request.url.host == "a" else A
        body = msgspec.json.encode({"error": "not the leader", "code": "not_leader", "leader_id": "n"})
        return httpx.Response(307, headers={"Location": other + "/api/snapshot"}, content=body)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with (
        Client([A, B], http=http) as client,
        pytest.raises(NoEndpointAnswered) as raised,
        client.snapshot() as chunks,
    ):
        b"".join(chunks)
    assert [url for url, _ in raised.value.tried] == [A, B]
    assert len(requests) == 2


def test_a_redirect_from_https_to_http_is_not_followed() -> None:
    """The download carries the admin token: a node of a TLS cluster that
    names a leader at an http URL does not get it sent in clear."""
    requests: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(str(request.url))
        body = msgspec.json.encode({"error": "not the leader", "code": "not_leader", "leader_id": "n"})
        return httpx.Response(307, headers={"Location": "http://b:9001/api/snapshot"}, content=body)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with (
        Client(["https://a:9001"], http=http, admin_token="the-admin-token-of-a-test") as client,
        pytest.raises(NoEndpointAnswered, match="without TLS: not followed"),
        client.snapshot() as chunks,
    ):
        b"".join(chunks)
    assert requests == ["https://a:9001/api/snapshot"]
