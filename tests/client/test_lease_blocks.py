"""``client.lease(ttl)``: a block that keeps a lease alive. If the lease
ended before the block did (refused, revoked by someone else, or no
keep-alive answered within its TTL), the block does not end as if it had
held it throughout: :class:`LeaseNotFound` comes out, for the blocking
client as for the Trio one (docs/client.md). The cluster is a fake, the
test deciding what it answers."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from raft_trio import schema
from raft_trio.client import Client, LeaseNotFound, NoEndpointAnswered, TrioClient

LEASE = "00000000000000aa"


def not_found() -> LeaseNotFound:
    return LeaseNotFound(404, schema.ErrorAnswer(f"lease {LEASE} not found", schema.Code.LEASE_NOT_FOUND))


def unreachable() -> NoEndpointAnswered:
    return NoEndpointAnswered([("http://127.0.0.1:1", "connection refused")])


class BlockingCluster(Client):
    """Grants ``LEASE``; keep-alives fail (``down``) or are answered; a
    revoke is answered, or refused as the lease is gone (``gone``)."""

    def __init__(self, *, ttl: int, down: bool = False, gone: bool = False) -> None:
        super().__init__("http://127.0.0.1:1")
        self.ttl, self.down, self.gone = ttl, down, gone
        self.revoked = 0

    def grant_lease(self, ttl: int, **_: Any) -> schema.LeaseAnswer:
        return schema.LeaseAnswer(LEASE, self.ttl)

    def keep_alive(self, lease: str) -> schema.LeaseAnswer:
        if self.down:
            raise unreachable()
        return schema.LeaseAnswer(lease, self.ttl)

    def revoke_lease(self, lease: str, **_: Any) -> schema.LeaseRevokedAnswer:
        self.revoked += 1
        if self.gone:
            raise not_found()
        return schema.LeaseRevokedAnswer(lease, [], 9)


def test_a_blocking_lease_revoked_by_someone_else_meanwhile_raises_at_the_end() -> None:
    cluster = BlockingCluster(ttl=60, gone=True)
    with pytest.raises(LeaseNotFound), cluster.lease(60):
        pass  # ended before any keep-alive: only the release finds it gone


def test_a_blocking_lease_without_a_keep_alive_answered_for_its_ttl_raises_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr("raft_trio.client._sync.time.monotonic", lambda: now[0])
    cluster = BlockingCluster(ttl=1, down=True)
    with pytest.raises(LeaseNotFound, match="no keep-alive was answered"), cluster.lease(1):
        now[0] += 1.2  # longer than the TTL: the lease may have run out
    assert cluster.revoked == 1  # released all the same, in case it lives


def test_a_blocking_lease_held_across_a_suspend_longer_than_its_ttl_raises_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``time.monotonic`` stands still while the machine is suspended; the
    cluster's clock does not: the block counts the time slept too."""
    slept = [0.0]
    monkeypatch.setattr("raft_trio.client.suspend.machine_slept_s", lambda: slept[0])
    cluster = BlockingCluster(ttl=60, down=True)
    with pytest.raises(LeaseNotFound, match="no keep-alive was answered"), cluster.lease(60):
        slept[0] += 61.0  # the machine slept through the lease
    assert cluster.revoked == 1


def test_a_blocking_lease_kept_alive_ends_quietly() -> None:
    cluster = BlockingCluster(ttl=60)
    with cluster.lease(60) as lease:
        assert lease.id == LEASE
    assert cluster.revoked == 1


class TrioCluster(TrioClient):
    """Grants ``LEASE`` of 60 s; answers keep-alives; refuses the revoke
    as the lease is gone."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:1")

    async def grant_lease(self, ttl: int, **_: Any) -> schema.LeaseAnswer:
        return schema.LeaseAnswer(LEASE, 60)

    async def keep_alive(self, lease: str) -> schema.LeaseAnswer:
        return schema.LeaseAnswer(lease, 60)

    async def revoke_lease(self, lease: str, **_: Any) -> schema.LeaseRevokedAnswer:
        raise not_found()


async def test_a_trio_lease_revoked_by_someone_else_meanwhile_raises_at_the_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with TrioCluster() as cluster:
        with pytest.raises(LeaseNotFound):
            async with cluster.lease(60):
                await trio.sleep(5)  # before the first keep-alive
