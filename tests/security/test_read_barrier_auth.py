"""A read is decided on the auth state its read barrier reached, whatever
the route: a change of auth acknowledged while the barrier waited (auth
turned on, root taken from the user) refuses a range and a lease's keys
exactly as it refuses a single key's read."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import trio

from raft_trio.kv import AuthEnable, Caller, UserGrantRole, UserRevokeRole
from raft_trio.node import RaftNode

from .auth_support import bearer, login, ok, served_node, set_up_users

#: A range, a single key, a lease's keys ({lease}: its id), a backup (with
#: every key, the password hashes and the token key), users and roles.
READS = (
    "/api/kv?prefix=app",
    "/api/kv/app/x",
    "/api/leases/{lease}",
    "/api/snapshot",
    "/api/auth/users",
    "/api/auth/users/alice",
    "/api/auth/roles",
    "/api/auth/roles/app-r",
)


def during_next_barrier(node: RaftNode, change: Callable[[], Awaitable[object]]) -> None:
    """The node's next read barrier first waits for ``change`` (a write
    through the log): the change is acknowledged before the read's point."""
    barrier = node.linearizable_barrier

    async def changed_first() -> None:
        del node.linearizable_barrier  # back to the node's own
        await change()
        await barrier()

    node.linearizable_barrier = changed_first  # type: ignore[method-assign]


async def keys_to_read(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """``app/x`` and ``app/y``, the latter on a lease (its id)."""
    await ok(await client.put("/api/kv/app/x", json={"value": "secret"}, headers=headers))
    lease = str((await ok(await client.post("/api/leases", json={"ttl": 60}, headers=headers)))["id"])
    await ok(await client.put("/api/kv/app/y", json={"value": "v", "lease": lease}, headers=headers))
    return lease


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "permission_denied"
    assert "secret" not in response.text and "app/y" not in response.text and "alice" not in response.text


@pytest.fixture
async def users() -> AsyncIterator[tuple[RaftNode, httpx.AsyncClient]]:
    async with served_node() as (node, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client, enable=False)
        yield node, client


@pytest.mark.parametrize("read", READS)
async def test_a_read_admitted_before_auth_was_turned_on_is_refused(
    users: tuple[RaftNode, httpx.AsyncClient], read: str
) -> None:
    node, client = users
    lease = await keys_to_read(client, {})

    async def enable() -> None:
        await node.write(AuthEnable(b"k" * 32, caller=Caller("root")))

    during_next_barrier(node, enable)
    assert_refused(await client.get(read.format(lease=lease)))
    assert node.kv.auth.enabled


@pytest.mark.parametrize("read", READS)
async def test_a_read_by_a_root_whose_role_went_during_the_barrier_is_refused(
    users: tuple[RaftNode, httpx.AsyncClient], read: str
) -> None:
    node, client = users
    await ok(await client.put("/api/auth/users/carol/roles/root"))
    await ok(await client.post("/api/auth/enable"))
    carol = bearer(await login(client, "carol"))
    lease = await keys_to_read(client, carol)

    async def take_root() -> None:
        await node.write(UserRevokeRole("carol", "root", caller=Caller("root")))

    during_next_barrier(node, take_root)
    assert_refused(await client.get(read.format(lease=lease), headers=carol))
    await node.write(UserGrantRole("carol", "root", caller=Caller("root")))
    response = await client.get(read.format(lease=lease), headers=carol)
    assert response.status_code == 200, response.text


async def test_a_keepalive_whose_permission_went_during_the_barrier_extends_nothing(
    users: tuple[RaftNode, httpx.AsyncClient],
) -> None:
    """A keep-alive waits for a barrier before it extends the lease: a
    revocation acknowledged meanwhile refuses it, and the lease ends when
    it would have."""
    node, client = users
    await ok(await client.post("/api/auth/enable"))
    alice = bearer(await login(client, "alice"))
    lease = await keys_to_read(client, alice)
    number = int(lease, 16)
    now = trio.current_time()
    before = node.leases.remaining(number, now)

    async def take_write() -> None:
        await node.write(UserRevokeRole("alice", "app-rw", caller=Caller("root")))

    during_next_barrier(node, take_write)
    response = await client.post(f"/api/leases/{lease}/keepalive", headers=alice)
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "permission_denied"
    assert node.leases.remaining(number, now) == before
