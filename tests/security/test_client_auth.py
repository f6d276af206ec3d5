"""Clients that prove who they are, over real HTTP: auth stays out of the
way until enabled, enabling needs root, a login gives a token that every
request then carries, 401 (who are you) and 403 (not allowed) carry a JSON
error and change nothing, and revocations take effect at once, on open
watch streams too."""

from __future__ import annotations

import json

import httpx
import trio

from raft_trio.security import Security

from .auth_support import PASSWORDS, bearer, login, ok, served_node, set_up_users, tokens


async def test_with_auth_off_everything_works_as_before_and_no_token_is_handed_out() -> None:
    async with served_node() as (_, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client, enable=False)
        await ok(await client.put("/api/kv/anything", json={"value": "v"}))
        response = await client.post("/api/auth/token", json={"name": "alice", "password": "alice-pw"})
        assert response.status_code == 400
        assert response.json()["code"] == "auth_not_enabled"


async def test_auth_cannot_be_enabled_without_root() -> None:
    async with served_node() as (node, url), httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/api/auth/enable")
        assert response.status_code == 409
        assert response.json()["code"] == "root_missing"
        assert not node.kv.auth.enabled


async def test_a_login_gives_a_token_that_proves_the_user() -> None:
    async with served_node() as (_, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        response = await client.post("/api/auth/token", json={"name": "alice", "password": "alice-pw"})
        answer = await ok(response)
        assert answer["expires_in"] == 300
        assert response.headers["Cache-Control"] == "no-store"
        status = await ok(await client.get("/api/auth/status", headers=bearer(answer["token"])))
        assert status == {"enabled": True, "revision": status["revision"], "user": "alice", "root": False}


async def test_a_wrong_password_and_an_unknown_user_get_the_same_401() -> None:
    async with served_node() as (_, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        wrong = await client.post("/api/auth/token", json={"name": "alice", "password": "nope"})
        unknown = await client.post("/api/auth/token", json={"name": "mallory", "password": "nope"})
        assert wrong.status_code == unknown.status_code == 401
        assert (
            wrong.json() == unknown.json() == {"error": "wrong user name or password", "code": "unauthorized"}
        )


async def test_without_a_token_a_request_gets_401_and_changes_nothing() -> None:
    async with served_node() as (node, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        revision = node.kv.revision
        for headers in ({}, bearer("not-a-token"), {"Authorization": "Basic YWxpY2U6YWxpY2UtcHc="}):
            response = await client.put("/api/kv/app/x", json={"value": "v"}, headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert response.json()["code"] == "unauthorized" and response.json()["error"]
        assert node.kv.revision == revision and node.kv.get("app/x") is None


async def test_a_user_without_the_permission_gets_403_and_changes_nothing() -> None:
    async with served_node() as (node, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        bob = bearer(await login(client, "bob"))
        revision = node.kv.revision
        response = await client.put("/api/kv/app/x", json={"value": "v"}, headers=bob)
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"
        assert node.kv.revision == revision and node.kv.get("app/x") is None


async def test_the_admin_token_acts_as_root() -> None:
    admin = "an-admin-token-for-tests"
    async with (
        served_node(Security(admin_token=admin.encode())) as (_, url),
        httpx.AsyncClient(base_url=url) as client,
    ):
        # With auth off, auth management needs the admin token.
        response = await client.post("/api/auth/users", json={"name": "root", "password": "root-pw"})
        assert response.status_code == 401
        await ok(
            await client.post(
                "/api/auth/users", json={"name": "root", "password": "x"}, headers=bearer(admin)
            )
        )
        await ok(await client.post("/api/auth/enable", headers=bearer(admin)))
        await ok(await client.put("/api/kv/secret", json={"value": "v"}, headers=bearer(admin)))
        assert (await client.get("/api/snapshot", headers=bearer(admin))).status_code == 200
        status = await ok(await client.get("/api/auth/status", headers=bearer(admin)))
        assert (status["user"], status["root"]) == ("root", True)
        # A root user's token works for admin requests too.
        root = bearer(await login(client, "root", "x"))
        response = await client.post("/api/leadership/transfer", json={"to": "n1"}, headers=root)
        assert response.status_code not in (401, 403), response.text


async def test_a_deleted_user_and_a_revoked_role_take_effect_at_once() -> None:
    async with served_node() as (_, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        given = await tokens(client)
        root, alice = bearer(given["root"]), bearer(given["alice"])
        await ok(await client.put("/api/kv/app/x", json={"value": "1"}, headers=alice))
        await ok(await client.delete("/api/auth/users/alice/roles/app-rw", headers=root))
        response = await client.put("/api/kv/app/x", json={"value": "2"}, headers=alice)
        assert response.status_code == 403
        await ok(await client.delete("/api/auth/users/alice", headers=root))
        response = await client.get("/api/kv/app/x", headers=alice)
        assert response.status_code == 401
        assert "no longer exists" in response.json()["error"]


async def test_a_new_password_ends_the_old_tokens() -> None:
    async with served_node() as (_, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        given = await tokens(client)
        root, carol = bearer(given["root"]), bearer(given["carol"])
        await ok(
            await client.put("/api/auth/users/carol/password", json={"password": "new-pw"}, headers=root)
        )
        assert (await client.get("/api/status", headers=carol)).status_code == 401
        assert (
            await client.post("/api/auth/token", json={"name": "carol", "password": PASSWORDS["carol"]})
        ).status_code == 401
        await login(client, "carol", "new-pw")


async def test_a_watch_ends_with_an_error_event_once_its_read_permission_is_revoked() -> None:
    async with served_node() as (_, url), httpx.AsyncClient(base_url=url, timeout=10) as client:
        await set_up_users(client)
        given = await tokens(client)
        root, bob = bearer(given["root"]), bearer(given["bob"])
        events: list[str] = []
        async with client.stream("GET", "/api/watch?prefix=app", headers=bob) as stream:
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith(": watching")
            await ok(await client.put("/api/kv/app/1", json={"value": "seen"}, headers=root))
            await ok(await client.delete("/api/auth/users/bob/roles/app-r", headers=root))
            await ok(await client.put("/api/kv/app/2", json={"value": "hidden"}, headers=root))
            with trio.fail_after(5):
                events.extend([line async for line in lines])
        text = "\n".join(events)
        assert "seen" in text and "hidden" not in text
        error = json.loads(text.split("event: error\ndata: ")[1].split("\n")[0])
        assert error["code"] == "permission_denied"


async def test_a_range_needs_read_on_all_of_it_and_a_watch_on_all_of_its_prefix() -> None:
    async with served_node() as (_, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        bob = bearer(await login(client, "bob"))
        assert (await client.get("/api/kv?prefix=app/", headers=bob)).status_code == 200
        assert (await client.get("/api/kv?start=app&end=apq", headers=bob)).status_code == 200
        assert (await client.get("/api/kv?prefix=ap", headers=bob)).status_code == 403
        assert (await client.get("/api/kv", headers=bob)).status_code == 403
        assert (await client.get("/api/watch?prefix=", headers=bob)).status_code == 403
        assert (await client.get("/api/watch?key=other", headers=bob)).status_code == 403


async def test_a_transaction_needs_every_compare_and_operation() -> None:
    async with served_node() as (node, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        alice = bearer(await login(client, "alice"))
        allowed = {
            "compare": [{"key": "app/a", "target": "exists", "op": "=", "value": False}],
            "success": [{"put": {"key": "app/a", "value": "1"}}],
            "failure": [],
        }
        assert (await ok(await client.post("/api/txn", json=allowed, headers=alice)))["succeeded"]
        revision = node.kv.revision
        for denied in (
            {
                "compare": [{"key": "other", "target": "exists", "op": "=", "value": False}],
                "success": [],
                "failure": [],
            },
            {"compare": [], "success": [], "failure": [{"delete": {"key": "other"}}]},
            {"compare": [], "success": [{"range": {"prefix": ""}}], "failure": []},
        ):
            response = await client.post("/api/txn", json=denied, headers=alice)
            assert response.status_code == 403, denied
        assert node.kv.revision == revision


async def test_users_and_members_may_not_share_a_name() -> None:
    """With mutual TLS both are certificate CNs: a user named like a
    member would be proved by the member's own certificate, and a
    certificate made for it would speak for the member to its peers. So
    either refuses the other's name (409 ``name_taken``), changing nothing."""
    async with served_node() as (node, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        root = bearer(await login(client, "root"))
        revision = node.kv.auth.revision
        taken = await client.post("/api/auth/users", json={"name": "n1", "password": "pw"}, headers=root)
        assert taken.status_code == 409 and taken.json()["code"] == "name_taken", taken.text
        assert node.kv.auth.user("n1") is None and node.kv.auth.revision == revision
        member = {"id": "alice", "url": "http://127.0.0.1:9"}
        taken = await client.post("/api/members", json=member, headers=root)
        assert taken.status_code == 409 and taken.json()["code"] == "name_taken", taken.text
        assert "alice" not in node.membership.ids
