"""Options for the simulation: how many seeds, or one seed to replay."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("raft simulation")
    group.addoption("--sim-seeds", type=int, default=None, help="number of seeded runs (default 500)")
    group.addoption("--sim-seed", type=int, default=None, help="replay exactly this seed")
    group.addoption("--sim-first-seed", type=int, default=0, help="first seed of the range")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``sim_seed``: the default run's seeds (500); ``lone_voter_seed``: the
    lone voter's (100); ``readd_seed``: the wiped re-adds' (100);
    ``soak_seed``: the soak's (20,000, only run with ``-m soak``), and
    ``readd_soak_seed`` its wiped re-adds' (2,000). All honour --sim-seed
    and --sim-seeds."""
    for name, default_count in (
        ("sim_seed", 500),
        ("lone_voter_seed", 100),
        ("readd_seed", 100),
        ("soak_seed", 20_000),
        ("readd_soak_seed", 2_000),
    ):
        if name not in metafunc.fixturenames:
            continue
        config = metafunc.config
        replay = config.getoption("--sim-seed")
        if replay is not None:
            seeds = [replay]
        else:
            count = config.getoption("--sim-seeds") or default_count
            first = config.getoption("--sim-first-seed")
            seeds = list(range(first, first + count))
        metafunc.parametrize(name, seeds, ids=[f"seed{s}" for s in seeds])
