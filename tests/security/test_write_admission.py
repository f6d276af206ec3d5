"""A write is refused where it applies once the token that admitted it no
longer holds: its user's password changed (or the user was made again)
after the gate admitted it and before it reached the log."""

from __future__ import annotations

import httpx
import pytest

from raft_trio.kv import Caller, Command, Result, UserPassword
from raft_trio.node import RaftNode

from .auth_support import bearer, login, ok, served_node, set_up_users


def password_changed_first(node: RaftNode) -> None:
    """The node's next write first has alice's password changed (through
    the log): the change applies between the gate's check and the write."""
    write = node.write

    async def changed_first(command: Command) -> Result:
        del node.write  # back to the node's own
        await write(UserPassword("alice", "a-new-hash", caller=Caller("root")))
        return await write(command)

    node.write = changed_first  # type: ignore[method-assign]


@pytest.mark.parametrize("key", ["app-x", "app/x"])  # the lean route, Quart's
async def test_a_write_whose_token_ended_before_it_applied_changes_nothing(key: str) -> None:
    async with served_node() as (node, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        alice = bearer(await login(client, "alice"))
        await ok(await client.put(f"/api/kv/{key}", json={"value": "before"}, headers=alice))
        password_changed_first(node)
        response = await client.put(f"/api/kv/{key}", json={"value": "after"}, headers=alice)
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "permission_denied"
        found = node.kv.get(key)
        assert found is not None and found.value == "before"
