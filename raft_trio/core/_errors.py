"""Errors the core raises to its caller. They are part of the protocol's
surface: each says why a request could not be taken, and whether retrying
elsewhere can help. Anything else that escapes the core is a bug."""

from __future__ import annotations

from ._types import NodeId


class RaftError(Exception):
    """Base of every error the core raises on purpose."""


class NotLeader(RaftError):
    """Only the leader takes proposals, reads and membership changes.
    ``leader_id`` is the leader this node knows of, if any."""

    def __init__(self, leader_id: NodeId | None) -> None:
        super().__init__(f"not the leader (leader: {leader_id or 'unknown'})")
        self.leader_id = leader_id


class ProposalDropped(RaftError):
    """The leader cannot take proposals right now (a leadership transfer is
    under way, §3.10); retry shortly, probably on another node."""


class ConfigChangeRejected(RaftError):
    """A membership change that is invalid or not allowed yet (one change at
    a time; a new leader must first commit an entry of its term, §4.1)."""


class AlreadyMember(ConfigChangeRejected):
    """The server to add is already in the configuration."""


class NotMember(ConfigChangeRejected):
    """The server to change or remove is not in the configuration."""
