"""Quorum arithmetic as pure functions (as etcd's ``quorum/`` package).

A quorum is a strict majority of the voters. Nothing here knows about
terms or logs; callers pass in the facts.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from ._types import NodeId


def majority(voter_count: int) -> int:
    """Smallest number of voters that forms a quorum."""
    return voter_count // 2 + 1


def committed_index(voters: Iterable[NodeId], match: Mapping[NodeId, int]) -> int:
    """The highest index that a quorum of ``voters`` holds, given each
    one's durable match index (missing voters count as 0). With no voters
    nothing can commit."""
    indexes = sorted((match.get(v, 0) for v in voters), reverse=True)
    if not indexes:
        return 0
    return indexes[majority(len(indexes)) - 1]


class VoteResult(enum.Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def vote_result(voters: frozenset[NodeId], votes: Mapping[NodeId, bool]) -> VoteResult:
    """WON once a quorum granted, LOST once a quorum can no longer grant."""
    granted = sum(1 for v in voters if votes.get(v) is True)
    rejected = sum(1 for v in voters if votes.get(v) is False)
    need = majority(len(voters))
    if granted >= need:
        return VoteResult.WON
    if len(voters) - rejected < need:
        return VoteResult.LOST
    return VoteResult.PENDING


def has_quorum(voters: frozenset[NodeId], acked: Iterable[NodeId]) -> bool:
    return len(voters.intersection(acked)) >= majority(len(voters))
