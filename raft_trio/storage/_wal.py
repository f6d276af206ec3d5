"""Checking SQLite's write-ahead log before SQLite reads it.

SQLite ends its WAL at the first frame whose checksum fails and silently
drops every frame after it, committed transactions included. That is right
for a torn tail (the transaction being written when the power went), and
wrong for a frame damaged later: then term, vote and acknowledged entries
roll back without a word. So before SQLite opens the database, this module
reads ``raft.db-wal`` (and the wal-index header in ``raft.db-shm``) itself,
with the formats SQLite documents (https://sqlite.org/fileformat.html,
section 4, and https://sqlite.org/walformat.html), and tells the two apart:

- A frame of the current salt generation fails its checksum, and a frame of
  a *later* transaction verifies when its chain is continued from the
  checksum stored in the frame before it: SQLite wrote that later
  transaction only after the damaged one was fsynced (``synchronous=FULL``
  syncs at every commit), so the damaged frame was durable and has rotted
  since. Mid-WAL damage.
- The wal-index header in ``raft.db-shm`` says the last process committed
  through frame M of this generation, but frames up to M do not verify, or
  the WAL is gone or shorter. SQLite updates that header only after the
  commit's fsync, so frames up to M were durable. This catches damage to
  the very last transaction after a process crash (the -shm file survives
  one; it does not survive a reboot, and the first SQLite connection to the
  database rebuilds it, so this evidence is best effort).
- Anything else that fails is a torn tail: the frames of one transaction
  that never finished its commit, which SQLite drops and nobody was told of.

Reading the WAL costs about 75 microseconds a frame; SQLite checkpoints it
every 1,000 pages, so a restart after a crash spends a tenth of a second
here at most, and nothing is spent while the node runs.
"""

from __future__ import annotations

import array
import dataclasses
import struct
import sys
from pathlib import Path

_WAL_HEADER = struct.Struct(">IIIIIIII")
_FRAME_HEADER = struct.Struct(">IIIIII")
_WAL_MAGIC = 0x377F0682  # | 1: checksums over big-endian words
_WAL_VERSION = 3007000
WAL_HEADER_BYTES = 32
FRAME_HEADER_BYTES = 24

# The wal-index header at the start of the -shm file: two copies of a
# 48-byte WalIndexHdr, then WalCkptInfo; native byte order.
_SHM_HEADER = struct.Struct("=IIIBBHIIIIIIII")
_SHM_COPY_BYTES = 48
_SHM_CHECKSUMMED_BYTES = 40
_SHM_BACKFILL = struct.Struct("=I")
_SHM_BACKFILL_OFFSET = 96


@dataclasses.dataclass(frozen=True)
class WalFinding:
    """What the WAL holds: how many frames SQLite will use, and damage it
    would silently drop (``damage`` is None when there is none)."""

    valid_frames: int
    damage: str | None = None


def checksum(data: bytes | memoryview, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    """SQLite's WAL checksum of ``data`` (a multiple of 8 bytes), continued
    from ``(s0, s1)``: for each pair of 32-bit words, ``s0 += x0 + s1;
    s1 += x1 + s0``, modulo 2**32."""
    words = array.array("I", bytes(data))
    if big_endian == (sys.byteorder == "little"):
        words.byteswap()
    for x0, x1 in zip(words[0::2], words[1::2], strict=True):
        s0 = (s0 + x0 + s1) & 0xFFFFFFFF
        s1 = (s1 + x1 + s0) & 0xFFFFFFFF
    return s0, s1


@dataclasses.dataclass(frozen=True)
class _ShmHeader:
    max_frame: int
    backfilled: int
    salts: bytes


def _read_shm(path: Path) -> _ShmHeader | None:
    """The wal-index header the last process left, if it is intact (both
    copies equal, checksum right, initialized); else None."""
    try:
        with open(path, "rb") as f:
            raw = f.read(_SHM_BACKFILL_OFFSET + _SHM_BACKFILL.size)
    except OSError:
        return None
    if len(raw) < _SHM_BACKFILL_OFFSET + _SHM_BACKFILL.size:
        return None
    first, second = raw[:_SHM_COPY_BYTES], raw[_SHM_COPY_BYTES : 2 * _SHM_COPY_BYTES]
    if first != second:
        return None  # a writer was interrupted between the two copies
    fields = _SHM_HEADER.unpack(first)
    version, is_init, max_frame = fields[0], fields[3], fields[6]
    if version != _WAL_VERSION or is_init != 1:
        return None
    expected = checksum(first[:_SHM_CHECKSUMMED_BYTES], 0, 0, big_endian=sys.byteorder == "big")
    if expected != (fields[12], fields[13]):
        return None
    (backfilled,) = _SHM_BACKFILL.unpack_from(raw, _SHM_BACKFILL_OFFSET)
    return _ShmHeader(max_frame, backfilled, first[32:40])


def check_wal(db_path: Path) -> WalFinding:
    """Read ``db_path``'s WAL and -shm without changing them; see the
    module's documentation for what counts as damage."""
    wal_path = db_path.with_name(db_path.name + "-wal")
    shm = _read_shm(db_path.with_name(db_path.name + "-shm"))
    try:
        data = wal_path.read_bytes()
    except FileNotFoundError:
        data = b""
    header = _parse_header(data)
    committed_only_in_wal = shm is not None and shm.max_frame > shm.backfilled
    if header is None:
        if committed_only_in_wal:
            assert shm is not None
            return WalFinding(
                0,
                f"{wal_path} is missing or its header is damaged, but the last process had "
                f"committed frames {shm.backfilled + 1} to {shm.max_frame} there and not yet "
                "copied them into the database",
            )
        return WalFinding(0)
    page_size, salts, big_endian, seed = header
    frame_bytes = FRAME_HEADER_BYTES + page_size
    walk = _walk(data, page_size, salts, big_endian, seed)
    if shm is not None and shm.salts == salts and walk.valid_frames < shm.max_frame:
        return WalFinding(
            walk.valid_frames,
            f"{wal_path}: the last process committed through frame {shm.max_frame}, but "
            f"{_why_short(walk, len(data), frame_bytes)}",
        )
    if shm is not None and shm.salts != salts and committed_only_in_wal:
        return WalFinding(
            walk.valid_frames,
            f"{wal_path}: the last process had committed frames {shm.backfilled + 1} to "
            f"{shm.max_frame} of a WAL generation this file no longer holds",
        )
    if walk.failed_frame is not None and _later_transaction_verifies(
        data, walk.failed_frame, page_size, salts, big_endian
    ):
        return WalFinding(
            walk.valid_frames,
            f"{wal_path}: frame {walk.failed_frame} fails its checksum, but a later "
            "transaction's frames verify: the damaged frame was durable (not a torn tail)",
        )
    return WalFinding(walk.valid_frames)


def _parse_header(data: bytes) -> tuple[int, bytes, bool, tuple[int, int]] | None:
    """(page size, salts, big-endian checksums, checksum seed) of a valid
    WAL header; None when there is none (SQLite then ignores the file)."""
    if len(data) < WAL_HEADER_BYTES:
        return None
    magic, version, page_size, _, _, _, c1, c2 = _WAL_HEADER.unpack_from(data)
    if magic & ~1 != _WAL_MAGIC or version != _WAL_VERSION:
        return None
    if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        return None
    big_endian = bool(magic & 1)
    seed = checksum(data[:24], 0, 0, big_endian)
    if seed != (c1, c2):
        return None
    return page_size, data[16:24], big_endian, seed


@dataclasses.dataclass(frozen=True)
class _Walk:
    #: Frames SQLite will use: up to the last commit frame of the valid prefix.
    valid_frames: int
    #: The first frame of this generation whose checksum fails (1-based).
    failed_frame: int | None


def _frames(data: bytes, page_size: int) -> int:
    return max(0, (len(data) - WAL_HEADER_BYTES) // (FRAME_HEADER_BYTES + page_size))


def _offset(number: int, page_size: int) -> int:
    """Where frame ``number`` (1-based) starts."""
    return WAL_HEADER_BYTES + (number - 1) * (FRAME_HEADER_BYTES + page_size)


def _frame_header(data: bytes, number: int, page_size: int) -> tuple[int, ...]:
    """(page number, commit size, salt 1, salt 2, checksum 1, checksum 2)."""
    return _FRAME_HEADER.unpack_from(data, _offset(number, page_size))


def _frame_checksum(
    data: bytes, number: int, page_size: int, big_endian: bool, seed: tuple[int, int]
) -> tuple[int, int]:
    """The checksum frame ``number`` should store, continuing from ``seed``:
    over the first 8 bytes of its header, then its page."""
    offset = _offset(number, page_size)
    s0, s1 = checksum(data[offset : offset + 8], *seed, big_endian)
    page = memoryview(data)[offset + FRAME_HEADER_BYTES : offset + FRAME_HEADER_BYTES + page_size]
    return checksum(page, s0, s1, big_endian)


def _walk(data: bytes, page_size: int, salts: bytes, big_endian: bool, seed: tuple[int, int]) -> _Walk:
    """Verify the chain of frames from the start, as SQLite's recovery does."""
    salt1, salt2 = struct.unpack(">II", salts)
    valid = 0
    for number in range(1, _frames(data, page_size) + 1):
        _, commit, s1, s2, c1, c2 = _frame_header(data, number, page_size)
        if (s1, s2) != (salt1, salt2):
            return _Walk(valid, None)  # the end of this generation
        seed = _frame_checksum(data, number, page_size, big_endian, seed)
        if seed != (c1, c2):
            return _Walk(valid, number)
        if commit:
            valid = number
    return _Walk(valid, None)


def _later_transaction_verifies(
    data: bytes, failed: int, page_size: int, salts: bytes, big_endian: bool
) -> bool:
    """Whether, continuing the chain after frame ``failed`` from each
    frame's stored checksum, a frame verifies that belongs to a transaction
    after the one ``failed`` is part of (which ends at the first commit
    frame at or after it)."""
    salt1, salt2 = struct.unpack(">II", salts)
    _, commit, _, _, c1, c2 = _frame_header(data, failed, page_size)
    seed = (c1, c2)
    transaction_ended = bool(commit)
    for number in range(failed + 1, _frames(data, page_size) + 1):
        _, commit, s1, s2, c1, c2 = _frame_header(data, number, page_size)
        if (s1, s2) != (salt1, salt2):
            return False
        if _frame_checksum(data, number, page_size, big_endian, seed) != (c1, c2):
            return False
        if transaction_ended:
            return True
        transaction_ended = bool(commit)
        seed = (c1, c2)
    return False


def _why_short(walk: _Walk, size: int, frame_bytes: int) -> str:
    if walk.failed_frame is not None:
        return f"frame {walk.failed_frame} fails its checksum (SQLite would keep only {walk.valid_frames})"
    available = max(0, (size - WAL_HEADER_BYTES) // frame_bytes)
    return f"only {walk.valid_frames} verify ({available} frames in the file)"
