"""The bootstrap decision (pure): what a node with a new data directory
does after one look at the replicas of its service.

A node with a new data directory serves a small "waiting" page on its
port (``/api/status`` with its id, an empty membership and its bootstrap
state; ``/healthz``; 503 for the rest) and looks at every address NAME
resolves to, twice a second:

- if one of them already belongs to a cluster, it joins that cluster
  (it is added as a learner, and promoted once caught up), or, if that
  cluster's configuration names it as a voter because it took part in
  the bootstrap, it starts with that configuration;
- otherwise, once it has seen ``BOOTSTRAP_EXPECT`` waiting replicas
  (itself included) in two rounds in a row, it *acks* the lowest id
  among them as the seed. The ack is written to the data directory and
  never changes. A seed that holds acks from ``BOOTSTRAP_EXPECT``
  replicas bootstraps the cluster: the lowest ``BOOTSTRAP_EXPECT`` ids
  of its ackers, sorted, at the URLs they advertise. The others see
  that configuration on the seed and start with exactly the same one.

Two clusters cannot share a node (an ack is given once), and with fewer
than ``2 * BOOTSTRAP_EXPECT`` replicas starting at once there cannot
be two clusters at all: each needs ``BOOTSTRAP_EXPECT`` acks of its own.
No node acks or bootstraps while an address NAME resolves to does not
answer: it may be a member of a cluster that is paused or restarting,
and new replicas that formed a cluster beside it would split the
service in two (a review found that with three members paused and the
service scaled to six).
Nor while NAME's answer does not list this node itself (a lookup that
failed, a mistyped name, DNS that lags): such an answer is not about the
service this node is a replica of, and with ``BOOTSTRAP_EXPECT=1`` a
node formed a cluster of its own on one.
When exactly ``BOOTSTRAP_EXPECT`` replicas start, every one of them
acks the same seed. A node whose data directory is new but which a
cluster already lists as a voter, without having acked, has lost its
log and vote: it refuses to start as that voter (see the message) rather
than risk voting twice in a term. So does one listed as a learner that
has started: the leader keeps how far the lost log had acknowledged, and
would never catch the empty one up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable
from typing import Literal

from ._probe import MemberView, PeerStatus

Action = Literal["wait", "ack", "bootstrap", "adopt", "join", "refuse"]


@dataclasses.dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    #: The initial configuration (bootstrap, adopt).
    members: tuple[MemberView, ...] = ()
    #: A node of the cluster to ask (join).
    join_url: str | None = None
    #: Whom to ack (ack).
    seed: str | None = None


def decide(
    me: str,
    my_url: str,
    expect: int,
    ack: str | None,
    statuses: Iterable[PeerStatus],
    last_view: frozenset[str] | None,
    silent: Collection[str] = (),
    listed: bool = True,
) -> tuple[Decision, frozenset[str]]:
    """One round of the bootstrap: what a waiting node does, given what the
    others said, the addresses that did not answer (``silent``) and whether
    the service's DNS answer listed this node (``listed``). Returns the decision and the set of waiting ids seen (to pass back as
    ``last_view`` next round)."""
    others = [s for s in statuses if s.id != me]
    clusters = sorted(
        (s for s in others if s.members),
        key=lambda s: (s.leader_url is None, -len(s.members), s.url),
    )
    waiting = {s.id: s for s in others if s.waiting}
    view = frozenset([me, *waiting])
    for status in clusters:
        entry = status.member(me)
        if entry is None:
            continue
        if not entry.voter and entry.started:
            return (
                Decision(
                    "refuse",
                    f"the cluster at {status.url} lists this node ({me}) as a learner that has started, "
                    "but this node's data directory is new: the leader holds what the lost log had "
                    f"acknowledged and would never catch it up. Remove it (raft-trio members remove {me} "
                    f"--cluster {status.url}); it then joins again as a new learner by itself",
                ),
                view,
            )
        if not entry.voter:
            return Decision("join", f"{status.url} lists this node as a learner", join_url=status.url), view
        if ack is not None:
            return (
                Decision("adopt", f"the cluster of seed {ack} formed (seen at {status.url})", status.members),
                view,
            )
        return (
            Decision(
                "refuse",
                f"the cluster at {status.url} lists this node ({me}) as a voter, but this node's data "
                "directory is new: its log and vote are lost, and starting as that voter could let it "
                f"vote twice in a term. Remove it (raft-trio members remove {me} --cluster {status.url}); "
                "it then joins again as a new learner by itself",
            ),
            view,
        )
    if clusters:
        target = clusters[0]
        return Decision(
            "join", f"found a cluster at {target.url}", join_url=target.leader_url or target.url
        ), view
    if silent:
        shown = ", ".join(sorted(silent)[:3]) + (", ..." if len(silent) > 3 else "")
        return (
            Decision(
                "wait",
                f"{len(silent)} address(es) of the service do not answer ({shown}): they may be members "
                "of a cluster that is paused or restarting, so no new cluster forms until they answer",
            ),
            view,
        )
    if not listed:
        return (
            Decision(
                "wait",
                "the service's DNS answer does not list this node: no cluster forms on an answer "
                "that may not be this service's",
            ),
            view,
        )
    if ack is None:
        if len(view) >= expect and view == last_view:
            seed = min(view)
            return Decision("ack", f"{len(view)} replicas are waiting; the seed is {seed}", seed=seed), view
        return Decision("wait", f"{len(view)} of {expect} replicas seen: {', '.join(sorted(view))}"), view
    if ack != me:
        return Decision("wait", f"waiting for the seed {ack} to form the cluster"), view
    ackers = sorted({me} | {s.id for s in waiting.values() if s.ack == me})
    if len(ackers) < expect:
        return Decision("wait", f"seed with {len(ackers)} of {expect} acks: {', '.join(ackers)}"), view
    chosen = ackers[:expect]
    members = tuple(MemberView(i, my_url if i == me else waiting[i].reach_url) for i in chosen)
    return Decision("bootstrap", f"forming the cluster {', '.join(chosen)}", members), view
