"""Adding a member at an address another member holds is refused: the
messages for the new member would reach the other one, so the new member
would never catch up and the leader would keep trying (etcd refuses a
peer URL that exists the same way)."""

from __future__ import annotations

import json

import trio
import trio.testing

from raft_trio.http.app import create_app
from raft_trio.schema import MAX_MEMBER_ID_LENGTH
from tests.http.test_answers import call
from tests.node.harness import ELECTION_MAX_S, Cluster


async def test_a_member_at_another_members_address_is_refused(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    app = create_app(leader)
    status, _, answer = await call(app, "POST", "/api/members", b'{"id": "n8", "url": "http://127.0.0.1:1"}')
    assert status == 200, answer
    added = leader.membership

    status, _, answer = await call(app, "POST", "/api/members", b'{"id": "n9", "url": "http://127.0.0.1:1/"}')
    assert (status, json.loads(answer)) == (
        409,
        {"error": "n8 is already a member at http://127.0.0.1:1", "code": "change_rejected"},
    )
    # Its own address again is the usual "already a member".
    status, _, answer = await call(app, "POST", "/api/members", b'{"id": "n8", "url": "http://127.0.0.1:1"}')
    assert (status, json.loads(answer)["code"]) == (409, "already_member")
    assert leader.membership == added and added.get("n9") is None


async def test_a_member_url_the_transport_cannot_use_is_a_400(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    before = leader.membership
    status, _, answer = await call(
        create_app(leader), "POST", "/api/members", b'{"id": "n8", "url": "http://n8:80a"}'
    )
    assert status == 400 and "is not a usable URL" in json.loads(answer)["error"]
    assert leader.membership == before


async def test_a_member_id_that_could_not_be_addressed_or_sent_is_a_400(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """An id with a ``/`` was added, and then ``DELETE /api/members/{id}``
    could not reach it (404: the path's own ``/``); one with a space, a
    control or a non-ASCII character never joins (a peer request carries
    the sender's id in a header, where those cannot travel). Refused,
    nothing changed."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    app = create_app(leader)
    before = leader.membership
    for port, member_id in enumerate(["a/b", "n\u00e9", "x\ny", " n9", "n 9"], start=1):
        body = json.dumps({"id": member_id, "url": f"http://127.0.0.1:{port}"}).encode()
        status, _, answer = await call(app, "POST", "/api/members", body)
        assert (status, json.loads(answer)["code"]) == (400, "bad_request"), member_id
    assert leader.membership == before


async def test_a_member_id_too_long_to_remove_is_a_400(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """An id of 70,000 characters was added, and then neither joined nor
    could be removed: ``DELETE /api/members/{id}`` and the member's own
    ``X-Raft-From`` exceed the 64 KiB a request's head may be (431), and
    every status answer carried it (found by hand-fuzzing the members
    API). At most ``MAX_MEMBER_ID_LENGTH`` characters (a DNS name's 253
    fit); nothing changed."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    app = create_app(leader)
    before = leader.membership
    for length in (MAX_MEMBER_ID_LENGTH + 1, 70_000):
        body = json.dumps({"id": "y" * length, "url": "http://127.0.0.1:1"}).encode()
        status, _, answer = await call(app, "POST", "/api/members", body)
        assert (status, json.loads(answer)["code"]) == (400, "bad_request"), answer[:300]
        assert "$.id" in json.loads(answer)["error"]
    assert leader.membership == before
    longest = "y" * MAX_MEMBER_ID_LENGTH
    body = json.dumps({"id": longest, "url": "http://127.0.0.1:1"}).encode()
    assert (await call(app, "POST", "/api/members", body))[0] == 200
    assert leader.membership.get(longest) is not None
