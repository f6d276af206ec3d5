"""Garbage at the peer endpoints ``POST /raft/messages`` and on a peer
stream (``GET /raft/stream`` switched to ``raft-stream``): random bytes, truncated msgpack or frames, msgpack of the
wrong shapes, huge arrays, oversized frames, a sender that differs from
``X-Raft-From``, no header. Every one is a 400 with a JSON error, and the
node keeps serving. The loop is seeded; the seed is printed
(set HOSTILE_SEED to replay one)."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from raft_trio.core import Message, RequestVote, RequestVoteResponse
from raft_trio.peer.framing import MAX_FRAME_BYTES, FrameWriter
from raft_trio.peer.wire import FROM_HEADER, MESSAGES_PATH, STREAM_PATH, STREAM_PROTOCOL, encode_batch
from raft_trio.testing.peer_stream import PeerStreamClient

from ..integration.cluster import Cluster, describe
from ._support import assert_serving, error_body, log_tracebacks

pytestmark = pytest.mark.integration

ROUNDS = 300


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds: list[Callable[[], Any]] = [
        lambda: rng.randint(-(2**63), 2**64 - 1),
        lambda: rng.random() * 1e300,
        lambda: "".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(0, 8))).encode(
            "utf-8", "surrogatepass"
        ),
        lambda: rng.choice(["vote", "append", "hb", "snap", "timeout_now", "n1", "", "x" * 300]),
        lambda: None,
        lambda: rng.random() < 0.5,
    ]
    if depth < 3:
        kinds.append(lambda: [random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))])
        kinds.append(lambda: {str(i): random_value(rng, depth + 1) for i in range(rng.randint(0, 3))})
    return rng.choice(kinds)()


def garbage(rng: random.Random) -> tuple[str, bytes, dict[str, str]]:
    """(what, body, headers) of one hostile peer request."""
    ok_header = {FROM_HEADER: "n2", "Content-Type": "application/msgpack"}
    valid = encode_batch([RequestVoteResponse(term=1, src="n2", dst="n1", granted=False)])
    kind = rng.randrange(7)
    if kind == 0:
        return "random bytes", rng.randbytes(rng.randint(1, 4096)), ok_header
    if kind == 1:
        return "truncated msgpack", valid[: rng.randint(1, len(valid) - 1)], ok_header
    if kind == 2:
        value = random_value(rng)
        if value == []:  # an empty batch is a valid (if pointless) batch
            value = [None]
        return "msgpack of a wrong shape", msgspec.msgpack.encode([value]), ok_header
    if kind == 3:
        shape = rng.choice([[0] * 200_000, [[]] * 200_000, ["vote", *([1] * 100_000)]])
        return "huge array", msgspec.msgpack.encode(shape), ok_header
    if kind == 4:
        return "sender differs from the header", valid, {**ok_header, FROM_HEADER: "n3"}
    if kind == 5:
        return "no header", valid, {"Content-Type": "application/msgpack"}
    body = msgspec.msgpack.encode([["vote", rng.choice(["a", 1.5, None]), "n2", "n1", 0, 0]])
    return "wrong field types", body, ok_header


def test_peer_endpoint_garbage(node_cluster: Cluster) -> None:
    seed = int(os.environ.get("HOSTILE_SEED", random.randrange(2**32)))
    print(f"\nHOSTILE_SEED={seed}")
    rng = random.Random(seed)
    url = node_cluster["n1"].url + MESSAGES_PATH
    seen: dict[str, int] = {}
    for i in range(ROUNDS):
        what, body, headers = garbage(rng)
        r = node_cluster.http.post(url, content=body, headers=headers, timeout=10)
        seen[what] = seen.get(what, 0) + 1
        assert r.status_code == 400, f"round {i} (seed {seed}), {what}: {describe(r)}"
        assert error_body(r) is not None, f"round {i} (seed {seed}), {what}: {describe(r)}"
    print(seen)
    assert_serving(node_cluster)
    assert not log_tracebacks(node_cluster), log_tracebacks(node_cluster)[:3]


STREAM_ROUNDS = 100


def stream_garbage(rng: random.Random) -> tuple[str, list[bytes]]:
    """(what, chunks) of one hostile stream: every one ends its body."""
    frames = FrameWriter()
    valid = frames.frame(encode_batch([RequestVoteResponse(term=1, src="n2", dst="n1", granted=False)]))
    kind = rng.randrange(5)
    if kind == 0:
        return "random bytes", [rng.randbytes(rng.randint(1, 4096))]
    if kind == 1:
        return "a frame cut short", [valid, valid[: rng.randint(1, len(valid) - 1)]]
    if kind == 2:
        what, body, _ = garbage(rng)
        while what in ("sender differs from the header", "no header"):  # a valid body
            what, body, _ = garbage(rng)
        return "a frame of garbage", [valid, frames.frame(body)]
    if kind == 3:
        return "a length over the limit", [valid, (MAX_FRAME_BYTES + 1).to_bytes(4, "big")]
    other = frames.frame(encode_batch([RequestVoteResponse(term=1, src="n3", dst="n1", granted=False)]))
    return "a sender other than the header", [valid, other]


def test_peer_stream_garbage(node_cluster: Cluster) -> None:
    """Garbage on a peer stream: every stream is closed with a line saying
    why (400), and the node keeps serving; an opening without
    ``X-Raft-From`` is refused with an HTTP 400 and a JSON error."""
    seed = int(os.environ.get("HOSTILE_SEED", random.randrange(2**32)))
    print(f"\nHOSTILE_SEED={seed}")
    rng = random.Random(seed)
    url = node_cluster["n1"].url
    headers = {FROM_HEADER: "n2", "Connection": "Upgrade", "Upgrade": STREAM_PROTOCOL}
    seen: dict[str, int] = {}
    for i in range(STREAM_ROUNDS):
        what, chunks = stream_garbage(rng)
        stream = PeerStreamClient.open(url, headers)
        assert stream.status == 101, f"round {i} (seed {seed}), {what}: {stream.body}"
        try:
            for chunk in chunks:
                stream.send(chunk)
        except OSError:
            pass  # refused and closed before the last chunk was sent
        status, end = stream.finish()
        seen[what] = seen.get(what, 0) + 1
        assert status == 400 and end.get("error"), f"round {i} (seed {seed}), {what}: {end}"
    stream = PeerStreamClient.open(url, {"Connection": "Upgrade", "Upgrade": STREAM_PROTOCOL})
    assert stream.status == 400 and "X-Raft-From" in stream.body["error"], stream.body
    # Not asking to switch protocols (or not first on a connection): a 400 saying how.
    r = node_cluster.http.post(url + STREAM_PATH, content=b"x", headers={FROM_HEADER: "n2"})
    assert r.status_code == 400 and "Upgrade: raft-stream" in r.json()["error"], describe(r)
    print(seen)
    assert_serving(node_cluster)
    assert not log_tracebacks(node_cluster), log_tracebacks(node_cluster)[:3]


def test_peer_endpoint_hostile_values(node_cluster: Cluster) -> None:
    """Well-formed messages with absurd values (a far future term from a
    stranger, negative indexes, another destination) are the protocol's
    business: no 5xx, and the node keeps serving."""
    url = node_cluster["n1"].url + MESSAGES_PATH
    odd: list[Message] = [
        RequestVote(term=-5, src="ghost", dst="n1", last_log_index=-1, last_log_term=-1),
        RequestVote(term=2**62, src="ghost", dst="elsewhere", last_log_index=2**62, last_log_term=2**62),
        RequestVoteResponse(term=0, src="ghost", dst="n1", granted=True),
    ]
    for message in odd:
        r = node_cluster.http.post(url, content=encode_batch([message]), headers={FROM_HEADER: "ghost"})
        assert r.status_code < 500, describe(r)
    assert not node_cluster.crashed()
    assert node_cluster["n1"].running
    assert node_cluster.http.get(node_cluster["n1"].url + "/healthz").status_code == 200
