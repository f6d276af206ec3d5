"""Hostile credentials, over real HTTP: expired, forged and tampered
tokens, a token replayed after its user was deleted (and re-created), a
token of another cluster, password guessing slowed down by the documented
limit, and a node cut off from its cluster refusing to decide."""

from __future__ import annotations

import base64
import time

import httpx
import msgspec
import trio
from quart_trio import QuartTrio

from raft_trio.auth import issue_token, token_key
from raft_trio.auth._tokens import Claims
from raft_trio.core import Membership, Snapshot, SnapshotMeta
from raft_trio.http.app import create_app
from raft_trio.http.auth_routes import LOGIN_THROTTLE_KEY
from raft_trio.kv import ROOT, AuthEnable, Command, KeyValueStore, UserAdd
from raft_trio.node import RaftNode, Timing
from raft_trio.security import Security
from tests.node.harness import MemoryNodeStorage

from .auth_support import bearer, login, ok, served_node, set_up_users


async def refused_401(client: httpx.AsyncClient, token: str, reason: str) -> None:
    response = await client.get("/api/kv/app/x", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "unauthorized"
    assert reason in response.json()["error"], response.json()


async def test_an_expired_token_is_refused() -> None:
    async with served_node() as (node, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        alice = node.kv.auth.user("alice")
        assert alice is not None
        key = token_key(node.kv.auth.signing_key, None)
        expired = issue_token(key, "alice", alice.revision, 300, time.time() - 301)
        await refused_401(client, expired, "expired")
        fresh = issue_token(key, "alice", alice.revision, 300, time.time())
        assert (await client.get("/api/kv/app/x", headers=bearer(fresh))).status_code == 404


async def test_a_token_lasts_what_the_node_is_configured_for() -> None:
    async with (
        served_node(Security(token_ttl_s=60)) as (_, url),
        httpx.AsyncClient(base_url=url) as client,
    ):
        await set_up_users(client)
        answer = await ok(await client.post("/api/auth/token", json={"name": "bob", "password": "bob-pw"}))
        assert answer["expires_in"] == 60


async def test_forged_and_tampered_tokens_are_refused() -> None:
    async with served_node() as (_, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        token = await login(client, "carol")
        prefix, claims, mac = token.split(".")
        other_mac = ("A" if mac[0] != "A" else "B") + mac[1:]
        await refused_401(client, f"{prefix}.{claims}.{other_mac}", "not signed by this cluster")
        raw = base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4))
        as_root = msgspec.structs.replace(msgspec.msgpack.decode(raw, type=Claims), user=ROOT)
        encoded = base64.urlsafe_b64encode(msgspec.msgpack.encode(as_root)).rstrip(b"=").decode()
        await refused_401(client, f"{prefix}.{encoded}.{mac}", "not signed by this cluster")
        for garbage in ("", "x", "rt1..", "rt1.!.!", "a" * 5000):
            response = await client.get(
                "/api/status", headers=bearer(garbage) if garbage else {"Authorization": "Bearer"}
            )
            assert response.status_code == 401, garbage
            assert response.json()["code"] == "unauthorized"


async def test_a_token_replayed_after_its_user_was_deleted_and_recreated_is_refused() -> None:
    async with served_node() as (_, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        root, carol = bearer(await login(client, "root")), await login(client, "carol")
        await ok(await client.delete("/api/auth/users/carol", headers=root))
        await refused_401(client, carol, "no longer exists")
        await ok(
            await client.post("/api/auth/users", json={"name": "carol", "password": "carol-pw"}, headers=root)
        )
        await refused_401(client, carol, "re-created")


async def test_a_token_of_another_cluster_is_refused() -> None:
    async with (
        served_node() as (_, ours),
        served_node() as (_, theirs),
        httpx.AsyncClient(base_url=ours) as here,
        httpx.AsyncClient(base_url=theirs) as there,
    ):
        await set_up_users(here)
        await set_up_users(there)
        foreign = await login(there, "root")
        response = await here.get("/api/status", headers=bearer(foreign))
        assert response.status_code == 401
        assert "not signed by this cluster" in response.json()["error"]


async def test_password_guessing_is_slowed_after_five_failures() -> None:
    """Five wrong guesses are answered (401), the sixth too, and then the
    name (and address) must wait, even with the right password (429,
    ``Retry-After``); once the wait is over the right password works."""
    async with served_node() as (_, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        for guess in range(6):
            response = await client.post(
                "/api/auth/token", json={"name": "alice", "password": f"guess-{guess}"}
            )
            assert response.status_code == 401, (guess, response.text)
        response = await client.post("/api/auth/token", json={"name": "alice", "password": "alice-pw"})
        assert response.status_code == 429
        assert response.json()["code"] == "too_many_attempts"
        wait = int(response.headers["Retry-After"])
        assert wait == 1
        response = await client.post("/api/auth/token", json={"name": "bob", "password": "bob-pw"})
        assert response.status_code == 429  # the same address
        await trio.sleep(wait)
        await ok(await client.post("/api/auth/token", json={"name": "alice", "password": "alice-pw"}))


async def test_guesses_sent_all_at_once_are_slowed_as_one_at_a_time() -> None:
    """Twelve guesses in flight together: as many are checked as one at a
    time would be before the first wait (six), the rest answered 429 at
    once; each guess still being checked counts as a failure."""
    async with served_node() as (_, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        statuses: list[int] = []

        async def guess(number: int) -> None:
            response = await client.post(
                "/api/auth/token", json={"name": "alice", "password": f"guess-{number}"}
            )
            statuses.append(response.status_code)

        async with trio.open_nursery() as nursery:
            for number in range(12):
                nursery.start_soon(guess, number)
        assert sorted(statuses) == [401] * 6 + [429] * 6


async def test_a_login_under_a_name_no_user_can_have_is_not_remembered_by_it() -> None:
    """The failed-login limit remembers names, up to 10,000 of them: a
    name of megabytes (the body may hold 8 MiB) would make that bound
    gigabytes. A name no user may have (over 128 characters, say) is
    answered as a wrong password and counted against the address only."""
    apps: list[QuartTrio] = []

    def keep(node: RaftNode) -> QuartTrio:
        apps.append(create_app(node))
        return apps[-1]

    async with served_node(make_app=keep) as (_, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        throttle = apps[0].extensions[LOGIN_THROTTLE_KEY]
        name = "x" * 100_000
        response = await client.post("/api/auth/token", json={"name": name, "password": "guess"})
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
        assert len(throttle) == 1  # the address only
        assert throttle.wait_s(("name", name)) == 0.0


def node_with_auth_but_no_leader() -> tuple[RaftNode, str]:
    """A node holding users and auth on (from a snapshot), not running: it
    knows no leader, so it is out of touch; and a good token for alice."""
    state = KeyValueStore()
    commands: list[Command] = [UserAdd(ROOT, None), UserAdd("alice", None), AuthEnable(b"k" * 32)]
    for index, command in enumerate(commands, start=1):
        state.apply(index, command)
    members = Membership.of({"n1": "http://n1", "n2": "http://n2", "n3": "http://n3"})
    storage = MemoryNodeStorage(Snapshot(SnapshotMeta(3, 1, members), state.snapshot()))
    node = RaftNode("n1", "http://n1", storage, Timing(), seed=1)
    alice = node.kv.auth.user("alice")
    assert alice is not None and node.kv.auth.enabled
    token = issue_token(token_key(node.kv.auth.signing_key, None), "alice", alice.revision, 300, time.time())
    return node, token


async def test_a_node_out_of_touch_refuses_to_decide_but_shows_its_status() -> None:
    node, token = node_with_auth_but_no_leader()
    client = create_app(node).test_client()
    response = await client.get("/api/kv/x?consistency=stale", headers=bearer(token))
    assert response.status_code == 503
    body = await response.get_json()
    assert body["code"] == "unavailable" and "no leader is known" in body["error"]
    assert response.headers["Retry-After"] == "1"
    assert (await client.get("/api/status", headers=bearer(token))).status_code == 200
    assert (await client.get("/api/status")).status_code == 401
