"""What a node with a new (empty) data directory asks its cluster before it
takes part: has this member started before?

A member that has started holds a term, a vote and a log; wiped and started
empty with the same ``--peers`` it would vote as if it never had. As etcd
refuses a member that "has already been bootstrapped", the leader records a
``Started`` entry the first time a member acknowledges entries
(:class:`raft_trio.kv.Started`), ``/api/status`` lists each member with
``"started"``, and a new data directory asks the other members of
``--peers`` (or the ``--join`` URL) twice a second, serving a waiting page
meanwhile, until :func:`decide` says:

- refuse (exit 78): a running member lists it as a member (voter or
  learner) that has started, or does not list it at all (it was removed);
- join (start empty, catch up as a learner): it is listed as a learner;
- bootstrap with ``--peers``: it is listed as a voter that has not started
  (a late first start), or a majority of ``--peers`` are new and waiting (a
  new cluster).

A voter "that has not started" may still have voted: votes come before any
entry can name it started, and a member wiped in that first moment looks
exactly like one that never ran. So that row waits until every voter the
cluster lists has answered, and the node starts at the highest term any of
them holds, counted as voted (:attr:`Decision.term_floor`). Whoever it voted
for before the wipe persisted that term before asking, and a term only
grows, so every term it may have voted in is at most the floor: it never
votes twice in one. An operator who knows the member never ran (a voter
is down at its late first start) says so with ``--never-ran``, and it
starts at the highest term of those that answered. Waiting for every voter
would keep a new cluster from forming while one member was never started,
so while every member that answered is still at term 0 (1 for a restored
cluster) and started within ``FRESH_WINDOW_S`` they count as new and the
majority rule of a new cluster decides, as etcd's does. (Not by the term
alone: with pre-vote, a member cut off since its start stays at term 0.)
docs/storage.md names the first-moment cases this cannot see.

No answer at all means waiting: a wiped member cannot tell, so it does not
guess. docs/storage.md has the table and the operator's way back.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Literal

import trio

from .. import schema
from ..client import ClientError, TrioClient
from ..storage import DataDirError

log = logging.getLogger(__name__)

ROUND_S = 0.5
#: How often the same "still waiting" line is logged again.
REPEAT_LOG_S = 10.0

#: How long since its start a running member that holds no term yet
#: (past the one members start at) still counts as new: two members
#: started together decide a round (ROUND_S) apart.
FRESH_WINDOW_S = 10.0

#: How long a member's status may take to come.
STATUS_TIMEOUT_S = 1.0

#: Fetches a member's ``/api/status`` document (None: no answer).
FetchStatus = Callable[[str], Awaitable[schema.Status | None]]


def client_fetch_status(client: TrioClient) -> FetchStatus:
    """Each member's status through ``client`` (one of no endpoints, used
    ``.at()`` each member), within ``STATUS_TIMEOUT_S``."""

    async def fetch(url: str) -> schema.Status | None:
        try:
            return await client.at(url, timeout=STATUS_TIMEOUT_S).status()
        except ClientError:
            return None

    return fetch


class AlreadyMember(DataDirError):
    """A new data directory for a member the cluster knows has started, or
    has removed: starting it empty could let it vote twice in a term."""


@dataclasses.dataclass(frozen=True)
class MemberEntry:
    voter: bool
    started: bool
    url: str


@dataclasses.dataclass(frozen=True)
class PeerAnswer:
    """A member's ``/api/status`` as it bears on a first start."""

    url: str
    #: It is new and waiting too (its own first start, or a discovery bootstrap).
    waiting: bool
    members: dict[str, MemberEntry]
    #: Who answered, and the term it holds (0 while waiting).
    id: str = ""
    term: int = 0
    #: Seconds since it started (None: it does not say).
    uptime_s: float | None = None

    @classmethod
    def of(cls, url: str, status: schema.Status) -> PeerAnswer:
        members = {m.id: MemberEntry(m.voter, m.started, m.url) for m in status.members}
        waiting = status.first_start is not schema.UNSET or status.bootstrap is not schema.UNSET
        return cls(url, waiting, members, status.id, status.term, status.uptime_s)

    @property
    def fresh(self) -> bool:
        """It started moments ago (within ``FRESH_WINDOW_S``)."""
        return self.uptime_s is not None and self.uptime_s <= FRESH_WINDOW_S


Action = Literal["bootstrap", "join", "wait", "refuse"]


@dataclasses.dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    #: The members' addresses, for a node that starts empty (join).
    peers: dict[str, str] = dataclasses.field(default_factory=dict)
    #: The term a voter that has not started starts at, counted as voted:
    #: the highest term any voter holds (bootstrap).
    term_floor: int = 0


def decide(
    me: str,
    voters: Collection[str],
    answers: Iterable[PeerAnswer],
    *,
    never_ran: bool = False,
    fresh_term: int = 0,
) -> Decision:
    """One round: what a node with a new data directory does, given the
    answers of the other members of ``voters`` (``--peers``; empty with
    ``--join``). ``never_ran``: the operator says this member never ran,
    so it need not wait for every voter. ``fresh_term``: the term members
    start at, in which nobody votes (0; 1 for a restored cluster, whose
    members start at term 1). See the module's documentation."""
    answers = list(answers)
    running = [a for a in answers if not a.waiting and a.members]
    for answer in running:
        entry = answer.members.get(me)
        if entry is not None and entry.started:
            lost = (
                "its log and vote are lost, and starting empty could let it vote twice in a term"
                if entry.voter
                else "its log is lost, and the leader, which keeps how far it had acknowledged, would "
                "never catch an empty one up"
            )
            return Decision(
                "refuse",
                f"this data directory is new, but {me} is already a member of the cluster at {answer.url} "
                f"and has started before: {lost}. Remove it and add it anew (raft-trio members remove {me} "
                f"--cluster {answer.url}; raft-trio members add {me} URL --cluster {answer.url}), then "
                "start it: it rejoins as a learner and votes once it has caught up",
            )
    if not voters:  # --join: the join adds it as a learner
        if not running:
            return Decision(
                "wait",
                "the cluster to join does not answer, or is not formed yet: waiting to learn whether "
                "this member has started before",
            )
        as_voter = next((a for a in running if me in a.members and a.members[me].voter), None)
        if as_voter is not None:
            return Decision(
                "refuse",
                f"the cluster at {as_voter.url} lists {me} as a voter that has not started: start it "
                "with that cluster's --peers, not --join",
            )
        return Decision("join", "the cluster does not know this node as a member that has started")
    for answer in running:
        entry = answer.members.get(me)
        if entry is not None and not entry.voter:
            peers = {i: m.url for i, m in answer.members.items() if i != me}
            return Decision("join", f"the cluster at {answer.url} lists {me} as a learner", peers)
    listing = [a for a in running if me in a.members]
    if listing:
        listed = f"the cluster at {listing[0].url} lists {me} as a voter that has not started"
        floor = max(a.term for a in answers if not a.waiting)
        unheard = _voters_unheard(me, running, answers)
        if not unheard or never_ran:
            return Decision("bootstrap", f"{listed}; starting at term {floor}", term_floor=floor)
        if floor > fresh_term or not all(a.fresh for a in running):
            return Decision(
                "wait",
                f"{listed}, but it may have voted before its data directory was lost: waiting for "
                f"{', '.join(unheard)} to answer, so that it starts past every term it may have voted in "
                "(if this member never ran before, start it with --never-ran to go on without them)",
            )
        # No one that answered holds a term past the one members start at,
        # and each started moments ago (one cut off since long ago would
        # still be at that term, pre-vote keeping it there): as in a new
        # cluster, they count as new (below).
    elif running:
        answer = running[0]
        return Decision(
            "refuse",
            f"the cluster at {answer.url} does not list {me} as a member (it was removed, or --peers "
            f"is not that cluster's): add it first (raft-trio members add {me} URL --cluster "
            f"{answer.url}), then start it",
        )
    new = 1 + sum(1 for a in answers if a.waiting) + len(running)  # this node, and those at term 0
    if 2 * new > len(voters):
        return Decision("bootstrap", f"{new} of the {len(voters)} members of --peers are new: a new cluster")
    return Decision(
        "wait",
        f"{new} of the {len(voters)} members of --peers are known to be new and none of the others "
        "answered: waiting to learn whether this member has started before",
    )


def _voters_unheard(me: str, running: list[PeerAnswer], answers: list[PeerAnswer]) -> list[str]:
    """The voters any running member lists, this node left out, that did
    not answer: one of them may be the candidate this node voted for."""
    voters = {i for a in running for i, m in a.members.items() if m.voter}
    return sorted(voters - {me} - {a.id for a in answers})


async def check(
    me: str,
    peers: dict[str, str],
    voters: Collection[str],
    fetch_status: FetchStatus,
    round_s: float = ROUND_S,
    *,
    never_ran: bool = False,
    fresh_term: int = 0,
) -> Decision:
    """Ask ``peers`` (id -> URL, this node left out), and every member
    their answers list, every ``round_s`` until :func:`decide` says
    bootstrap or join; raises :class:`AlreadyMember` when it says refuse."""
    said = ("", -REPEAT_LOG_S)
    started = time.monotonic()
    asking = dict(peers)
    while True:
        answers = await _ask_all(asking.values(), fetch_status)
        asking.update((i, m.url) for a in answers if not a.waiting for i, m in a.members.items() if i != me)
        decision = decide(me, voters, answers, never_ran=never_ran, fresh_term=fresh_term)
        if decision.action == "refuse":
            raise AlreadyMember(decision.reason)
        if decision.action != "wait":
            log.info("first start: %s: %s", decision.action, decision.reason)
            return decision
        now = time.monotonic()
        if decision.reason != said[0] or now - said[1] >= REPEAT_LOG_S:
            # Other members starting at the same moment answer within a
            # second or two; a longer wait deserves an operator's eye.
            level = logging.WARNING if now - started >= REPEAT_LOG_S else logging.INFO
            log.log(level, "first start: %s", decision.reason)
            said = (decision.reason, now)
        await trio.sleep(round_s)


async def _ask_all(urls: Iterable[str], fetch_status: FetchStatus) -> list[PeerAnswer]:
    answers: list[PeerAnswer] = []

    async def ask(url: str) -> None:
        status = await fetch_status(url)
        if status is not None:
            answers.append(PeerAnswer.of(url, status))

    async with trio.open_nursery() as nursery:
        for url in urls:
            nursery.start_soon(ask, url)
    return answers


def waiting_status(me: str, peers: Collection[str]) -> schema.Status:
    """The ``/api/status`` of a node waiting in its first-start check."""
    return schema.Status(
        id=me,
        role="follower",
        term=0,
        leader_id=None,
        leader_url=None,
        commit_index=0,
        applied_index=0,
        last_log_index=0,
        members=[],
        first_start=schema.FirstStart(sorted(peers)),
    )
