"""Options for the simulation: how many seeds, or one seed to replay."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("raft simulation")
    group.addoption("--sim-seeds", type=int, default=None, help="number of seeded runs (default 500)")
    group.addoption("--sim-seed", type=int, default=None, help="replay exactly this seed")
    group.addoption("--sim-first-seed", type=int, default=0, help="first seed of the range")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sim_seed" not in metafunc.fixturenames:
        return
    config = metafunc.config
    replay = config.getoption("--sim-seed")
    if replay is not None:
        seeds = [replay]
    else:
        soak = "soak" in (config.getoption("-m") or "")
        count = config.getoption("--sim-seeds") or (20_000 if soak else 500)
        first = config.getoption("--sim-first-seed")
        seeds = list(range(first, first + count))
    metafunc.parametrize("sim_seed", seeds, ids=[f"seed{s}" for s in seeds])
