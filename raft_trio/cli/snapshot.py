"""``raft-trio snapshot save FILE`` and ``raft-trio snapshot restore FILE``:
backups of the state machine and new clusters made from them, as etcd's
``snapshot save`` and ``snapshot restore`` do.

``save`` streams the backup from the leader into ``FILE.part``, checks it
whole (header, length, SHA-256), fsyncs it and only then renames it to
``FILE``: a file by that name is always a whole backup. ``restore`` checks
the file the same way before it writes anything, then makes a new data
directory from which the node starts as a member of a new cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
from pathlib import Path

from ..client import Client, StreamBroken
from .errors import UsageError, fail
from .output import show

#: sysexits' EX_DATAERR: the file is damaged (as for a damaged data dir).
EXIT_DAMAGED = 65
#: The largest --bump-revision: a log index (a revision) is a signed
#: 64-bit integer on disk (MAX_RESTORED_REVISION bounds the sum).
MAX_BUMP = 2**62
#: The largest revision a restore starts at (the backup's plus the bump):
#: a backup of a cluster restored with a large bump, bumped again, must
#: still leave room (2**61 writes) below the signed 64-bit limit.
MAX_RESTORED_REVISION = 2**62 + 2**61


def cmd_snapshot_save(args: argparse.Namespace, client: Client, output: str) -> int:
    return save(Path(args.file), client, output)


def save(target: Path, client: Client, output: str = "json") -> int:
    from ..storage import BackupCorrupt, read_backup

    if target.is_dir():  # checked first: the rename at the end would fail after the download
        raise UsageError(f"{target} is a directory; give the backup's file name")
    partial = target.with_name(target.name + ".part")
    try:
        with client.snapshot() as chunks, open(partial, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException as error:
        # Whatever ended it (a full disk, a broken stream, Ctrl-C): no
        # part of a backup, which holds every key, is left behind.
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise UsageError(f"cannot write {partial}: {error.strerror}; nothing was saved") from None
        if isinstance(error, StreamBroken):
            fail(f"{error}; nothing was saved", 1)
        raise
    try:
        backup = read_backup(partial)
    except BackupCorrupt as error:
        partial.unlink(missing_ok=True)
        fail(f"the backup received is not whole, nothing was saved: {error}", 1)
    partial.replace(target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    summary = {
        "file": str(target),
        "revision": backup.revision,
        "bytes": target.stat().st_size,
        "sha256": backup.digest,
        "cluster_id": backup.cluster_id,
    }
    titles = ["FILE", "REVISION", "BYTES", "SHA256", "CLUSTER ID"]
    show(output, summary, titles, [list(summary.values())], cut=False)
    return 0


def cmd_snapshot_restore(args: argparse.Namespace, output: str) -> int:
    """A restored cluster is a new cluster: its own id, and a token-signing
    key of its own (derived from the backup's and the new id, so every
    member restored alike agrees on it): tokens of the cluster the backup
    came from are refused there."""
    import msgspec

    from ..kv import for_restored_cluster
    from ..storage import BackupCorrupt, StorageError, read_backup, restore_backup, restored_cluster_id
    from .argv import parse_peers

    peers = parse_peers(args.peers)
    if not 0 <= args.bump_revision <= MAX_BUMP:
        raise UsageError(f"--bump-revision must be from 0 to {MAX_BUMP}, got {args.bump_revision}")
    if args.id not in peers:
        raise UsageError(f"--peers must include this node ({args.id})")
    try:
        backup = read_backup(args.file)
    except BackupCorrupt as error:
        if isinstance(error.__cause__, OSError):  # no such file, or not one to read: the input is wrong
            raise UsageError(str(error)) from None
        fail(f"refused: {error}", EXIT_DAMAGED)
    if args.cluster_id is not None and args.cluster_id == backup.cluster_id:
        raise UsageError(
            f"--cluster-id {args.cluster_id!r} is the id of the cluster the backup came from: the restored "
            "cluster needs one of its own, so that the two refuse each other's peer traffic"
        )
    new_cluster = args.cluster_id or restored_cluster_id(backup, peers, args.bump_revision)
    revision = backup.revision + args.bump_revision
    if revision > MAX_RESTORED_REVISION:
        raise UsageError(
            f"--bump-revision {args.bump_revision}: the backup stands at revision {backup.revision}, and "
            f"the restored cluster may start at {MAX_RESTORED_REVISION} at most (revisions are 64-bit)"
        )
    try:
        state = for_restored_cluster(backup.state, new_cluster, revision)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        fail(f"refused: {args.file}: its state does not decode: {error}", EXIT_DAMAGED)
    except ValueError as error:  # a header whose revision is not its state's
        fail(f"refused: {args.file}: {error}", EXIT_DAMAGED)
    backup = dataclasses.replace(backup, state=state, revision=revision)
    try:
        cluster_id = restore_backup(backup, args.data_dir, args.id, peers, new_cluster)
    except FileExistsError as error:
        raise UsageError(str(error)) from None
    except StorageError as error:
        fail(f"data dir {args.data_dir}: {error}", error.exit_code)
    except OSError as error:
        fail(f"cannot create {args.data_dir}: {error.strerror}", 73)
    summary = {
        "data_dir": str(args.data_dir),
        "id": args.id,
        "cluster_id": cluster_id,
        "revision": backup.revision,
        "bumped_by": args.bump_revision,
        "members": peers,
    }
    members = ",".join(f"{member}={url}" for member, url in peers.items())
    row = [args.data_dir, args.id, cluster_id, backup.revision, args.bump_revision, members]
    show(
        output,
        summary,
        ["DATA DIR", "ID", "CLUSTER ID", "REVISION", "BUMPED BY", "MEMBERS"],
        [row],
        cut=False,
    )
    return 0
