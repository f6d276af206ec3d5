"""When a crash test fails, the tails of its nodes' logs are added to the
report (where the crash point's line and the recovery's messages are)."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from . import harness


@pytest.fixture(autouse=True)
def _forget_clusters() -> None:
    harness.STARTED.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and report.when == "call":
        for c in harness.STARTED:
            report.sections.append((f"node logs of cluster {c.name!r} ({c.root})", c.tails()))
    return report
