"""The core's configuration refuses settings that cannot work (etcd's
``Config.validate``), so a bad deployment fails at start, not at the first
election."""

from __future__ import annotations

import random

import pytest

from raft_trio.core import MemoryStorage, RaftConfig, RaftCore

from .helpers import CONFIG, config


@pytest.mark.parametrize(
    "changes",
    [
        {"heartbeat_ticks": 0},
        {"heartbeat_ticks": 10},  # not below the election timeout (§3.4: broadcastTime << electionTimeout)
        {"election_ticks_max": 9},  # max below min
        {"max_inflight": 0},
        {"max_append_bytes": 0},
        {"max_append_entries": 0},
    ],
    ids=lambda c: next(iter(c)),
)
def test_invalid_config_is_refused(changes: dict[str, int]) -> None:
    """§3.4's timing requirement (broadcastTime << electionTimeout) and
    positive limits are checked by ``validate()`` and by the core itself."""
    bad = config(**changes)
    with pytest.raises(ValueError, match=r"must|positive"):
        bad.validate()
    with pytest.raises(ValueError, match=r"must|positive"):
        RaftCore("a", MemoryStorage(), bad, random.Random(0))


def test_defaults_and_test_profile_are_valid() -> None:
    """The defaults (etcd's timing) and this suite's small profile pass;
    a transfer times out after about an election timeout (§3.10)."""
    RaftConfig().validate()
    CONFIG.validate()
    assert CONFIG.transfer_ticks == CONFIG.election_ticks_min
