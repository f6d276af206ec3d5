"""Disks that stall, on a real 3-node cluster: one member's data directory
on its own ext4 file system (a file, loop-mounted), frozen with
``fsfreeze`` for a few seconds while one client writes, so that every
write to it blocks in the kernel, as on a disk that stopped answering.

A write of one client's pace runs on the event loop's own thread
(``raft_trio.node.disk.DiskWriter.short``), so a stall there holds the
whole node as a pause would; a batch, or a write after a slow one, goes
to the disk thread, and then the node answers but applies nothing. Each
case ends as for a pause: the others go on (a stalled follower is not
needed for a quorum; a stalled leader is replaced within a few election
timeouts), the stalled member catches up once its disk answers again,
and every acknowledged write reads back exactly on every node, with no
traceback in any node's log.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..integration.cluster import Cluster
from . import harness
from .disks import MIB, mounted, no_tracebacks
from .harness import Writer, check_acknowledged, make_leader

#: How long a disk stays frozen: several election timeouts of the tests'
#: timing (300-600 ms).
STALL_S = 3.0


@contextlib.contextmanager
def loop_file_system(mount: Path, size: int = 64 * MIB) -> Iterator[Path]:
    """An ext4 file system in a file of ``size`` bytes, mounted at
    ``mount`` for the block's duration; its ``data`` directory (absent: a
    node's first start makes it). Skips where loop mounts are not allowed."""
    missing = [tool for tool in ("mkfs.ext4", "fsfreeze", "mount") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (e2fsprogs, util-linux; .ci/run installs them)")
    image = mount.with_suffix(".img")
    with image.open("wb") as f:
        f.truncate(size)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make an ext4 file system: {made.stderr.strip()}")
    with mounted(mount, "a file system from a loop device", "-o", "loop", str(image)):
        try:
            yield mount / "data"
        finally:
            subprocess.run(["fsfreeze", "-u", str(mount)], capture_output=True)


@contextlib.contextmanager
def frozen(mount: Path) -> Iterator[None]:
    """Every write to the file system at ``mount`` blocks until the block ends."""
    subprocess.run(["fsfreeze", "-f", str(mount)], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["fsfreeze", "-u", str(mount)], check=True, capture_output=True)


@contextlib.contextmanager
def cluster_with_own_disks(tmp_path: Path, name: str) -> Iterator[tuple[Cluster, dict[str, Path]]]:
    """A started 3-node cluster, each member's data directory on its own
    loop-mounted file system; (the cluster, member id -> mount point)."""
    with contextlib.ExitStack() as stack:
        c = Cluster(tmp_path / name, name)
        mounts: dict[str, Path] = {}
        for nid in c.nodes:
            mounts[nid] = tmp_path / f"{name}-{nid}-disk"
            c[nid].data_dir = stack.enter_context(loop_file_system(mounts[nid]))
        harness.STARTED.append(c)
        stack.callback(c.close)
        c.start()
        yield c, mounts


def one_client(c: Cluster, lid: str) -> Writer:
    """One writer thread: each Ready holds one entry, a short write."""
    urls = [c[lid].url] + [n.url for i, n in c.nodes.items() if i != lid]
    return Writer(urls, threads=1).start()


def held(c: Cluster, nid: str, writer: Writer) -> None:
    """``nid`` makes no progress while its disk is frozen, as the others
    go on: it answers nothing (its write runs on the event loop, which the
    stall holds as a pause would), or, when that write went to the disk
    thread (a batch, or one after a slow write, as on a loaded machine),
    it answers with an applied index that stands still."""
    before = c.status(nid)
    writer.wait_for(10, what=f"beside {nid}'s frozen disk")
    after = c.status(nid)
    if before is None or after is None:
        return
    assert after["applied_index"] == before["applied_index"], (
        f"{nid} applied entries with its disk frozen: {before} -> {after}"
    )


def survived(c: Cluster, writer: Writer) -> None:
    """Every acknowledged write reads back on every node, every node runs
    and none logged a traceback."""
    print(check_acknowledged(c, writer))
    assert all(node.running for node in c.nodes.values()), c.crashed()
    no_tracebacks(c)


@pytest.mark.integration
def test_a_followers_stalled_disk_stops_nothing_and_it_catches_up(tmp_path: Path) -> None:
    with cluster_with_own_disks(tmp_path, "follower-stall") as (c, mounts):
        assert make_leader(c, "n1"), "could not hand leadership to n1"
        lid, term = c.wait_for_leader()
        writer = one_client(c, lid)
        try:
            writer.wait_for(20, what="before the stall")
            with frozen(mounts["n3"]):
                writer.wait_for(20, what="while a follower's disk is frozen")
                held(c, "n3", writer)
                time.sleep(STALL_S)  # the stall lasts several election timeouts
                writer.wait_for(20, what="at the end of the stall")
            assert c.wait_for_leader() == (lid, term), "a stalled follower unseated the leader"
            writer.wait_for(20, what="after the stall")
        finally:
            writer.stop()
        survived(c, writer)


@pytest.mark.integration
def test_a_leaders_stalled_disk_hands_the_cluster_to_another_and_it_rejoins(tmp_path: Path) -> None:
    with cluster_with_own_disks(tmp_path, "leader-stall") as (c, mounts):
        assert make_leader(c, "n1"), "could not hand leadership to n1"
        _, term = c.wait_for_leader()
        writer = one_client(c, "n1")
        try:
            writer.wait_for(20, what="before the stall")
            with frozen(mounts["n1"]):
                lid, new_term = c.wait_for_leader(["n2", "n3"], min_term=term + 1)
                writer.wait_for(20, what=f"through {lid} while the old leader's disk is frozen")
                held(c, "n1", writer)
                time.sleep(STALL_S)  # the stall lasts several election timeouts
            # Its disk answers again: the old leader learns of the new term
            # and follows; the writes it held get their answers.
            lid, _ = c.wait_for_leader(min_term=new_term)
            writer.wait_for(20, what="after the stall")
        finally:
            writer.stop()
        survived(c, writer)
