"""Locks with auth on, over real HTTP: a user with readwrite on the lock's
prefix takes and releases it (the Trio client, and the blocking one whose
lock logs in from its own thread, and ``raft-trio lock --user``); a user
who may only read is refused with 403 and leaves nothing behind, and
``raft-trio lock`` without a user exits 2."""

from __future__ import annotations

import httpx
import pytest
import trio

from raft_trio.client import Client, PermissionDenied, TrioClient
from raft_trio.testing.processes import cli_command

from .auth_support import served_node, set_up_users


async def test_a_user_with_readwrite_takes_the_lock_and_a_reader_is_refused() -> None:
    async with served_node() as (_, url), httpx.AsyncClient(base_url=url) as http:
        await set_up_users(http)
        async with TrioClient(url, user="alice", password="alice-pw") as alice:
            async with alice.lock("app/nightly", ttl=3) as token:
                holder = await alice.leader("app/nightly")
                assert holder is not None and holder.token == token
            assert await alice.leader("app/nightly") is None

            async with TrioClient(url, user="bob", password="bob-pw") as bob:
                with pytest.raises(PermissionDenied):
                    await enter(bob, "app/nightly")
            assert (await alice.range(prefix="app/nightly/")).kvs == []

            def blocking_lock() -> int:
                with (
                    Client(url, user="alice", password="alice-pw") as client,
                    client.lock("app/nightly") as held,
                ):
                    assert client.leader("app/nightly") is not None
                    return held.token

            assert await trio.to_thread.run_sync(blocking_lock) > token


async def enter(client: TrioClient, name: str) -> None:
    async with client.lock(name, ttl=3):
        raise AssertionError("got the lock without the permission")


async def test_raft_trio_lock_proves_its_user() -> None:
    async with served_node() as (_, url), httpx.AsyncClient(base_url=url) as http:
        await set_up_users(http)
        line = [*cli_command(), "--endpoints", url, "lock", "app/cli"]
        command = ["--", "sh", "-c", 'echo "$RAFT_FENCING_TOKEN"']
        held = await trio.run_process(
            [*line, "--user", "alice:alice-pw", *command], capture_stdout=True, check=False
        )
        assert held.returncode == 0 and int(held.stdout) > 0
        refused = await trio.run_process([*line, *command], capture_stderr=True, check=False)
        assert refused.returncode == 2
        assert b"the cluster refused" in refused.stderr and b"Traceback" not in refused.stderr
