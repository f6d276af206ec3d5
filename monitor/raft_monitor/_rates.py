"""Samples for the page's live chart: each node's commit rate and each
follower's lag behind the leader. Pure: the caller passes ``now`` and the
view, every ``REFRESH_RATE_MILLIS``.

- The commit rate of a node is how far its commit index moved since the
  previous sample, per second. Its indexes arrive with its ``commit``
  events (at most every 100 ms), so a rate is exact over a sample period
  give or take one event; a node unreachable now or at the previous
  sample has none (a gap in its line).
- The lag of a follower or learner is the leader's commit index minus
  the entries it has applied (never below 0): what it still has to apply
  of what the cluster has committed. The leader, an unreachable node and
  a cluster without a leader have none.

Memory stays bounded: the last :data:`HISTORY` samples (a minute at the
default 500 ms), which a page that opens gets at once.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

from ._state import UNREACHABLE, ClusterView

#: Samples kept for a page that opens.
HISTORY = 120


@dataclasses.dataclass(frozen=True)
class NodeSample:
    commit_rate: float | None
    lag: int | None
    voter: bool | None


class RateSampler:
    def __init__(self, wall_offset: float = 0.0, history: int = HISTORY) -> None:
        #: Added to ``now`` to get Unix time, for the page's time axis.
        self.wall_offset = wall_offset
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=history)
        #: node key -> (when, commit index) at the previous sample.
        self._previous: dict[str, tuple[float, int]] = {}

    def sample(self, view: ClusterView, now: float) -> dict[str, Any]:
        """One sample of every node, kept in the history and returned as
        the page's ``sample`` event: ``{"at_ms", "leader", "nodes": {id:
        {"commit_rate", "lag", "voter"}}}``."""
        leader = view.leader()
        nodes: dict[str, NodeSample] = {}
        previous, self._previous = self._previous, {}
        for node in view.nodes.values():
            reachable = node.role != UNREACHABLE and node.commit_index is not None
            rate = None
            if reachable and node.commit_index is not None:
                self._previous[node.key] = (now, node.commit_index)
                before = previous.get(node.key)
                if before is not None and now > before[0]:
                    rate = max(0, node.commit_index - before[1]) / (now - before[0])
            lag = None
            if (
                reachable
                and leader is not None
                and node is not leader
                and leader.commit_index is not None
                and node.applied_index is not None
            ):
                lag = max(0, leader.commit_index - node.applied_index)
            nodes[node.key] = NodeSample(rate, lag, node.voter)
        doc = {
            "at_ms": round((now + self.wall_offset) * 1000),
            "leader": None if leader is None else leader.key,
            "nodes": {
                key: {
                    "commit_rate": None if s.commit_rate is None else round(s.commit_rate, 1),
                    "lag": s.lag,
                    "voter": s.voter,
                }
                for key, s in sorted(nodes.items())
            },
        }
        self.history.append(doc)
        return doc

    def history_json(self) -> list[dict[str, Any]]:
        return list(self.history)
