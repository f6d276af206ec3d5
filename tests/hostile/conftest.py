"""Fixtures of the hostile-input tests: a one-node cluster of a real node
process (it elects itself within an election timeout), shared by the tests
of a module, with the short timings of the integration tests.

A node that fails a test has the tail of its log added to the report."""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from ..integration.cluster import Cluster


@pytest.fixture(scope="module")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("hostile"), "hostile", size=1)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        cluster = getattr(item, "funcargs", {}).get("node_cluster")
        if isinstance(cluster, Cluster):
            report.sections.append(("node logs", cluster.tails()))
    return report
