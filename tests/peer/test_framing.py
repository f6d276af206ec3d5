"""Frames of a peer stream, sans-IO: what a reader makes of the bytes a
writer made, however they are split, and how it refuses anything else."""

from __future__ import annotations

import os
import random

import pytest

from raft_trio.peer.framing import MAC_BYTES, FrameError, FrameReader, FrameWriter

KEY = bytes(range(32))


def seed() -> int:
    value = int(os.environ.get("FRAMING_SEED", random.randrange(2**32)))
    print(f"FRAMING_SEED={value}")
    return value


@pytest.mark.parametrize("key", [None, KEY], ids=["unsigned", "signed"])
def test_frames_arrive_whole_and_in_order_however_the_bytes_are_split(key: bytes | None) -> None:
    rng = random.Random(seed())
    writer, reader = FrameWriter(key), FrameReader(key)
    payloads = [rng.randbytes(rng.choice([0, 1, 7, 200, 5000])) for _ in range(50)]
    data = b"".join(writer.frame(p) for p in payloads)
    got: list[bytes] = []
    at = 0
    while at < len(data):
        step = rng.randint(1, 300)
        got += reader.feed(data[at : at + step])
        at += step
    assert got == payloads
    assert reader.pending_bytes == 0
    assert reader.sequence == writer.sequence == 50


def test_an_oversized_frame_is_refused_from_its_length_before_it_is_buffered() -> None:
    reader = FrameReader(max_frame_bytes=1000)
    with pytest.raises(FrameError, match="exceeds the limit") as caught:
        reader.feed((1001).to_bytes(4, "big") + b"x")
    assert caught.value.authentic  # an unsigned stream: malformed, not forged
    assert reader.pending_bytes == 0
    with pytest.raises(FrameError):
        reader.feed(b"more")  # a failed reader stays failed


def test_on_a_signed_stream_an_oversized_length_counts_as_forged() -> None:
    reader = FrameReader(KEY, max_frame_bytes=1000)
    with pytest.raises(FrameError) as caught:
        reader.feed((1 << 31).to_bytes(4, "big"))
    assert not caught.value.authentic


def test_every_altered_byte_of_a_signed_frame_is_caught() -> None:
    frame = FrameWriter(KEY).frame(b"a heartbeat, say")
    for i in range(4, len(frame)):  # past the length: payload and MAC
        altered = bytearray(frame)
        altered[i] ^= 0x01
        with pytest.raises(FrameError, match="failed its MAC") as caught:
            FrameReader(KEY).feed(bytes(altered))
        assert not caught.value.authentic


def test_a_signed_frame_needs_its_mac_before_it_is_handed_out() -> None:
    frame = FrameWriter(KEY).frame(b"payload")
    reader = FrameReader(KEY)
    assert reader.feed(frame[:-1]) == []
    assert reader.feed(frame[-1:]) == [b"payload"]
    assert len(frame) == 4 + len(b"payload") + MAC_BYTES
