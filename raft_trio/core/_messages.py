"""The messages servers exchange. Frozen, validated value types (as h11's
events): the core takes them in through ``step`` and hands them out in a
``Ready``; the transport encodes them with :func:`encode_message` and
decodes with :func:`decode_message`, which refuses anything malformed.

Every message carries the sender's term and both ends' ids, so that ``step``
can apply the term rules once for every kind (Figure 3.1, "all servers").
"""

from __future__ import annotations

import msgspec

from ._types import Entry, NodeId, SnapshotMeta


class _Message(msgspec.Struct, frozen=True, tag=True, array_like=True):
    term: int
    src: NodeId
    dst: NodeId


class RequestVote(_Message, frozen=True, tag="vote"):
    """RequestVote (§3.4), or its pre-vote form (§9.6) when ``pre_vote``: a
    pre-vote asks "would you vote for me at ``term``?" without anyone
    changing term. ``transfer`` marks an election started by TimeoutNow
    (§3.10), which may override a follower's leader lease (§4.2.3)."""

    last_log_index: int
    last_log_term: int
    pre_vote: bool = False
    transfer: bool = False


class RequestVoteResponse(_Message, frozen=True, tag="vote_resp"):
    granted: bool
    pre_vote: bool = False


class AppendEntries(_Message, frozen=True, tag="append"):
    """AppendEntries (§3.5) carrying a batch of entries after
    (``prev_index``, ``prev_term``), and the leader's commit index with
    its entry's term: a follower whose log is behind that point knows it
    lacks committed entries (``RaftCore._known_commit``).

    ``epoch`` names the leader's record of this follower (its progress);
    the answer echoes it, and an answer to a record the leader has since
    replaced (a member removed and added again: the old server's
    acknowledgement, late) is ignored. The fields added after the first
    version come last with defaults, so that either version decodes the
    other's (an older node's 0 is accepted as before)."""

    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int
    commit_term: int = 0
    epoch: int = 0


class AppendEntriesResponse(_Message, frozen=True, tag="append_resp"):
    """On success ``index`` is the last index now known to match the
    leader's. On rejection ``index`` is the rejected ``prev_index`` and
    (``hint_index``, ``hint_term``) let the leader skip a whole term of
    conflicting entries at once (§5.3's optimisation)."""

    success: bool
    index: int
    hint_index: int = 0
    hint_term: int = 0
    epoch: int = 0


class Heartbeat(_Message, frozen=True, tag="hb"):
    """A heartbeat: asserts leadership, carries a commit index the follower
    can use (at most what the leader's record says it holds) with that
    entry's term, which the follower checks against its own entry there
    before it commits (a record that stood for an earlier server under
    the same id must not commit the new one's log), and a sequence number
    that confirms read-index rounds when echoed back (§6.4). ``epoch`` as
    in AppendEntries."""

    commit: int
    seq: int
    commit_term: int = 0
    epoch: int = 0


class HeartbeatResponse(_Message, frozen=True, tag="hb_resp"):
    """``lacks``: the heartbeat's commit index named an entry this
    follower does not hold (its term differs, or the log ends before it):
    the leader's record claims more than the server under this id holds."""

    seq: int
    epoch: int = 0
    lacks: bool = False


class InstallSnapshot(_Message, frozen=True, tag="snap"):
    """InstallSnapshot (§5.3), sent whole: the leader has compacted the
    entries this follower needs."""

    meta: SnapshotMeta
    data: bytes
    epoch: int = 0


class TimeoutNow(_Message, frozen=True, tag="timeout_now"):
    """Tells a caught-up follower to start an election at once (§3.10)."""


Message = (
    RequestVote
    | RequestVoteResponse
    | AppendEntries
    | AppendEntriesResponse
    | Heartbeat
    | HeartbeatResponse
    | InstallSnapshot
    | TimeoutNow
)

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)


def encode_message(message: Message) -> bytes:
    return _encoder.encode(message)


def decode_message(data: bytes) -> Message:
    """Decode one message; raises ``msgspec.ValidationError`` or
    ``msgspec.DecodeError`` on anything malformed."""
    try:
        return _decoder.decode(data)
    except UnicodeDecodeError as error:  # msgspec lets this one through
        raise msgspec.DecodeError(f"invalid UTF-8 in a string: {error}") from error
