"""Peer messages on the wire (DESIGN "compact encoding of peer messages"):
every message survives an encode/decode round trip, and anything malformed
is refused with a msgspec error, never anything else (as h11 treats bytes
from the network)."""

from __future__ import annotations

import random

import msgspec
import pytest

from raft_trio.core import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    RequestVote,
    RequestVoteResponse,
    SnapshotMeta,
    TimeoutNow,
    decode_message,
    encode_message,
)

from .helpers import membership

MESSAGES: list[Message] = [
    RequestVote(3, "a", "b", last_log_index=7, last_log_term=2),
    RequestVote(4, "a", "b", last_log_index=7, last_log_term=2, pre_vote=True),
    RequestVote(4, "a", "b", last_log_index=7, last_log_term=2, transfer=True),
    RequestVoteResponse(3, "b", "a", granted=True),
    RequestVoteResponse(4, "b", "a", granted=False, pre_vote=True),
    AppendEntries(
        3,
        "a",
        "b",
        prev_index=7,
        prev_term=2,
        entries=(
            Entry(8, 3, EntryKind.NOOP),
            Entry(9, 3, EntryKind.NORMAL, b"\x00\xffcommand"),
            Entry(10, 3, EntryKind.CONFIG, membership("abc", learners="d").encode()),
        ),
        commit=7,
        commit_term=2,
        epoch=5,
    ),
    AppendEntries(3, "a", "b", prev_index=0, prev_term=0, entries=(), commit=0),
    AppendEntriesResponse(3, "b", "a", success=True, index=10),
    AppendEntriesResponse(3, "b", "a", success=False, index=7, hint_index=4, hint_term=2),
    AppendEntriesResponse(3, "b", "a", success=True, index=10, epoch=5),
    Heartbeat(3, "a", "b", commit=9, seq=12),
    Heartbeat(3, "a", "b", commit=9, seq=12, commit_term=3, epoch=5),
    HeartbeatResponse(3, "b", "a", seq=12),
    HeartbeatResponse(3, "b", "a", seq=12, epoch=5),
    HeartbeatResponse(3, "b", "a", seq=12, epoch=5, lacks=True),
    InstallSnapshot(3, "a", "b", SnapshotMeta(9, 3, membership("abc", learners="d")), b"state"),
    InstallSnapshot(3, "a", "b", SnapshotMeta(9, 3, membership("abc")), b"state", epoch=5),
    TimeoutNow(3, "a", "b"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_message_round_trip(message: Message) -> None:
    """Every message, with every kind of entry and a snapshot carrying a
    configuration (§5.1), comes back equal and of the same type."""
    data = encode_message(message)
    decoded = decode_message(data)
    assert decoded == message
    assert type(decoded) is type(message)


class _AppendEntriesBefore(msgspec.Struct, frozen=True, tag="append", array_like=True):
    """AppendEntries as nodes before a9467b5 encode and decode it: no
    ``commit_term``."""

    term: int
    src: str
    dst: str
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


class _HeartbeatBefore(msgspec.Struct, frozen=True, tag="hb", array_like=True):
    """Heartbeat as nodes before a9467b5 encode and decode it."""

    term: int
    src: str
    dst: str
    commit: int
    seq: int


def test_messages_decode_across_the_fields_added_at_the_end() -> None:
    """A rolling upgrade mixes both: the older forms decode with the new
    fields 0 (a follower then learns only the commit index, and a leader
    takes an answer with no epoch as before), and an older node ignores
    the trailing fields."""
    older = _AppendEntriesBefore(3, "a", "b", 7, 2, (), 7)
    assert decode_message(msgspec.msgpack.encode(older)) == AppendEntries(3, "a", "b", 7, 2, (), 7, 0, 0)
    newer = encode_message(AppendEntries(3, "a", "b", 7, 2, (), 7, commit_term=2, epoch=9))
    assert msgspec.msgpack.decode(newer, type=_AppendEntriesBefore) == older

    old_heartbeat = _HeartbeatBefore(3, "a", "b", 7, 12)
    assert decode_message(msgspec.msgpack.encode(old_heartbeat)) == Heartbeat(3, "a", "b", commit=7, seq=12)
    new_heartbeat = encode_message(Heartbeat(3, "a", "b", commit=7, seq=12, commit_term=2, epoch=9))
    assert msgspec.msgpack.decode(new_heartbeat, type=_HeartbeatBefore) == old_heartbeat


def test_every_message_kind_is_covered() -> None:
    """The round trip above covers every message of the protocol."""
    kinds = {type(m) for m in MESSAGES}
    assert kinds == set(Message.__args__)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", msgspec.DecodeError),
        (b"\xc1", msgspec.DecodeError),  # a byte msgpack never uses
        (encode_message(MESSAGES[5])[:-3], msgspec.DecodeError),  # truncated
        (msgspec.msgpack.encode({"term": 1}), msgspec.ValidationError),
        (msgspec.msgpack.encode(["nope", 1, "a", "b"]), msgspec.ValidationError),  # unknown tag
        (msgspec.msgpack.encode(["vote", "one", "a", "b", 1, 1]), msgspec.ValidationError),  # term not int
        (msgspec.msgpack.encode(["hb", 1, "a", "b", 0]), msgspec.ValidationError),  # missing seq
        (
            msgspec.msgpack.encode(["append", 1, "a", "b", 0, 0, [[1]], 0]),
            msgspec.ValidationError,
        ),  # bad entry
        (msgspec.msgpack.encode(["append", 1, "a", "b", 0, 0, [[1, 1, 9, b""]], 0]), msgspec.ValidationError),
        (
            encode_message(TimeoutNow(3, "a", "b")).replace(b"\xa1a", b"\xa1\x80"),
            msgspec.DecodeError,
        ),  # bad UTF-8
    ],
    ids=["empty", "reserved", "truncated", "map", "tag", "term", "missing", "entry", "kind", "utf8"],
)
def test_garbage_raises_msgspec_error(data: bytes, error: type[Exception]) -> None:
    """``decode_message`` "raises msgspec.ValidationError or
    msgspec.DecodeError on anything malformed" (its docstring): a peer's
    garbage is a remote protocol error the transport can catch, never an
    arbitrary exception."""
    with pytest.raises(error):
        decode_message(data)


def misdecoded(inputs: list[bytes]) -> list[tuple[bytes, str]]:
    """The inputs on which ``decode_message`` did something other than
    return a message or raise a msgspec error, with what it did."""
    bad = []
    for data in inputs:
        try:
            decoded = decode_message(data)
        except msgspec.DecodeError:  # ValidationError is a DecodeError
            continue
        except Exception as error:
            bad.append((data, repr(error)))
            continue
        if not isinstance(decoded, Message.__args__):
            bad.append((data, f"returned {decoded!r}"))
    return bad


@pytest.mark.parametrize("seed", [0, 1])
def test_random_bytes_decode_or_raise_decode_error(seed: int) -> None:
    """Fuzz: random bytes of every short length."""
    rng = random.Random(seed)
    inputs = [rng.randbytes(rng.randint(0, 80)) for _ in range(2000)]
    bad = misdecoded(inputs)
    assert not bad, f"seed {seed}: {len(bad)} of {len(inputs)} inputs, e.g. {bad[0]}"


@pytest.mark.parametrize("seed", [0, 1])
def test_corrupted_messages_decode_or_raise_decode_error(seed: int) -> None:
    """Fuzz: valid messages with one byte changed, or cut short."""
    rng = random.Random(seed)
    inputs = []
    for _ in range(2000):
        encoded = bytearray(encode_message(rng.choice(MESSAGES)))
        if rng.random() < 0.2:
            inputs.append(bytes(encoded[: rng.randrange(len(encoded))]))
        else:
            encoded[rng.randrange(len(encoded))] = rng.randrange(256)
            inputs.append(bytes(encoded))
    bad = misdecoded(inputs)
    assert not bad, f"seed {seed}: {len(bad)} of {len(inputs)} inputs, e.g. {bad[0]}"
