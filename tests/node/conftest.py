"""Fixtures of the runtime tests (see :mod:`tests.node.harness`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from .harness import Cluster


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    """Three runtimes in this Trio run. (pytest-trio applies a clock only
    when the test itself asks for it: every test here takes autojump_clock.)"""
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery)
        await cluster.start()
        yield cluster
        for host in cluster.hosts.values():
            host.node.close()
