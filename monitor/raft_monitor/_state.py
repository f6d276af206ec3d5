"""What the monitor knows about the cluster, and how each report from a node
changes it. Pure: no clock, no I/O; the caller passes ``now`` (seconds on
any monotonic clock) and acts on the :class:`Changes` each call returns.

Sources and nodes. The monitor watches *sources*, node URLs (from
``--nodes``, DNS, or the membership the nodes report). Each source feeds one
:class:`NodeState`, keyed by the node's id once known (from its own reports,
or as a hint from another node's membership list) and by its URL before.

Invariants:

- every source URL maps to exactly one node, and every node has exactly one
  source URL (``NodeState.url``);
- no two nodes share an id: when a second source turns out to reach a node
  that another source reaches (a DNS address and a membership host name for
  the same server), the second one is dropped and its URL ignored while
  that other source still reaches the node; a source that only had the id
  as a hint from membership, or whose node is unreachable there (it came
  back at another address), gives way to one that reached the node itself;
- a node found by DNS stays while its address is in DNS; once it has left
  (``forget_source``) it goes when it is unreachable and not a member;
- ``role`` is one of :data:`ROLES`; a node is ``unreachable`` until its
  first report and whenever its watcher says so, and keeps the term, leader
  and indexes it last reported; ``pre_vote`` marks a ``candidate`` that
  only asks for pre-votes (its term has not moved: shown as "pre-vote");
- indexes come from the nodes' events (``commit`` at most every 100 ms
  while they move), never from polling;
- the timeline holds at most :data:`TIMELINE_LIMIT` entries, the newest;
  memory stays bounded however long the monitor runs.

Timeline. Every node reports the same election from its side (three nodes,
three ``term`` and ``leader`` events), so the merge keeps one entry per
cluster fact: a node's role change (including to and from unreachable), a
term first seen anywhere, and a leader first reported for a term.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import msgspec

from raft_trio import schema

ROLES = ("leader", "follower", "candidate", "learner", "unreachable")
NODE_ROLES = frozenset(ROLES[:-1])
UNREACHABLE = "unreachable"
#: How the page and the timeline show a candidate asking for pre-votes.
PRE_VOTE = "pre-vote"
EVENT_NAMES = frozenset({"status", "role", "term", "leader", "membership", "commit"})

#: Entries the timeline keeps (a few screens of history); older ones go.
TIMELINE_LIMIT = 200
#: (term, leader) pairs remembered to keep one "leader" entry per election.
SEEN_LEADERS_LIMIT = 64


class MalformedEvent(ValueError):
    """A node sent an event the monitor cannot use."""


@dataclasses.dataclass(frozen=True)
class Member:
    id: str
    url: str
    voter: bool


@dataclasses.dataclass(frozen=True)
class Report:
    """What one event from a node says about it."""

    id: str
    role: str
    term: int
    leader_id: str | None
    commit_index: int | None
    applied_index: int | None
    #: Present in ``status`` and ``membership`` events.
    members: tuple[Member, ...] | None
    #: A candidate that only asks for pre-votes (§9.6).
    pre_vote: bool = False

    @property
    def shown_role(self) -> str:
        return shown_role(self.role, self.pre_vote)


def shown_role(role: str, pre_vote: bool) -> str:
    """The role as people read it: a pre-vote is not yet an election."""
    return PRE_VOTE if pre_vote and role == "candidate" else role


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "http://" + url.lower()
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}"


def parse_event(name: str, data: str) -> Report:
    """Validate one event from a node's ``/api/events``: what the monitor
    reads of any of them is :class:`raft_trio.schema.NodeEventData` (a
    ``status`` event's data holds more, and members always)."""
    if name not in EVENT_NAMES:
        raise MalformedEvent(f"unknown event {name!r}")
    try:
        doc = msgspec.json.decode(data, type=schema.NodeEventData)
    except msgspec.ValidationError as error:
        raise MalformedEvent(f"{name} event: {error}") from None
    except msgspec.DecodeError as error:
        raise MalformedEvent(f"{name} event is not JSON: {error}") from None
    if name == "membership" and doc.members is msgspec.UNSET:
        raise MalformedEvent("membership: `members` is missing")
    return parse_status(doc)


def parse_status(doc: schema.Status | schema.NodeEventData) -> Report:
    """What a node's status (or an event's data) says about it."""
    members = None
    if not isinstance(doc.members, msgspec.UnsetType):
        members = tuple(Member(m.id, normalize_url(m.url), m.voter) for m in doc.members)
    return Report(
        doc.id,
        doc.role,
        doc.term,
        doc.leader_id or None,
        doc.commit_index,
        doc.applied_index,
        members,
        doc.pre_vote,
    )


@dataclasses.dataclass
class NodeState:
    key: str
    url: str
    id: str | None = None
    role: str = UNREACHABLE
    term: int | None = None
    leader_id: str | None = None
    commit_index: int | None = None
    applied_index: int | None = None
    #: ``now`` of the last thing heard from the node (an event, a keep-alive).
    last_contact: float | None = None
    #: Why it is unreachable ("connecting", "connection refused", ...).
    reason: str | None = "connecting"
    #: The URLs named on the command line or found by DNS that reach this
    #: node (its own, and duplicates'): never dropped while it has one.
    seeds: set[str] = dataclasses.field(default_factory=set)
    #: The node itself reported this id (not only another node's membership).
    confirmed: bool = False
    #: In the membership the leader last reported.
    member: bool = True
    voter: bool | None = None
    pre_vote: bool = False

    @property
    def seed(self) -> bool:
        return bool(self.seeds)

    @property
    def shown_role(self) -> str:
        return shown_role(self.role, self.pre_vote)


@dataclasses.dataclass(frozen=True)
class TimelineEntry:
    seq: int
    at: float
    kind: str  # role, term, leader
    node: str
    term: int | None
    old: str | None = None
    new: str | None = None


@dataclasses.dataclass
class Changes:
    """What one call changed, for the caller to publish and act on."""

    #: Keys of nodes whose state changed (publish them whole).
    nodes: list[str] = dataclasses.field(default_factory=list)
    #: Keys of nodes gone from the view (renamed, dropped, duplicates).
    removed: list[str] = dataclasses.field(default_factory=list)
    timeline: list[TimelineEntry] = dataclasses.field(default_factory=list)
    #: Source URLs to start watching / to stop watching.
    watch: list[str] = dataclasses.field(default_factory=list)
    unwatch: list[str] = dataclasses.field(default_factory=list)

    def touch(self, key: str) -> None:
        if key not in self.nodes:
            self.nodes.append(key)

    def drop(self, key: str) -> None:
        if key in self.nodes:
            self.nodes.remove(key)
        if key not in self.removed:
            self.removed.append(key)

    def __bool__(self) -> bool:
        return bool(self.nodes or self.removed or self.timeline or self.watch or self.unwatch)


class ClusterView:
    def __init__(self, wall_offset: float = 0.0, timeline_limit: int = TIMELINE_LIMIT) -> None:
        #: Added to ``now`` to get Unix time, for the timestamps shown.
        self.wall_offset = wall_offset
        self.nodes: dict[str, NodeState] = {}
        self.sources: dict[str, str] = {}  # url -> key
        #: Duplicate source URL -> the key of the node it duplicated.
        self.ignored: dict[str, str] = {}
        self.timeline: collections.deque[TimelineEntry] = collections.deque(maxlen=timeline_limit)
        self._seq = 0
        self._max_term = -1
        self._seen_leaders: dict[tuple[int, str], None] = {}

    # -- queries -------------------------------------------------------------

    def node_for(self, url: str) -> NodeState | None:
        key = self.sources.get(normalize_url(url))
        return self.nodes.get(key) if key is not None else None

    def leader(self) -> NodeState | None:
        """The reachable node claiming leadership in the highest term."""
        leaders = [n for n in self.nodes.values() if n.role == "leader"]
        return max(leaders, key=lambda n: n.term or 0, default=None)

    # -- changes -------------------------------------------------------------

    def add_source(self, url: str, now: float, *, seed: bool = False, node_id: str | None = None) -> Changes:
        """Watch ``url`` (optionally with the id another node gave it)."""
        changes = Changes()
        url = normalize_url(url)
        if url in self.ignored:
            other = self.nodes.get(self.ignored[url])
            if other is not None and other.role != UNREACHABLE:
                return changes
            del self.ignored[url]  # the node it duplicated is not reached there now: try again
        if url in self.sources:
            if seed:
                self.nodes[self.sources[url]].seeds.add(url)
            return changes
        key = node_id if node_id is not None and node_id not in self.nodes else url
        if key in self.nodes:  # a URL-keyed node cannot clash, but be sure
            return changes
        self.nodes[key] = NodeState(
            key, url, id=key if key == node_id else None, seeds={url} if seed else set()
        )
        self.sources[url] = key
        changes.touch(key)
        changes.watch.append(url)
        return changes

    def apply(self, url: str, report: Report, now: float) -> Changes:
        """A node's report (an event or its status) arrived from ``url``."""
        changes = Changes()
        node = self.node_for(url)
        if node is None:
            return changes
        if node.id != report.id or not node.confirmed:
            node = self._bind(node, report.id, changes)
            if node is None:
                return changes
        old_role = node.shown_role if node.last_contact is not None else None
        node.role = report.role
        node.pre_vote = report.pre_vote
        node.term = report.term
        node.leader_id = report.leader_id
        if report.commit_index is not None:
            node.commit_index = report.commit_index
        if report.applied_index is not None:
            node.applied_index = report.applied_index
        node.last_contact = now
        node.reason = None
        changes.touch(node.key)
        if old_role != report.shown_role:
            self._record(changes, now, "role", node.key, report.term, old_role, report.shown_role)
        if report.term > self._max_term:
            # Term 0 is a fresh cluster before its first election: no news.
            if report.term > 0:
                self._record(changes, now, "term", node.key, report.term)
            self._max_term = report.term
        if report.leader_id is not None and (report.term, report.leader_id) not in self._seen_leaders:
            self._seen_leaders[(report.term, report.leader_id)] = None
            while len(self._seen_leaders) > SEEN_LEADERS_LIMIT:
                del self._seen_leaders[next(iter(self._seen_leaders))]
            self._record(changes, now, "leader", node.key, report.term, new=report.leader_id)
        if report.members is not None:
            self._follow_membership(node, report, now, changes)
        return changes

    def contact(self, url: str, now: float) -> Changes:
        """Something (a keep-alive comment) arrived from a live stream."""
        changes = Changes()
        node = self.node_for(url)
        if node is not None and node.role != UNREACHABLE:
            node.last_contact = now
            changes.touch(node.key)
        return changes

    def mark_unreachable(self, url: str, now: float, reason: str) -> Changes:
        """The watcher lost the node (refused, stalled, ended); it keeps the
        term, leader and indexes it last reported."""
        changes = Changes()
        node = self.node_for(url)
        if node is None:
            return changes
        if node.role != UNREACHABLE:
            self._record(changes, now, "role", node.key, node.term, node.shown_role, UNREACHABLE)
            node.role = UNREACHABLE
            node.pre_vote = False
            changes.touch(node.key)
        if node.reason != reason:
            node.reason = reason
            changes.touch(node.key)
        if self._expendable(node):
            self._drop(node, changes)
        return changes

    def forget_source(self, url: str, now: float) -> Changes:
        """``url`` is no longer in DNS (its replica stopped or was scaled
        away): it is no seed any more, and goes now if its node is
        unreachable and not a member."""
        changes = Changes()
        url = normalize_url(url)
        self.ignored.pop(url, None)
        for node in list(self.nodes.values()):
            if url in node.seeds:
                node.seeds.discard(url)
                if node.role == UNREACHABLE and self._expendable(node):
                    self._drop(node, changes)
        return changes

    @staticmethod
    def _expendable(node: NodeState) -> bool:
        """Not worth showing once unreachable: no seed reaches it, and it is
        not a member (or was never even identified)."""
        return not node.seed and (not node.member or node.id is None)

    # -- internals -----------------------------------------------------------

    def _bind(self, node: NodeState, node_id: str, changes: Changes) -> NodeState | None:
        """The node at ``node.url`` says it is ``node_id``."""
        other = self.nodes.get(node_id)
        if other is not None and other is not node:
            if other.confirmed and other.role != UNREACHABLE:
                # Another source reaches this node: ours is a duplicate.
                self._drop(node, changes, ignore_for=other.key)
                other.seeds |= node.seeds
                return None
            # The other only had the id as a hint, or does not reach the
            # node any more: this source takes over.
            node.seeds |= other.seeds
            node.member, node.voter = other.member, other.voter
            self._drop(other, changes, ignore_for=node_id)
        if node.key != node_id:
            del self.nodes[node.key]
            changes.drop(node.key)
            node.key = node_id
            self.nodes[node_id] = node
            self.sources[node.url] = node_id
        node.id = node_id
        node.confirmed = True
        changes.touch(node_id)
        return node

    def _drop(self, node: NodeState, changes: Changes, *, ignore_for: str | None = None) -> None:
        """Forget ``node``; with ``ignore_for``, its URL is a duplicate of
        that node's, ignored while that node is reached."""
        self.nodes.pop(node.key, None)
        self.sources.pop(node.url, None)
        if ignore_for is not None:
            self.ignored[node.url] = ignore_for
        changes.drop(node.key)
        changes.unwatch.append(node.url)

    def _follow_membership(self, reporter: NodeState, report: Report, now: float, changes: Changes) -> None:
        assert report.members is not None
        for member in report.members:
            known = self.nodes.get(member.id)
            if known is None:
                at_url = self.node_for(member.url)
                if at_url is not None and at_url.id is None:
                    # Name a URL-keyed node after the membership's id.
                    del self.nodes[at_url.key]
                    changes.drop(at_url.key)
                    at_url.key = at_url.id = member.id
                    self.nodes[member.id] = at_url
                    self.sources[at_url.url] = member.id
                    changes.touch(member.id)
                elif at_url is None:
                    added = self.add_source(member.url, now, node_id=member.id)
                    changes.nodes.extend(k for k in added.nodes if k not in changes.nodes)
                    changes.watch.extend(added.watch)
        voters = {m.id: m.voter for m in report.members}
        for member_id, is_voter in voters.items():
            listed = self.nodes.get(member_id)
            if listed is not None and listed.voter != is_voter:
                listed.voter = is_voter
                changes.touch(member_id)
        if report.role != "leader":
            return
        # The leader's membership is the cluster's: mark who is in it.
        for node in list(self.nodes.values()):
            if node.id is None:
                continue
            in_cluster = node.id in voters
            voting = voters.get(node.id)
            if (in_cluster, voting) != (node.member, node.voter):
                node.member, node.voter = in_cluster, voting
                changes.touch(node.key)
            if not in_cluster and not node.seed and node.role == UNREACHABLE:
                self._drop(node, changes)

    def _record(
        self,
        changes: Changes,
        now: float,
        kind: str,
        node: str,
        term: int | None,
        old: str | None = None,
        new: str | None = None,
    ) -> None:
        self._seq += 1
        entry = TimelineEntry(self._seq, now, kind, node, term, old, new)
        self.timeline.append(entry)
        changes.timeline.append(entry)

    # -- what the page gets --------------------------------------------------

    def node_json(self, node: NodeState, now: float) -> dict[str, Any]:
        return {
            "id": node.key,
            "url": node.url,
            "role": node.role,
            "term": node.term,
            "leader_id": node.leader_id,
            "commit_index": node.commit_index,
            "applied_index": node.applied_index,
            "last_contact_ms_ago": None
            if node.last_contact is None
            else max(0, round((now - node.last_contact) * 1000)),
            "reason": node.reason if node.role == UNREACHABLE else None,
            "member": node.member,
            "voter": node.voter,
            "pre_vote": node.pre_vote,
        }

    def entry_json(self, entry: TimelineEntry) -> dict[str, Any]:
        return {
            "seq": entry.seq,
            "at_ms": round((entry.at + self.wall_offset) * 1000),
            "kind": entry.kind,
            "node": entry.node,
            "term": entry.term,
            "old": entry.old,
            "new": entry.new,
        }

    def snapshot_json(self, now: float) -> dict[str, Any]:
        leader = self.leader()
        return {
            "nodes": [self.node_json(n, now) for n in sorted(self.nodes.values(), key=lambda n: n.key)],
            "leader": None if leader is None else {"id": leader.key, "term": leader.term},
            "timeline": [self.entry_json(e) for e in self.timeline],
        }
