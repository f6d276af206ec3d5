"""Damage in SQLite's WAL and a database rolled back under the node are
refused, never silently dropped: SQLite would end the WAL at the first bad
frame and forget every committed transaction after it (term, vote and
entries with them). A torn tail, the one transaction that never finished
its commit, is still dropped as before."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from raft_trio.core import HardState
from raft_trio.storage import CorruptionError
from raft_trio.storage._datadir import DB_NAME
from raft_trio.storage._highwater import MARK_NAME
from raft_trio.storage._wal import FRAME_HEADER_BYTES, check_wal

from .helpers import crash_image, entries, entry, flip_wal_frame, open_storage, tree_fingerprint, wal_frames


def _live(path: Path, count: int, term: int = 1) -> object:
    """An open storage with ``count`` one-entry Readies still in its WAL."""
    storage = open_storage(path)
    for i in range(1, count + 1):
        storage.persist(HardState(term, "n1", i - 1), [entry(i, term)], None)
    return storage


def _image(live: Path, target: Path, *, with_shm: bool) -> Path:
    """The files as a crash leaves them; with the -shm file when the
    process died but the machine did not (SIGKILL)."""
    if with_shm:
        shutil.copytree(live, target)
        return target
    return crash_image(live, target)


@pytest.mark.parametrize("with_shm", [False, True])
def test_a_flipped_frame_in_the_middle_of_the_wal_is_refused(tmp_path: Path, with_shm: bool) -> None:
    storage = _live(tmp_path / "live", 30)
    image = _image(tmp_path / "live", tmp_path / "image", with_shm=with_shm)
    storage.close()  # type: ignore[attr-defined]
    wal = image / (DB_NAME + "-wal")
    commits = [number for number, commit in wal_frames(wal) if commit]
    assert len(commits) >= 20, "the test needs many transactions in the WAL"
    # A frame of the fifth transaction: fifteen and more came after it.
    flip_wal_frame(wal, commits[4])
    before = tree_fingerprint(image)
    with pytest.raises(CorruptionError) as refused:
        open_storage(image)
    message = str(refused.value)
    assert str(wal) in message and f"frame {commits[4]} fails its checksum" in message
    assert refused.value.exit_code == 65
    assert "raft-trio members remove n1" in message
    assert tree_fingerprint(image) == before, "a refused start changed the files"


def test_damage_to_the_last_transaction_is_refused_when_the_shm_says_it_committed(tmp_path: Path) -> None:
    """After a process crash the -shm file still says through which frame
    the last process committed (SQLite writes it after the fsync): the
    last transaction was durable, its damage is no torn tail."""
    storage = _live(tmp_path / "live", 10)
    image = _image(tmp_path / "live", tmp_path / "image", with_shm=True)
    storage.close()  # type: ignore[attr-defined]
    wal = image / (DB_NAME + "-wal")
    last = wal_frames(wal)[-1][0]
    flip_wal_frame(wal, last)
    with pytest.raises(CorruptionError, match=f"committed through frame {last}"):
        open_storage(image)


def test_without_the_shm_damage_to_the_last_transaction_counts_as_a_torn_tail(tmp_path: Path) -> None:
    """What a power cut during the last commit leaves looks the same, and
    that transaction was never acknowledged: it is dropped, the rest kept."""
    storage = _live(tmp_path / "live", 10)
    image = _image(tmp_path / "live", tmp_path / "image", with_shm=False)
    storage.close()  # type: ignore[attr-defined]
    wal = image / (DB_NAME + "-wal")
    flip_wal_frame(wal, wal_frames(wal)[-1][0])
    with open_storage(image) as recovered:
        assert recovered.last_index() == 9
        assert recovered.entries(1, 10) == entries(1, 10)


def test_a_torn_transaction_whose_later_frames_landed_is_still_a_torn_tail(tmp_path: Path) -> None:
    """A power cut may write the frames of the last transaction out of
    order: one lost in the middle, the commit frame after it on disk.
    No later transaction follows it, so it was never acknowledged."""
    storage = open_storage(tmp_path / "live")
    storage.persist(HardState(1, "n1", 0), entries(1, 3), None)
    # One large transaction: many frames, one commit frame at its end.
    storage.persist(HardState(1, "n1", 2), [entry(i, data=b"x" * 3000) for i in range(3, 40)], None)
    image = crash_image(tmp_path / "live", tmp_path / "image")
    storage.close()
    wal = image / (DB_NAME + "-wal")
    commits = [number for number, commit in wal_frames(wal) if commit]
    assert commits[-1] - commits[-2] > 10, "the last transaction should span many frames"
    flip_wal_frame(wal, commits[-1] - 4)
    assert check_wal(image / DB_NAME).damage is None
    with open_storage(image) as recovered:
        assert recovered.last_index() == 2


@pytest.mark.parametrize("how", ["header", "removed"])
def test_a_lost_wal_is_refused_when_the_shm_says_it_held_commits(tmp_path: Path, how: str) -> None:
    storage = _live(tmp_path / "live", 10)
    image = _image(tmp_path / "live", tmp_path / "image", with_shm=True)
    storage.close()  # type: ignore[attr-defined]
    wal = image / (DB_NAME + "-wal")
    if how == "header":
        flip_wal_frame(
            wal, 1, at=-FRAME_HEADER_BYTES + 2
        )  # inside the WAL header: SQLite would ignore the file
    else:
        wal.unlink()
    with pytest.raises(CorruptionError, match="not yet copied them into the database"):
        open_storage(image)


def test_a_database_rolled_back_behind_its_high_water_mark_is_refused(tmp_path: Path) -> None:
    """An older copy of raft.db put back (or a WAL lost without a trace):
    the term and vote recorded outside the database are ahead of it."""
    path = tmp_path / "data"
    with open_storage(path) as storage:
        storage.persist(HardState(1, "n1", 0), entries(1, 4), None)
    old = tmp_path / "old.db"
    shutil.copy(path / DB_NAME, old)
    with open_storage(path) as storage:
        storage.persist(HardState(2, "n2", 3), [entry(4, 2)], None)
    shutil.copy(old, path / DB_NAME)
    with pytest.raises(CorruptionError, match=r"holds term 1 and vote 'n1', but this node had made term 2"):
        open_storage(path)


def test_a_log_behind_the_commit_index_of_the_mark_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data"
    with open_storage(path) as storage:
        storage.persist(HardState(1, "n1", 0), entries(1, 4), None)
    old = tmp_path / "old.db"
    shutil.copy(path / DB_NAME, old)
    with open_storage(path) as storage:
        storage.persist(HardState(1, "n1", 8), entries(4, 9), None)
    # The clean close recorded commit 8 in the mark.
    shutil.copy(old, path / DB_NAME)
    with pytest.raises(CorruptionError, match="ends at entry 3, but this node knew entries up to 8"):
        open_storage(path)


def test_a_database_ahead_of_its_mark_is_normal_and_brings_it_up_to_date(tmp_path: Path) -> None:
    """A node that died between its commit and the mark's rename."""
    path = tmp_path / "data"
    with open_storage(path) as storage:
        storage.persist(HardState(1, "n1", 0), entries(1, 4), None)
    mark = (path / MARK_NAME).read_bytes()
    with open_storage(path) as storage:
        storage.persist(HardState(3, "n3", 2), [], None)
    (path / MARK_NAME).write_bytes(mark)
    with open_storage(path) as storage:
        assert storage.hard_state() == HardState(3, "n3", 2)
    assert b'"term": 3' in (path / MARK_NAME).read_bytes()


def test_a_damaged_mark_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data"
    with open_storage(path) as storage:
        storage.persist(HardState(4, "n1", 0), entries(1, 4), None)
    (path / MARK_NAME).write_bytes((path / MARK_NAME).read_bytes().replace(b'"term": 4', b'"term": 7'))
    with pytest.raises(CorruptionError, match=f"{MARK_NAME} is damaged"):
        open_storage(path)


def test_the_mark_is_written_when_the_term_or_vote_changes_and_only_then(tmp_path: Path) -> None:
    path = tmp_path / "data"
    with open_storage(path) as storage:
        storage.persist(HardState(1, "n1", 0), entries(1, 2), None)
        first = (path / MARK_NAME).stat().st_mtime_ns, (path / MARK_NAME).stat().st_ino
        for i in range(2, 20):
            storage.persist(HardState(1, "n1", i - 1), [entry(i)], None)
        assert ((path / MARK_NAME).stat().st_mtime_ns, (path / MARK_NAME).stat().st_ino) == first
        storage.persist(HardState(2, None, 18), [], None)
        assert b'"term": 2' in (path / MARK_NAME).read_bytes()
