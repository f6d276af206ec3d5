"""Membership changes, one server at a time (dissertation §4.1-§4.3).

A change alters the voter set by at most one server, so the majorities of
the old and new configurations always overlap and no joint consensus is
needed. New servers join as learners (non-voting, §4.2.1) and are promoted
once they have caught up, so adding a server never stalls commitment. A
server's address can change in place (etcd's ``member update``): the voter
set stays the same, so it is as safe as any other single change.

The rules that make one-at-a-time changes safe live in the core (a leader
appends a change only after committing an entry of its own term and while no
other change is uncommitted); this module only computes and validates the
next configuration.
"""

from __future__ import annotations

import msgspec

from ._errors import AlreadyMember, ConfigChangeRejected, NotMember
from ._types import Member, Membership, NodeId


class AddLearner(msgspec.Struct, frozen=True):
    id: NodeId
    url: str


class PromoteLearner(msgspec.Struct, frozen=True):
    id: NodeId


class RemoveMember(msgspec.Struct, frozen=True):
    id: NodeId


class UpdateMember(msgspec.Struct, frozen=True):
    """The member ``id`` is now reached at ``url`` (a container that came
    back at another address); voter or learner as before."""

    id: NodeId
    url: str


ConfChange = AddLearner | PromoteLearner | RemoveMember | UpdateMember


def apply_change(current: Membership, change: ConfChange) -> Membership:
    """The configuration after ``change``; raises ConfigChangeRejected if the
    change does not apply to ``current``."""
    existing = current.get(change.id)
    if isinstance(change, AddLearner):
        if existing is not None:
            raise AlreadyMember(f"{change.id} is already a member")
        if not change.id or not change.url:
            raise ConfigChangeRejected("a new member needs an id and a url")
        return Membership.of([*current.members, Member(change.id, change.url, voter=False)])
    if existing is None:
        raise NotMember(f"{change.id} is not a member")
    others = [m for m in current.members if m.id != change.id]
    if isinstance(change, UpdateMember):
        if not change.url:
            raise ConfigChangeRejected("a member needs a url")
        if change.url == existing.url:
            raise ConfigChangeRejected(f"{change.id} is already at {change.url}")
        return Membership.of([*others, Member(existing.id, change.url, voter=existing.voter)])
    if isinstance(change, PromoteLearner):
        if existing.voter:
            raise ConfigChangeRejected(f"{change.id} is already a voter")
        return Membership.of([*others, Member(existing.id, existing.url, voter=True)])
    if existing.voter and len(current.voters) == 1:
        raise ConfigChangeRejected(f"cannot remove {change.id}, the last voter")
    return Membership.of(others)
