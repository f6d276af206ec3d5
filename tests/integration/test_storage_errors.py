"""Storage failures at start end a node process with one line on stderr
and the documented exit status, never a traceback: a damaged database
(65), a data directory on a read-only file system (74), a directory made
without a cluster id started with one (78, unless --adopt-data-dir)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from raft_trio.core import Entry, EntryKind, HardState, Membership, Snapshot, SnapshotMeta
from raft_trio.kv import Put, encode_command
from raft_trio.storage import DurableStorage
from raft_trio.testing.processes import NodeProcess, free_port, node_argv
from raft_trio.testing.waiting import wait_until

from ..crash.disks import MIB, tmpfs


class SingleNode:
    """One node that is a cluster of its own, in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def argv(self, *extra: str) -> list[str]:
        return node_argv("n1", f"127.0.0.1:{self.port}", self.data_dir, "--peers", f"n1={self.url}", *extra)

    def make_data_dir(self, cluster_id: str | None = None) -> None:
        """Its data directory with a log, as a node leaves it at a clean
        stop (written in this process: faster than running one)."""
        initial = Snapshot(SnapshotMeta(0, 0, Membership.of({"n1": self.url})))
        with DurableStorage.open(self.data_dir, "n1", cluster_id, initial_snapshot=initial) as storage:
            for i in range(1, 41):
                entry = Entry(i, 1, EntryKind.NORMAL, encode_command(Put(f"k{i}", "v" * 2000)))
                storage.persist(HardState(1, "n1", i), [entry], None)

    def serves(self, *extra: str) -> None:
        """It starts, takes a write, and stops cleanly."""
        assert self.data_dir.name == "n1", self.data_dir
        node = NodeProcess("n1", self.port, self.data_dir.parent, ["--peers", f"n1={self.url}", *extra])
        node.start()
        try:

            def written() -> tuple[bool, object]:
                try:
                    r = httpx.put(f"{self.url}/api/kv/k", json={"value": "v"}, timeout=2)
                except httpx.HTTPError as error:
                    return False, error
                return r.status_code == 200, r.status_code

            wait_until(written, 20, "the single node to take a write")
        finally:
            assert node.stop(grace=15) == 0, node.log_tail()

    def refused(self, status: int, *extra: str) -> str:
        """It exits at once with ``status`` and one line; that line."""
        done = subprocess.run(self.argv(*extra), capture_output=True, text=True, timeout=30)
        lines = done.stderr.strip().splitlines()
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode == status, done.stderr
        assert len(lines) == 1 and lines[0].startswith("raft-trio: data dir "), done.stderr
        return lines[0]


@pytest.fixture
def node(tmp_path: Path) -> SingleNode:
    return SingleNode(tmp_path / "n1")


@pytest.mark.integration
@pytest.mark.parametrize("damage", ["garbage", "half"])
def test_a_damaged_database_is_refused_with_one_line_and_status_65(node: SingleNode, damage: str) -> None:
    node.make_data_dir()
    db = node.data_dir / "raft.db"
    data = db.read_bytes()
    db.write_bytes(b"this is not a database" * 200 if damage == "garbage" else data[: len(data) // 2])
    line = node.refused(65)
    assert str(db) in line and "refusing to start" in line
    assert "raft-trio members remove n1" in line


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "ro", 32 * MIB) as mount_point:
        yield mount_point


@pytest.mark.integration
def test_a_read_only_data_dir_is_an_io_error_with_status_74_not_a_usage_error(read_only_dir: Path) -> None:
    node = SingleNode(read_only_dir / "n1")
    node.make_data_dir()
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_dir)], check=True)
    line = node.refused(74)
    assert "Read-only file system" in line and str(node.data_dir) in line


@pytest.mark.integration
def test_a_data_dir_without_a_cluster_id_is_adopted_only_when_asked(node: SingleNode) -> None:
    """A leftover directory of a cluster started without --cluster-id (the
    default, and raft-trio up) does not join a cluster that has one by
    accident."""
    node.make_data_dir()
    meta = (node.data_dir / "meta.json").read_bytes()
    line = node.refused(78, "--cluster-id", "blue")
    assert "records no cluster id" in line and "--adopt-data-dir" in line
    assert (node.data_dir / "meta.json").read_bytes() == meta
    node.serves("--cluster-id", "blue", "--adopt-data-dir")
    assert b'"cluster_id": "blue"' in (node.data_dir / "meta.json").read_bytes()
    DurableStorage.open(node.data_dir, "n1", "blue").close()  # recorded: no adoption needed any more
