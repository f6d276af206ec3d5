"""A one-node cluster served over real HTTP in this Trio run (a RaftNode
on in-memory storage behind Hypercorn on 127.0.0.1), and the users the
auth tests share:

- ``root`` (password ``root-pw``), the role root;
- ``alice`` (``alice-pw``), role ``app-rw``: readwrite on the prefix ``app``;
- ``bob`` (``bob-pw``), role ``app-r``: read on the prefix ``app``;
- ``carol`` (``carol-pw``), no role: she may only log in and look.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import httpx
import trio
from quart_trio import QuartTrio

from raft_trio.asgi import serve_app
from raft_trio.core import Membership, Snapshot, SnapshotMeta
from raft_trio.http.app import create_app, front_door
from raft_trio.node import RaftNode, Timing
from raft_trio.security import Security
from raft_trio.testing.waiting import wait_for
from tests.node.harness import MemoryNodeStorage

#: One node elects itself within its election timeout.
FAST = Timing(tick_ms=10, heartbeat_ms=50, election_min_ms=300, election_max_ms=600)


async def in_place(function: Callable[..., Any], *args: Any) -> Any:
    """The in-memory disk's writes, on the event loop: a thread started on
    a loaded machine can take longer than the stall limit (an election
    timeout), and a stalled leader steps down."""
    return function(*args)


PASSWORDS = {"root": "root-pw", "alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}


@contextlib.asynccontextmanager
async def served_node(
    security: Security | None = None,
    *,
    scheme: str = "http",
    make_app: Callable[[RaftNode], QuartTrio] = create_app,
) -> AsyncIterator[tuple[RaftNode, str]]:
    """A leader serving on a free port: (node, base URL); ``make_app``
    makes its app (a test may keep it to look inside)."""
    storage = MemoryNodeStorage(Snapshot(SnapshotMeta(0, 0, Membership.of({"n1": "http://127.0.0.1:1"}))))
    node = RaftNode(
        "n1", "http://127.0.0.1:1", storage, FAST, seed=1, security=security or Security(), run_disk=in_place
    )
    app = make_app(node)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        binds = await nursery.start(
            partial(serve_app, app, "127.0.0.1", 0, shutdown, "", tls=security, front=front_door(app))
        )
        port = binds[0].rsplit(":", 1)[1]
        with trio.fail_after(5):
            await wait_for(lambda: node.is_leader and node.out_of_touch() is None)
        try:
            yield node, f"{scheme}://127.0.0.1:{port}"
        finally:
            shutdown.set()
            node.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


async def set_up_users(client: httpx.AsyncClient, *, enable: bool = True) -> None:
    """The users above, then auth on (all while auth is off: no credential)."""
    for name, password in PASSWORDS.items():
        await ok(await client.post("/api/auth/users", json={"name": name, "password": password}))
    for role, access in (("app-rw", "readwrite"), ("app-r", "read")):
        await ok(await client.post("/api/auth/roles", json={"name": role}))
        await ok(
            await client.post(
                f"/api/auth/roles/{role}/permissions", json={"access": access, "key": "app", "prefix": True}
            )
        )
    await ok(await client.put("/api/auth/users/alice/roles/app-rw"))
    await ok(await client.put("/api/auth/users/bob/roles/app-r"))
    if enable:
        await ok(await client.post("/api/auth/enable"))


async def login(client: httpx.AsyncClient, name: str, password: str | None = None) -> str:
    answer = await ok(
        await client.post("/api/auth/token", json={"name": name, "password": password or PASSWORDS[name]})
    )
    assert isinstance(answer["token"], str)
    return str(answer["token"])


async def tokens(client: httpx.AsyncClient) -> dict[str, str]:
    return {name: await login(client, name) for name in PASSWORDS}
