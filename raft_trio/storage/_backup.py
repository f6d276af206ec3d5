"""Backups: a consistent copy of the state machine in one checksummed
file, and the data directories a new cluster starts from with it (etcd's
``snapshot save`` and ``snapshot restore``).

The file::

    raft-trio backup 1\\n
    {"revision": R, "term": T, "cluster_id": ..., "created": ..., "state_bytes": N, ...}\\n
    <N bytes: the state machine's snapshot at revision R>
    <32 bytes: SHA-256 of everything above>

A leader writes it as a stream (the digest comes last, so it needs no
second pass); a reader checks the magic line, the header, the length and
the digest before it trusts a byte of the state, so a truncated or damaged
file is refused whole.

Restoring makes a new data directory per member holding a snapshot at
revision R (so revisions go on from where the backup stood, and watches
and compares keep their meaning) in term 1 of a new cluster, whose id is
derived from the backup and the member list, so that every member restored
from one file with one ``--peers`` agrees on it without being told.

Restoring the same file again for one member of a restored cluster that
has run (its disk was lost) makes a directory that cluster accepts, at
term 1 with no vote: it could vote twice in a term. So a restored
directory carries a ``restored`` marker, and while it holds exactly what
the restore wrote (:func:`restored_and_never_ran`) it asks the cluster
before it takes part, as a new data directory does
(:mod:`raft_trio.node.first_start`).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..core import HardState, Membership, Snapshot, SnapshotMeta
from ._datadir import RESTORED_NAME, RESTORING_NAME
from ._durable import DurableStorage
from ._errors import StorageError
from ._files import atomic_write, fsync_dir

MAGIC = b"raft-trio backup 1\n"
DIGEST_BYTES = 32
#: A header longer than this is not a header.
MAX_HEADER_BYTES = 64 * 1024
#: Chunks of the state in a streamed backup.
CHUNK_BYTES = 1 << 20


class BackupCorrupt(StorageError):
    """The file is not a whole, intact raft-trio backup."""


@dataclasses.dataclass(frozen=True)
class Backup:
    revision: int
    term: int
    #: The cluster it was taken from (None: that cluster had no id).
    cluster_id: str | None
    created: str
    state: bytes
    #: SHA-256 of the whole file, hex.
    digest: str


def backup_stream(
    revision: int, term: int, state: bytes, cluster_id: str | None, taken_by: str
) -> Iterator[bytes]:
    """The backup file of ``state`` (the state machine's snapshot at
    ``revision``), in pieces, the digest last."""
    header = {
        "revision": revision,
        "term": term,
        "cluster_id": cluster_id,
        "taken_by": taken_by,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "state_bytes": len(state),
    }
    digest = hashlib.sha256()
    for piece in (MAGIC, json.dumps(header, sort_keys=True).encode() + b"\n"):
        digest.update(piece)
        yield piece
    view = memoryview(state)
    for start in range(0, len(state), CHUNK_BYTES):
        chunk = bytes(view[start : start + CHUNK_BYTES])
        digest.update(chunk)
        yield chunk
    yield digest.digest()


def parse_backup(data: bytes, source: str = "the backup") -> Backup:
    """The backup in ``data``, checked whole; raises ``BackupCorrupt``."""
    if not data.startswith(MAGIC):
        raise BackupCorrupt(f"{source} is not a raft-trio backup (it does not start with {MAGIC!r})")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER_BYTES)
    if end < 0:
        raise BackupCorrupt(f"{source} has no readable header: truncated or damaged")
    try:
        header: dict[str, Any] = json.loads(data[len(MAGIC) : end])
        revision, term, size = int(header["revision"]), int(header["term"]), int(header["state_bytes"])
        cluster_id = header.get("cluster_id")
        created = str(header.get("created", ""))
    except (ValueError, KeyError, TypeError) as error:
        raise BackupCorrupt(f"{source} has a damaged header ({error})") from error
    if revision < 0 or term < 0 or size < 0 or (cluster_id is not None and not isinstance(cluster_id, str)):
        raise BackupCorrupt(f"{source} has impossible values in its header")
    body_start = end + 1
    expected_length = body_start + size + DIGEST_BYTES
    if len(data) != expected_length:
        raise BackupCorrupt(
            f"{source} is {len(data)} bytes where its header says {expected_length}: "
            "truncated or with something appended"
        )
    digest = hashlib.sha256(memoryview(data)[: body_start + size]).digest()
    if digest != data[body_start + size :]:
        raise BackupCorrupt(f"{source} fails its SHA-256 checksum: damaged")
    state = bytes(data[body_start : body_start + size])
    return Backup(revision, term, cluster_id, created, state, hashlib.sha256(data).hexdigest())


def read_backup(path: str | os.PathLike[str]) -> Backup:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise BackupCorrupt(f"cannot read {path}: {error.strerror}") from error
    return parse_backup(data, str(path))


def restored_cluster_id(backup: Backup, peers: Mapping[str, str], bump_revision: int = 0) -> str:
    """The new cluster's id: the same for every member restored from this
    backup with these peers and this ``--bump-revision``, different for any
    other restore. Members given different bumps would start at different
    revisions with different snapshots at the same term, so they get
    different ids and refuse each other's peer traffic."""
    members = ",".join(f"{node}={url}" for node, url in sorted(peers.items()))
    bumped = f"|+{bump_revision}" if bump_revision else ""
    return "restored-" + hashlib.sha256(f"{backup.digest}|{members}{bumped}".encode()).hexdigest()[:16]


def restore_backup(
    backup: Backup,
    data_dir: str | os.PathLike[str],
    node_id: str,
    peers: Mapping[str, str],
    cluster_id: str | None = None,
) -> str:
    """Make a new data directory for ``node_id``, one of ``peers``, from
    which it starts as a member of a new cluster holding exactly the
    backup's state. Refuses an existing, non-empty directory. Returns the
    cluster id it recorded."""
    if node_id not in peers:
        raise ValueError(f"--peers must include this node ({node_id})")
    root = Path(data_dir)
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root} exists and is not a directory: restore makes a new data directory")
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} exists and is not empty: restore makes a new data directory")
    cluster = cluster_id or restored_cluster_id(backup, peers)
    # Term 1 of the new cluster: every member starts from the same snapshot
    # at the backup's revision, with no vote cast.
    meta = SnapshotMeta(backup.revision, RESTORED_TERM, Membership.of(dict(peers)))
    # Marked unfinished first, finished last: a node refuses to start from a
    # restore cut short, which would hold a configuration and a snapshot
    # but skip the check of a restored member's first start.
    root.mkdir(parents=True, exist_ok=True)
    fsync_dir(root.parent)
    atomic_write(root / RESTORING_NAME, b"")
    storage = DurableStorage.open(root, node_id, cluster, initial_snapshot=Snapshot(meta, backup.state))
    try:
        storage.write_to_disk(_restored_hard_state(backup.revision), [], None)
    finally:
        storage.close()
    atomic_write(root / RESTORED_NAME, b"")
    (root / RESTORING_NAME).unlink()
    fsync_dir(root)
    return cluster


#: The term a restored cluster's members start at (no vote is cast in it:
#: the first election is for the next).
RESTORED_TERM = 1


def _restored_hard_state(revision: int) -> HardState:
    return HardState(RESTORED_TERM, None, revision)


def restored_and_never_ran(storage: DurableStorage) -> bool:
    """Whether ``storage`` was made by :func:`restore_backup` and holds
    exactly what it wrote: no vote, no term since, no entry. Such a member
    may be a second restore of one that ran, and asks its cluster first."""
    snapshot = storage.snapshot().meta
    return (
        (storage.path / RESTORED_NAME).exists()
        and storage.hard_state() == _restored_hard_state(snapshot.index)
        and storage.last_index() == snapshot.index
    )
