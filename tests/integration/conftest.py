"""Fixtures of the integration tests: clusters of real node processes.

- ``shared_cluster`` (module scope): three nodes that tests which change
  nothing but keys share;
- ``cluster``: three nodes of the test's own, for tests that kill, pause or
  stop nodes;
- ``make_cluster``: a factory for clusters with extra environment.

Every process a fixture started is killed in its teardown, whatever the
test did. When a test fails, the tails of its clusters' node logs are added
to the report.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from .cluster import Cluster


class ClusterFactory:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.clusters: list[Cluster] = []

    def __call__(
        self, name: str = "cluster", env: dict[str, str] | None = None, size: int = 3, **options: Any
    ) -> Cluster:
        cluster = Cluster(self.root / f"{name}-{len(self.clusters)}", name, size=size, env=env, **options)
        self.clusters.append(cluster)
        cluster.start()
        return cluster

    def close(self) -> None:
        errors = []
        for cluster in self.clusters:
            try:
                cluster.close()
            except Exception as error:  # every cluster is closed, then the first error is raised
                errors.append(error)
        if errors:
            raise errors[0]


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    factory = ClusterFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def cluster(make_cluster: Callable[..., Cluster]) -> Cluster:
    return make_cluster("dedicated")


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    factory = ClusterFactory(tmp_path_factory.mktemp("shared"))
    try:
        yield factory("shared")
    finally:
        factory.close()


def _clusters_of(item: pytest.Item) -> list[Cluster]:
    found: list[Cluster] = []
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    for value in funcargs.values():
        if isinstance(value, Cluster):
            found.append(value)
        elif isinstance(value, ClusterFactory):
            found.extend(value.clusters)
    unique: list[Cluster] = []
    for c in found:
        if all(c is not u for u in unique):
            unique.append(c)
    return unique


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and report.when == "call":
        for c in _clusters_of(item):
            report.sections.append((f"node logs of cluster {c.name!r} ({c.root})", c.tails()))
    return report
