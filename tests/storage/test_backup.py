"""The backup file: whole and intact, or refused; and the data directory
restored from it holds the backup's state at its revision, in term 1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from raft_trio.core import HardState
from raft_trio.kv import KeyValueStore, Put
from raft_trio.storage import (
    BackupCorrupt,
    DataDirError,
    DurableStorage,
    _backup,
    backup_stream,
    parse_backup,
    restore_backup,
)
from raft_trio.storage._files import atomic_write


def a_backup() -> tuple[bytes, KeyValueStore]:
    store = KeyValueStore()
    for index in range(1, 30):
        store.apply(index, Put(f"k{index % 7}", "x" * index))
    return b"".join(backup_stream(store.revision, 3, store.snapshot(), "old-cluster", "n2")), store


def test_a_backup_reads_back_whole() -> None:
    data, store = a_backup()
    backup = parse_backup(data)
    assert (backup.revision, backup.term, backup.cluster_id) == (29, 3, "old-cluster")
    assert backup.state == store.snapshot()


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-1],
        lambda data: data[:40],
        lambda data: data + b"\0",
        lambda data: data[:60] + bytes([data[60] ^ 1]) + data[61:],
        lambda data: data[:-5] + bytes([data[-5] ^ 1]) + data[-4:],
        lambda data: b"raft-trio backup 2\n" + data[19:],
        lambda data: data.replace(b'"state_bytes": ', b'"state_bytes": 1'),
        lambda data: b"",
    ],
    ids=[
        "last byte cut",
        "cut in the header",
        "byte appended",
        "header byte",
        "digest byte",
        "version",
        "size",
        "empty",
    ],
)
def test_a_damaged_backup_is_refused(damage: object) -> None:
    data, _ = a_backup()
    with pytest.raises(BackupCorrupt):
        parse_backup(damage(data))  # type: ignore[operator]


def test_a_restored_directory_starts_at_the_backups_revision_in_a_new_cluster(tmp_path: Path) -> None:
    data, store = a_backup()
    backup = parse_backup(data)
    peers = {"a": "http://127.0.0.1:1", "b": "http://127.0.0.1:2"}
    cluster_a = restore_backup(backup, tmp_path / "a", "a", peers)
    cluster_b = restore_backup(backup, tmp_path / "b", "b", peers)
    assert cluster_a == cluster_b != "old-cluster"
    assert restore_backup(backup, tmp_path / "c", "a", {**peers, "c": "http://127.0.0.1:3"}) != cluster_a
    storage = DurableStorage.open(tmp_path / "a", "a", cluster_a)
    try:
        snapshot = storage.snapshot()
        assert (snapshot.meta.index, snapshot.meta.term) == (29, 1)
        assert sorted(m.id for m in snapshot.meta.membership.members) == ["a", "b"]
        assert storage.hard_state() == HardState(1, None, 29)
        assert storage.last_index() == 29
        restored = KeyValueStore()
        restored.restore(snapshot.data)
        assert restored.range() == store.range()
    finally:
        storage.close()


def test_restore_refuses_a_directory_in_use_and_a_node_not_in_peers(tmp_path: Path) -> None:
    backup = parse_backup(a_backup()[0])
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("x")
    with pytest.raises(FileExistsError):
        restore_backup(backup, tmp_path / "used", "a", {"a": "http://127.0.0.1:1"})
    # A file where the directory should go is refused the same way (it was
    # an OSError, which the CLI reported as exit 73, a full disk).
    with pytest.raises(FileExistsError):
        restore_backup(backup, tmp_path / "used" / "file", "a", {"a": "http://127.0.0.1:1"})
    assert (tmp_path / "used" / "file").read_text() == "x"
    with pytest.raises(ValueError, match="--peers must include this node"):
        restore_backup(backup, tmp_path / "new", "z", {"a": "http://127.0.0.1:1"})
    assert not (tmp_path / "new").exists()


def test_restoring_under_the_old_clusters_id_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The restored cluster needs an id of its own: under the old one's,
    the two would take each other's peer traffic (X-Raft-Cluster)."""
    from raft_trio.cli import main

    data, _ = a_backup()
    file = tmp_path / "backup.snapshot"
    file.write_bytes(data)
    argv = ["snapshot", "restore", str(file), "--data-dir", str(tmp_path / "n1"), "--id", "n1"]
    argv += ["--peers", "n1=http://127.0.0.1:9001", "--cluster-id", "old-cluster"]
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == 2
    assert "is the id of the cluster the backup came from" in capsys.readouterr().err
    assert not (tmp_path / "n1").exists()
    assert main([*argv[:-1], "new-cluster"]) == 0
    assert (tmp_path / "n1").is_dir()


@pytest.mark.parametrize("cut", ["write_to_disk", "marker"])
def test_a_restore_cut_short_is_refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: str
) -> None:
    """A crash (or a full disk) during a restore left a directory holding a
    configuration and a snapshot but not the ``restored`` marker: a node
    started on it ran as a member that had run, skipping the check of a
    restored member's first start (a review's finding). It is refused, and
    says what to do."""
    backup = parse_backup(a_backup()[0])
    target = tmp_path / "a"
    peers = {"a": "http://127.0.0.1:1", "b": "http://127.0.0.1:2"}

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        if cut == "write_to_disk":
            patch.setattr(DurableStorage, "write_to_disk", crash)
        else:
            patch.setattr(
                _backup,
                "atomic_write",
                lambda path, data: crash() if path.name == "restored" else atomic_write(path, data),
            )
        with pytest.raises(OSError, match="No space left"):
            restore_backup(backup, target, "a", peers)
    with pytest.raises(DataDirError, match="a restore that did not finish"):
        DurableStorage.open(target, "a")
    with pytest.raises(FileExistsError):
        restore_backup(backup, target, "a", peers)  # as the message says: remove it first
    shutil.rmtree(target)
    restore_backup(backup, target, "a", peers)
    DurableStorage.open(target, "a").close()
    assert sorted(p.name for p in target.iterdir() if p.name.startswith("restor")) == ["restored"]


def test_a_restore_with_bump_revision_stands_past_the_backup_and_keeps_each_keys_revisions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """etcd's ``--bump-revision``: the old cluster went on writing after
    its backup, so revisions past the backup's (fencing tokens among them)
    were already given out. The restored cluster starts N past it, its
    next write above all of those, while each key keeps the revisions it
    had."""
    import json

    from raft_trio.cli import main

    data, store = a_backup()
    file = tmp_path / "backup.snapshot"
    file.write_bytes(data)
    argv = ["snapshot", "restore", str(file), "--data-dir", str(tmp_path / "n1"), "--id", "n1"]
    argv += ["--peers", "n1=http://127.0.0.1:9001", "--bump-revision", "1000"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["revision"], summary["bumped_by"]) == (1029, 1000)
    storage = DurableStorage.open(tmp_path / "n1", "n1", summary["cluster_id"])
    try:
        snapshot = storage.snapshot()
        assert (snapshot.meta.index, storage.last_index()) == (1029, 1029)
        assert storage.hard_state() == HardState(1, None, 1029)
        restored = KeyValueStore()
        restored.restore(snapshot.data)
    finally:
        storage.close()
    assert restored.revision == 1029
    assert restored.range() == store.range()  # the same keys, values and revisions
    written = restored.apply(1030, Put("after", "restore"))
    assert written.create_revision == 1030  # type: ignore[union-attr]
    # A member restored with another bump (a typo) would hold another
    # snapshot at the same term: it is of another cluster, refused by this one.
    capsys.readouterr()
    argv[argv.index("--data-dir") + 1] = str(tmp_path / "other")
    assert main([*argv[:-1], "999"]) == 0
    assert json.loads(capsys.readouterr().out)["cluster_id"] != summary["cluster_id"]


@pytest.mark.parametrize(("bump", "why"), [("-1", "must be from 0 to"), ("ten", "invalid int value")])
def test_a_bad_bump_revision_is_refused_and_nothing_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bump: str, why: str
) -> None:
    from raft_trio.cli import main

    file = tmp_path / "backup.snapshot"
    file.write_bytes(a_backup()[0])
    argv = ["snapshot", "restore", str(file), "--data-dir", str(tmp_path / "n1"), "--id", "n1"]
    with pytest.raises(SystemExit) as refused:
        main([*argv, "--peers", "n1=http://127.0.0.1:9001", "--bump-revision", bump])
    assert refused.value.code == 2
    assert why in capsys.readouterr().err
    assert not (tmp_path / "n1").exists()


def test_a_bump_past_the_64_bit_revisions_is_refused_and_nothing_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backup of a cluster restored with a large bump, restored with a
    large bump again: the sum passes what SQLite stores (a signed 64-bit
    integer). Refused before anything is written, not an OverflowError
    from SQLite that leaves a data directory cut short."""
    from raft_trio.cli import main
    from raft_trio.cli.snapshot import MAX_BUMP

    store = KeyValueStore()
    store.apply(MAX_BUMP + 5, Put("k", "v"))
    file = tmp_path / "backup.snapshot"
    file.write_bytes(b"".join(backup_stream(store.revision, 3, store.snapshot(), "old-cluster", "n2")))
    argv = ["snapshot", "restore", str(file), "--data-dir", str(tmp_path / "n1"), "--id", "n1"]
    with pytest.raises(SystemExit) as refused:
        main([*argv, "--peers", "n1=http://127.0.0.1:9001", "--bump-revision", str(MAX_BUMP)])
    assert refused.value.code == 2
    assert "--bump-revision" in capsys.readouterr().err
    assert not (tmp_path / "n1").exists()
