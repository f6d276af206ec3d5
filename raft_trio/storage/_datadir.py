"""The data directory: what belongs to which node, and who may open it.

Layout::

    DATA_DIR/meta.json     {"format_version": 1, "cluster_id": ..., "node_id": ...}
    DATA_DIR/raft.db       SQLite: hard state, snapshot pointer, log entries
    DATA_DIR/snapshots/    <index>-<term>.snap files
    DATA_DIR/LOCK          flock()ed while a process has the directory open

A node that starts on another node's directory would answer votes with
another server's term and vote, and one that starts on another cluster's
directory would serve another cluster's log: both break Raft's safety
silently. So an existing directory is checked before anything in it is
touched, and refused with :class:`DataDirError` (nothing changed) when its
node id, cluster id or format version is not ours.

``meta.json`` is written last when a directory is created, after an empty
``raft.db``: a directory that has ``meta.json`` but no ``raft.db`` has lost
its log and vote, and is refused rather than restarted empty.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
from pathlib import Path
from types import TracebackType

from ._errors import DataDirError, DataDirLocked
from ._files import atomic_write, fsync_dir

logger = logging.getLogger("raft_trio.storage")

#: Bumped whenever the on-disk layout changes in a way an older or newer
#: version cannot read. A directory of another version is refused, never
#: converted in place.
FORMAT_VERSION = 1

META_NAME = "meta.json"
DB_NAME = "raft.db"
SNAPSHOT_DIR = "snapshots"
LOCK_NAME = "LOCK"
#: The marker of a data directory made by ``raft-trio snapshot restore``
#: (raft_trio.storage._backup), written once the restore is complete.
RESTORED_NAME = "restored"
#: Written before a restore writes anything else: present without
#: ``RESTORED_NAME``, the restore did not finish (a crash, a full disk).
RESTORING_NAME = "restoring"

# What a directory may hold and still count as new: a crash during creation
# leaves at most these behind (and a restore's first marker).
_CREATION_LEFTOVERS = frozenset({LOCK_NAME, META_NAME + ".tmp", DB_NAME, SNAPSHOT_DIR, RESTORING_NAME})


@dataclasses.dataclass(frozen=True)
class DataDirMeta:
    """Who a data directory belongs to. ``cluster_id`` may be unknown
    (None) when the directory was created before the node learnt it."""

    format_version: int
    node_id: str
    cluster_id: str | None

    def encode(self) -> bytes:
        return (json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n").encode()


class DataDir:
    """An open, locked data directory. Close it (or use it as a context
    manager) to release the lock; the lock also dies with the process."""

    def __init__(self, path: Path, meta: DataDirMeta, lock_fd: int, created: bool) -> None:
        self.path = path
        self.meta = meta
        #: True if this call created the directory (a node's first start).
        self.created = created
        self._lock_fd: int | None = lock_fd

    @property
    def db_path(self) -> Path:
        return self.path / DB_NAME

    @property
    def snapshot_dir(self) -> Path:
        return self.path / SNAPSHOT_DIR

    def lock_is_present(self) -> bool:
        """Whether the ``LOCK`` file at the directory's path is still the
        one this process holds (not removed with the directory, nor the
        directory replaced by another)."""
        if self._lock_fd is None:
            return False
        try:
            return os.stat(self.path / LOCK_NAME).st_ino == os.fstat(self._lock_fd).st_ino
        except FileNotFoundError:
            return False

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> DataDir:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"DataDir({str(self.path)!r}, node_id={self.meta.node_id!r}, cluster_id={self.meta.cluster_id!r})"
        )


def open_data_dir(
    path: str | os.PathLike[str], node_id: str, cluster_id: str | None = None, *, adopt: bool = False
) -> DataDir:
    """Open the data directory at ``path`` for ``node_id``, creating it if
    it does not exist (or is empty), and lock it.

    ``cluster_id`` None accepts the directory's cluster, whatever it is. A
    directory that records no cluster id (made without one) is refused for
    a ``cluster_id``, unless ``adopt``: then the id is recorded in it. It
    may be a leftover of another cluster, which would then serve its log.
    Raises :class:`DataDirError` (nothing changed) if the directory is
    another node's or cluster's, of an unknown format version, or not a
    raft-trio directory; :class:`DataDirLocked` if another process has it.
    """
    if not node_id:
        raise ValueError("node_id must not be empty")
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise DataDirError(f"data directory {root} exists and is not a directory")
    meta_path = root / META_NAME
    if meta_path.exists():
        return _open_existing(root, node_id, cluster_id, adopt)
    _check_new(root)
    root.mkdir(parents=True, exist_ok=True)
    fsync_dir(root.parent)
    lock_fd = _lock(root)
    try:
        if meta_path.exists():
            # Another process created it between our check and our lock.
            os.close(lock_fd)
            return _open_existing(root, node_id, cluster_id, adopt)
        meta = DataDirMeta(FORMAT_VERSION, node_id, cluster_id)
        _create(root, meta)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(lock_fd)
        raise
    logger.info("created data directory %s for node %s (cluster %s)", root, node_id, cluster_id)
    return DataDir(root, meta, lock_fd, created=True)


def read_meta(root: Path) -> DataDirMeta:
    """Read and validate ``meta.json`` without changing anything."""
    meta_path = root / META_NAME
    try:
        raw = json.loads(meta_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise DataDirError(f"{meta_path}: unreadable ({exc}); refusing to use data directory {root}") from exc
    if not isinstance(raw, dict):
        raise DataDirError(f"{meta_path}: not a JSON object; refusing to use data directory {root}")
    version = raw.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version != FORMAT_VERSION:
        raise DataDirError(
            f"data directory {root} has format version {version!r}; this raft-trio reads "
            f"version {FORMAT_VERSION} only. Nothing was changed."
        )
    stored_node = raw.get("node_id")
    stored_cluster = raw.get("cluster_id")
    if not isinstance(stored_node, str) or not (stored_cluster is None or isinstance(stored_cluster, str)):
        raise DataDirError(f"{meta_path}: node_id or cluster_id missing or malformed; refusing to use it")
    return DataDirMeta(version, stored_node, stored_cluster)


def _open_existing(root: Path, node_id: str, cluster_id: str | None, adopt: bool) -> DataDir:
    meta = read_meta(root)
    if meta.node_id != node_id:
        raise DataDirError(
            f"data directory {root} belongs to node {meta.node_id!r}, not {node_id!r}; "
            "refusing to start with another server's term, vote and log. Nothing was changed."
        )
    if cluster_id is not None and meta.cluster_id is not None and meta.cluster_id != cluster_id:
        raise DataDirError(
            f"data directory {root} belongs to cluster {meta.cluster_id!r}, not {cluster_id!r}; "
            "refusing to serve another cluster's log. Nothing was changed."
        )
    if cluster_id is not None and meta.cluster_id is None and not adopt:
        raise DataDirError(
            f"data directory {root} records no cluster id, and this node is told it belongs to cluster "
            f"{cluster_id!r}: refusing to adopt it (it may be another cluster's leftover, whose log this "
            "cluster would then serve). If it is this cluster's, start once with --adopt-data-dir to record "
            "the id. Nothing was changed."
        )
    if (root / RESTORING_NAME).exists() and not (root / RESTORED_NAME).exists():
        raise DataDirError(
            f"data directory {root} is a restore that did not finish (`raft-trio snapshot restore` "
            "stopped before it was complete): remove the directory and restore again. Nothing was changed."
        )
    if not (root / DB_NAME).exists():
        raise DataDirError(
            f"data directory {root} has {META_NAME} but no {DB_NAME}: this node's log and vote are "
            "lost, and starting empty could let it vote twice in a term. Restore the file, or remove "
            "the node from the cluster and wipe the directory."
        )
    lock_fd = _lock(root)
    try:
        if cluster_id is not None and meta.cluster_id is None:
            meta = dataclasses.replace(meta, cluster_id=cluster_id)
            atomic_write(root / META_NAME, meta.encode())
            logger.info("data directory %s: recorded cluster id %s", root, cluster_id)
        snapshots = root / SNAPSHOT_DIR
        if not snapshots.is_dir():
            snapshots.mkdir()
            fsync_dir(root)
    except BaseException:
        os.close(lock_fd)
        raise
    return DataDir(root, meta, lock_fd, created=False)


def _check_new(root: Path) -> None:
    """Refuse to create a data directory inside one that holds other things."""
    if not root.exists():
        return
    stray = sorted(p.name for p in root.iterdir() if p.name not in _CREATION_LEFTOVERS)
    if stray:
        raise DataDirError(
            f"{root} has no {META_NAME} but is not empty ({', '.join(stray[:5])}): not a raft-trio "
            "data directory; refusing to touch it. Nothing was changed."
        )
    db = root / DB_NAME
    if db.exists() and db.stat().st_size > 0:
        raise DataDirError(
            f"{root} has a non-empty {DB_NAME} but no {META_NAME}: refusing to guess whose it is. "
            "Nothing was changed."
        )


def _create(root: Path, meta: DataDirMeta) -> None:
    snapshots = root / SNAPSHOT_DIR
    snapshots.mkdir(exist_ok=True)
    db = root / DB_NAME
    with open(db, "ab") as f:  # an empty file is an empty SQLite database
        os.fsync(f.fileno())
    fsync_dir(root)
    # meta.json last: its presence means the rest exists.
    atomic_write(root / META_NAME, meta.encode())


def _lock(root: Path) -> int:
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirLocked(
            f"data directory {root} is locked by another process (is another raft-trio node running on it?)"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    return fd
