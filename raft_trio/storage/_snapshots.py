"""Snapshot files: written atomically, verified on load, the newest kept.

File format (version 1), all integers big-endian::

    magic      8 bytes   b"RTSNAP\\r\\n"
    version    u32       1
    meta_len   u32       length of the encoded SnapshotMeta
    data_len   u64       length of the state machine's data
    sha256     32 bytes  over meta then data
    meta       meta_len bytes, MessagePack (msgspec) SnapshotMeta
    data       data_len bytes, opaque

A file is written as ``<index>-<term>.snap.tmp``, fsynced, renamed to
``<index>-<term>.snap`` and the directory fsynced, so a ``.snap`` file is
complete or absent after a crash; the checksum still guards against the
disk itself (a short read, a flipped bit). Index and term are zero-padded in
the name so that names sort like indexes. The crash points ``before_rename``
and ``after_rename`` (:mod:`._crashpoints`) stand either side of the rename.

Memory: the data of a large snapshot (hundreds of MB) is never copied. It
is hashed and written from the caller's buffer, and read back with a single
allocation of exactly its size.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import struct
from pathlib import Path

import msgspec

from raft_trio.core import Snapshot, SnapshotMeta

from . import _crashpoints as crash
from ._errors import SnapshotCorrupt
from ._files import fsync_dir

logger = logging.getLogger("raft_trio.storage")

SNAPSHOT_FORMAT_VERSION = 1
_MAGIC = b"RTSNAP\r\n"
_HEADER = struct.Struct(">8sIIQ32s")
_NAME = re.compile(r"^(\d{20})-(\d{20})\.snap$")
#: Meta is small (a membership); anything bigger is a damaged length field.
_MAX_META = 64 << 20

_meta_encoder = msgspec.msgpack.Encoder()
_meta_decoder = msgspec.msgpack.Decoder(SnapshotMeta)


def snapshot_name(index: int, term: int) -> str:
    return f"{index:020d}-{term:020d}.snap"


class SnapshotStore:
    """The snapshot files of one data directory.

    Writing different snapshots from different threads is safe (each has its
    own file); listing, loading and pruning assume the caller serializes
    them with writes (the storage's writer thread does).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, index: int, term: int) -> Path:
        return self.directory / snapshot_name(index, term)

    def exists(self, index: int, term: int) -> bool:
        return self.path(index, term).is_file()

    def write(self, snapshot: Snapshot) -> Path:
        """Write ``snapshot`` durably; returns its path. Overwrites a file
        of the same index and term (the same log prefix, so the same
        state)."""
        meta = snapshot.meta
        final = self.path(meta.index, meta.term)
        tmp = final.with_name(final.name + ".tmp")
        meta_bytes = _meta_encoder.encode(meta)
        data = snapshot.data
        digest = hashlib.sha256(meta_bytes)
        digest.update(data)
        header = _HEADER.pack(_MAGIC, SNAPSHOT_FORMAT_VERSION, len(meta_bytes), len(data), digest.digest())
        try:
            with open(tmp, "wb") as f:
                f.write(header)
                f.write(meta_bytes)
                f.write(data)  # large writes bypass the buffer: no copy
                f.flush()
                os.fsync(f.fileno())
            if crash.armed is not None:
                crash.reach(crash.BEFORE_RENAME)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        if crash.armed is not None:
            crash.reach(crash.AFTER_RENAME)
        fsync_dir(self.directory)
        return final

    def load(self, index: int, term: int) -> Snapshot:
        """Read and verify one snapshot; raises :class:`SnapshotCorrupt`."""
        path = self.path(index, term)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                header = f.read(_HEADER.size)
                if len(header) != _HEADER.size:
                    raise SnapshotCorrupt(f"{path}: truncated header ({size} bytes)")
                magic, version, meta_len, data_len, checksum = _HEADER.unpack(header)
                if magic != _MAGIC:
                    raise SnapshotCorrupt(f"{path}: not a raft-trio snapshot (bad magic)")
                if version != SNAPSHOT_FORMAT_VERSION:
                    raise SnapshotCorrupt(f"{path}: unknown snapshot format version {version}")
                if meta_len > _MAX_META or _HEADER.size + meta_len + data_len != size:
                    raise SnapshotCorrupt(
                        f"{path}: length fields ({meta_len} + {data_len}) do not match the file size {size}"
                    )
                meta_bytes = f.read(meta_len)
                data = f.read(data_len)  # one allocation of exactly data_len bytes
        except FileNotFoundError:
            raise SnapshotCorrupt(f"{path}: missing") from None
        except OSError as exc:
            raise SnapshotCorrupt(f"{path}: unreadable ({exc})") from exc
        if len(meta_bytes) != meta_len or len(data) != data_len:
            raise SnapshotCorrupt(f"{path}: short read")
        digest = hashlib.sha256(meta_bytes)
        digest.update(data)
        if digest.digest() != checksum:
            raise SnapshotCorrupt(f"{path}: checksum mismatch")
        try:
            meta = _meta_decoder.decode(meta_bytes)
        except msgspec.DecodeError as exc:
            raise SnapshotCorrupt(f"{path}: undecodable metadata ({exc})") from exc
        if (meta.index, meta.term) != (index, term):
            raise SnapshotCorrupt(f"{path}: holds index {meta.index} term {meta.term}, not its name's")
        return Snapshot(meta, data)

    def stored(self) -> list[tuple[int, int]]:
        """(index, term) of every complete snapshot file, oldest first."""
        found: list[tuple[int, int]] = []
        if not self.directory.is_dir():
            return found
        for entry in os.scandir(self.directory):
            match = _NAME.match(entry.name)
            if match:
                found.append((int(match[1]), int(match[2])))
        found.sort()
        return found

    def prune(self, keep: set[tuple[int, int]], *, recovering: bool = False) -> list[str]:
        """Delete the snapshot files older than the newest one in ``keep``
        and not in ``keep``; returns the names deleted.

        Newer files may be snapshots another thread is staging, so they
        stay, and so do ``.tmp`` files, unless ``recovering`` (no other
        thread runs yet): then every file not in ``keep`` goes.
        """
        deleted: list[str] = []
        if not self.directory.is_dir():
            return deleted
        newest = max(keep, default=(-1, -1))
        for entry in os.scandir(self.directory):
            match = _NAME.match(entry.name)
            if match is not None:
                key = (int(match[1]), int(match[2]))
                stale = key not in keep and (recovering or key < newest)
            else:
                stale = recovering and entry.name.endswith(".snap.tmp")
            if stale:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                deleted.append(entry.name)
        if deleted:
            fsync_dir(self.directory)
        return deleted

    def quarantine(self, index: int, term: int) -> Path | None:
        """Rename a damaged snapshot out of the way (``.corrupt``) so that
        an operator can inspect it and it is never loaded again."""
        path = self.path(index, term)
        target = path.with_name(path.name + ".corrupt")
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return None
        fsync_dir(self.directory)
        return target
