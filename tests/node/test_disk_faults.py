"""A disk that fills up or fails, on Trio's fake clock: new values are
refused with a definite answer while a member is short of space (reads,
deletes and membership changes go on), a failed write stops the node
without acknowledging anything that depended on it, and a disk write that
hangs makes the node unready.

Three (or one) real ``RaftNode`` runtimes share one Trio run through the
in-memory transport and disk of ``tests.node.harness``; free space is a
fake ``statvfs`` the test sets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from raft_trio.core import Entry, HardState, RemoveMember, Snapshot
from raft_trio.kv import (
    Delete,
    Deleted,
    KeyValueStore,
    LeaseGrant,
    LeaseGranted,
    OpDelete,
    OpGet,
    OpPut,
    Put,
    Txn,
    TxnDone,
    Written,
)
from raft_trio.node import InsufficientStorage, RaftNode, WriteIndeterminate
from raft_trio.node import metrics as node_metrics
from raft_trio.node.disk_watch import watch
from raft_trio.node.space import NOSPACE, SpaceGuard
from raft_trio.storage import WAL_HEADROOM_BYTES, DiskFull, storage_error_in
from raft_trio.testing.waiting import wait_for

from .harness import ELECTION_MAX_S, TIMING, Cluster

ELECTION_MIN_S = TIMING.election_min_ms / 1000
HEARTBEAT_S = TIMING.heartbeat_ms / 1000
MIB = 1 << 20


class FakeDisk:
    """A file system of 1 GiB whose free space the test sets."""

    def __init__(self, free: int = 800 * MIB) -> None:
        self.free = free
        self.asked = 0

    def statvfs(self, path: str | os.PathLike[str]) -> Any:
        self.asked += 1
        block = 4096
        return os.statvfs_result((block, block, (1 << 30) // block, 0, self.free // block, 0, 0, 0, 0, 255))


class Unwatched:
    """What the disk watch asks of storage, for the in-memory disk."""

    def check_present(self) -> None:
        pass

    def disk_usage(self) -> int:
        return 0


def guard(node: RaftNode, disk: FakeDisk, reserve: int | None = None) -> SpaceGuard:
    node.space = SpaceGuard(Path("/data") / node.id, reserve, statvfs=disk.statvfs)
    return node.space


def _file_system(size: int) -> Any:
    return lambda _: os.statvfs_result((4096, 4096, size // 4096, 0, size // 8192, 0, 0, 0, 0, 255))


def test_the_default_reserve_is_a_tenth_of_the_file_system_at_most_256_mib() -> None:
    assert SpaceGuard("/d", statvfs=_file_system(30 * MIB)).reserve == 3 * MIB
    assert SpaceGuard("/d", statvfs=_file_system(1 << 30)).reserve == (1 << 30) // 10
    assert SpaceGuard("/d", statvfs=_file_system(100 << 30)).reserve == 256 * MIB
    assert SpaceGuard("/d", 0, statvfs=_file_system(1 << 30)).reserve == 0
    with pytest.raises(ValueError, match="negative"):
        SpaceGuard("/d", -1, statvfs=_file_system(1 << 30))


def test_the_alarm_clears_only_an_eighth_above_the_reserve() -> None:
    disk = FakeDisk(free=100 * MIB)
    space = SpaceGuard("/d", 64 * MIB, statvfs=disk.statvfs)
    assert not space.alarm and space.alarms() == []
    disk.free = 63 * MIB
    assert space.refresh() and space.alarms() == [NOSPACE]
    disk.free = 70 * MIB  # above the reserve, not by an eighth of it
    assert space.refresh()
    disk.free = 72 * MIB
    assert not space.refresh()


def test_room_for_the_next_snapshot_and_the_wal_is_kept_besides_the_reserve() -> None:
    """Without room for the next snapshot the log could never be compacted
    again, and the WAL grows between checkpoints: both come on top of the
    reserve the operator sets."""
    disk = FakeDisk(free=100 * MIB)
    space = SpaceGuard("/d", 16 * MIB, statvfs=disk.statvfs)
    state = [0]
    space.headroom = lambda: state[0]
    assert space.refusal(1000) is None
    state[0] = 90 * MIB
    refusal = space.refusal(1000)
    assert refusal is not None and "below the 106.0 MiB needed (a reserve of 16.0 MiB" in refusal
    assert space.alarms() == [NOSPACE]


async def test_the_runtime_keeps_room_for_a_snapshot_of_its_state_and_the_wal(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    space = SpaceGuard("/data", 0, statvfs=FakeDisk().statvfs)
    node = RaftNode("n9", "mem://n9", leader.storage, TIMING, space=space)
    assert space.needed() == WAL_HEADROOM_BYTES
    node.kv.apply(1, Put("k", "x" * 1000))
    assert space.needed() == WAL_HEADROOM_BYTES + node.kv.size + node.kv.size // 10
    assert node.kv.size == 1001


def test_written_bytes_are_measured_after_an_eighth_of_the_reserve_not_sooner() -> None:
    disk = FakeDisk()
    space = SpaceGuard("/d", 8 * MIB, statvfs=disk.statvfs)
    asked = disk.asked
    assert not space.wrote(MIB - 1) and disk.asked == asked  # below an eighth: not measured
    disk.free = 4 * MIB
    assert space.wrote(1) and space.alarm and disk.asked == asked + 1  # measured, the alarm raised
    assert space.wrote(MIB) and space.alarm and disk.asked == asked + 2  # measured again
    no_reserve, asked = SpaceGuard("/d", 0, statvfs=disk.statvfs), disk.asked
    no_reserve.wrote((64 << 10) - 1)
    assert disk.asked == asked  # 64 KiB at least, whatever the reserve
    no_reserve.wrote(1)
    assert disk.asked == asked + 1


def test_a_value_that_would_cross_the_reserve_is_refused_even_before_the_alarm() -> None:
    disk = FakeDisk(free=65 * MIB)
    space = SpaceGuard("/d", 64 * MIB, statvfs=disk.statvfs)
    assert space.refusal(512 * 1024) is None
    refusal = space.refusal(2 * MIB)
    assert refusal is not None and "a reserve of 64.0 MiB" in refusal
    asked = disk.asked
    space.refusal(10)
    assert disk.asked == asked + 1  # measured again for every value


async def test_a_leader_short_of_space_refuses_new_values_and_keeps_everything_else_going(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    disk = FakeDisk()
    guard(leader, disk, reserve=64 * MIB)
    assert isinstance(await leader.write(Put("kept", "v1")), Written)
    disk.free = 60 * MIB
    refused_before = node_metrics.WRITES_REFUSED_NOSPACE._value.get()
    last_index = leader.last_log_index
    for command in (Put("new", "v"), Put("kept", "v2"), Put("kept", "v3", check=True, expect="v1")):
        with pytest.raises(InsufficientStorage, match=r"a reserve of 64\.0 MiB"):
            await leader.write(command)
    assert leader.last_log_index == last_index, "a refused write reached the log"
    assert node_metrics.WRITES_REFUSED_NOSPACE._value.get() == refused_before + 3
    kept = leader.kv.get("kept")
    assert kept is not None and kept.value == "v1"
    # Reads, deletes and membership changes go on.
    await leader.linearizable_barrier()
    deleted = await leader.write(Delete("kept"))
    assert isinstance(deleted, Deleted) and deleted.deleted
    # A transaction that puts is a new value; one that only deletes or
    # reads is not, and a lease takes next to no space.
    with pytest.raises(InsufficientStorage):
        await leader.write(Txn([], [OpPut("t", "v")], [OpDelete("u")]))
    assert isinstance(await leader.write(Txn([], [OpDelete("u"), OpGet("kept")], [])), TxnDone)
    assert isinstance(await leader.write(LeaseGrant(30)), LeaseGranted)
    third = next(i for i in cluster.hosts if i != leader.id)
    await leader.change_membership(RemoveMember(third))
    assert leader.membership.get(third) is None
    assert leader.status().alarms == [NOSPACE]
    # Space comes back: new values are taken again.
    disk.free = 80 * MIB
    assert isinstance(await leader.write(Put("again", "v")), Written)
    assert leader.status().alarms == []


async def test_a_follower_short_of_space_stops_new_values_at_the_leader(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """etcd's cluster-wide NOSPACE alarm: a follower's alarm reaches the
    leader on the follower's stream with its next frame (no task polls,
    nothing calls ``report_changed`` here), and the leader refuses new
    values while it is up, rather than let the follower fill its disk and
    stop."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    follower_id = next(i for i in cluster.hosts if i != leader.id)
    follower = cluster.hosts[follower_id].node
    leader_disk, follower_disk = FakeDisk(), FakeDisk()
    leader_guard = guard(leader, leader_disk, reserve=64 * MIB)
    guard(follower, follower_disk, reserve=64 * MIB)
    assert isinstance(await leader.write(Put("a", "1")), Written)
    follower_disk.free = 10 * MIB
    follower.space.refresh()  # type: ignore[union-attr]
    # The follower answers the next heartbeat: its frame carries the alarm.
    with trio.fail_after(HEARTBEAT_S + 0.01):
        await wait_for(lambda: bool(leader_guard.peer_alarms), poll=0.001)
    with pytest.raises(InsufficientStorage, match=f"insufficient storage on member {follower_id}"):
        await leader.write(Put("b", "2"))
    assert isinstance(await leader.write(Delete("a")), Deleted)
    follower_disk.free = 500 * MIB
    follower.space.refresh()  # type: ignore[union-attr]
    with trio.fail_after(HEARTBEAT_S + 0.01):
        await wait_for(lambda: not leader_guard.peer_alarms, poll=0.001)
    assert isinstance(await leader.write(Put("b", "2")), Written)


async def test_a_follower_measures_its_disk_after_writing_an_eighth_of_its_reserve(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """No disk watch runs here (it looks once a second): a follower that
    has written an eighth of its reserve since it last measured measures
    again, raises its alarm and tells its peers, and the leader refuses
    the next new value. Fed 64 KiB values as fast as they came, a
    follower on a small file system met a full disk within one of the
    watch's seconds and stopped (a full run of the disk-fault tests)."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    follower_id = next(i for i in cluster.hosts if i != leader.id)
    follower_disk = FakeDisk()
    guard(leader, FakeDisk(), reserve=1 * MIB)
    follower_guard = guard(cluster.hosts[follower_id].node, follower_disk, reserve=1 * MIB)
    follower_disk.free = MIB // 2  # below the reserve, not yet measured
    assert not follower_guard.alarm
    value = "x" * (64 << 10)
    for i in range(2):  # 128 KiB: an eighth of the reserve
        assert isinstance(await leader.write(Put(f"big/{i}", value)), Written)
    with trio.fail_after(HEARTBEAT_S + 0.01):
        await wait_for(lambda: follower_id in leader.space.peer_alarms, poll=0.001)  # type: ignore[union-attr]
    assert follower_guard.alarm
    with pytest.raises(InsufficientStorage, match=f"insufficient storage on member {follower_id}"):
        await leader.write(Put("big/2", value))


async def test_the_disk_watch_tells_the_peers_of_an_alarm_at_once(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The disk watch finds the alarm raised and sends it on every stream
    at once, not with the next frame; every member learns it (a leader
    elected later refuses new values from its first write; a leader at
    rest reads it at its next heartbeat round). A member that
    leaves the configuration takes its alarm with it."""
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    follower_id = next(i for i in cluster.hosts if i != leader.id)
    follower = cluster.hosts[follower_id].node
    guards = {i: guard(h.node, FakeDisk(), reserve=64 * MIB) for i, h in cluster.hosts.items()}
    follower_disk = FakeDisk()
    guards[follower_id] = guard(follower, follower_disk, reserve=64 * MIB)
    async with trio.open_nursery() as nursery:
        for node_id, host in cluster.hosts.items():
            nursery.start_soon(watch, host.node, Unwatched(), guards[node_id])
        await trio.sleep(0.001)
        follower_disk.free = 10 * MIB
        with trio.fail_after(1.0 + 0.01):
            await wait_for(lambda: follower.space is not None and follower.space.alarm, poll=0.001)
        raised_at = trio.current_time()
        # The other follower well within a heartbeat: the watch woke the
        # streams itself. The leader is at rest, and reads its streams at
        # its next heartbeat round (raft_trio.peer.inbound.LazyReads).
        other_id = next(i for i in cluster.hosts if i not in (leader.id, follower_id))
        with trio.fail_after(0.01):
            await wait_for(lambda: follower_id in guards[other_id].peer_alarms, poll=0.0001)
        with trio.fail_after(HEARTBEAT_S + 0.01):
            await wait_for(lambda: follower_id in guards[leader.id].peer_alarms, poll=0.0001)
        assert trio.current_time() - raised_at <= HEARTBEAT_S
        with pytest.raises(InsufficientStorage, match=f"insufficient storage on member {follower_id}"):
            await leader.write(Put("b", "2"))
        await leader.change_membership(RemoveMember(follower_id))
        with trio.fail_after(1.0 + 0.01):
            await wait_for(lambda: not leader.space.peer_alarms, poll=0.001)  # type: ignore[union-attr]
        assert isinstance(await leader.write(Put("b", "2")), Written)
        nursery.cancel_scope.cancel()


async def test_a_disk_write_that_hangs_makes_the_node_unready(
    cluster: Cluster, autojump_clock: trio.testing.MockClock
) -> None:
    leader = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
    follower_id = next(i for i in cluster.hosts if i != leader.id)
    follower = cluster.hosts[follower_id].node
    with trio.fail_after(2 * HEARTBEAT_S):
        await wait_for(lambda: follower.readiness().ready)
    cluster.hosts[follower_id].fsync_seconds = 60.0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader.write, Put("k", "v"))
        await trio.sleep(ELECTION_MIN_S - 0.05)
        assert follower.readiness().ready, "unready before the write was slow for an election timeout"
        await trio.sleep(0.1)
        state = follower.readiness()
        assert not state.ready
        assert state.reason.startswith("storage failing: a disk write has not finished in"), state
        cluster.hosts[follower_id].fsync_seconds = 0.0


async def test_a_failed_disk_write_stops_the_node_and_acknowledges_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Fail-stop: the write whose fsync failed is never answered 200 (its
    client learns its fate is unknown), and the node's run ends with the
    storage error, which the command line finds inside the exception
    groups and turns into one line and exit status 73."""
    outcome: list[BaseException | object] = []
    crashed: list[BaseException] = []

    async def run_cluster(task_status: trio.TaskStatus[Cluster]) -> None:
        try:
            async with trio.open_nursery() as inner:
                cluster = Cluster(inner, size=1)
                await cluster.start()
                task_status.started(cluster)
        except BaseException as error:  # the node's crash, in exception groups
            crashed.append(error)

    async with trio.open_nursery() as outer:
        cluster = await outer.start(run_cluster)
        node = await cluster.wait_for_leader(within=3 * ELECTION_MAX_S)
        assert isinstance(await node.write(Put("before", "v")), Written)
        storage = node.storage

        def full_disk(hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None) -> None:
            raise DiskFull("writing /data/n1: database or disk is full (the disk is full)")

        storage.write_to_disk = full_disk
        errors_before = node_metrics.STORAGE_ERRORS.labels("DiskFull")._value.get()
        try:
            outcome.append(await node.write(Put("lost", "v")))
        except WriteIndeterminate as error:
            outcome.append(error)
    assert len(outcome) == 1 and isinstance(outcome[0], WriteIndeterminate), outcome
    assert node.kv.get("lost") is None
    [crash] = crashed
    found = storage_error_in(crash)
    assert isinstance(found, DiskFull) and found.exit_code == 73
    assert node_metrics.STORAGE_ERRORS.labels("DiskFull")._value.get() == errors_before + 1


def test_the_state_size_follows_puts_overwrites_deletes_and_snapshots() -> None:
    kv = KeyValueStore()
    kv.apply(1, Put("ab", "xyz"))
    kv.apply(2, Put("c", "1"))
    assert kv.size == 5 + 2
    kv.apply(3, Put("ab", "x"))
    assert kv.size == 3 + 2
    kv.apply(4, Delete("c"))
    kv.apply(5, Delete("missing"))
    assert kv.size == 3
    again = KeyValueStore()
    again.restore(kv.snapshot())
    assert again.size == 3
