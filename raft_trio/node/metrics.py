"""Prometheus metrics of a node (``GET /metrics``).

One process runs one node, so the default registry is used; the names
follow Prometheus conventions (units in the name, ``_total`` counters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from .runtime import RaftNode

TERM = Gauge("raft_term", "Current Raft term")
ROLE = Gauge("raft_role", "1 for the role this node has now", ["role"])
COMMIT_INDEX = Gauge("raft_commit_index", "Highest log index known committed")
APPLIED_INDEX = Gauge("raft_applied_index", "Highest log index applied to the key-value store")
LAST_LOG_INDEX = Gauge("raft_last_log_index", "Index of the last entry in the log")
PEER_REQUESTS_REFUSED = Counter(
    "raft_peer_requests_refused_total", "Peer requests refused: missing, wrong or replayed signature"
)
ADMIN_REQUESTS_REFUSED = Counter(
    "raft_admin_requests_refused_total",
    "Membership or leadership requests refused for want of the admin token",
)
PROPOSALS = Counter("raft_proposals_total", "Client writes proposed to the log on this node")
LEADER_CHANGES = Counter("raft_leader_changes_total", "Times this node became or stopped being leader")
FSYNC_SECONDS = Histogram(
    "raft_fsync_seconds",
    "Time to make one Ready durable (one transaction, one fsync)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)
PEER_RPC_SECONDS = Histogram(
    "raft_peer_rpc_seconds",
    "Round trip of one batch of messages to a peer",
    ["peer"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)
DISK_FREE_BYTES = Gauge(
    "raft_disk_free_bytes", "Free bytes on the data directory's file system (for an unprivileged writer)"
)
DISK_RESERVE_BYTES = Gauge(
    "raft_disk_reserve_bytes", "Free bytes below which this node raises its NOSPACE alarm"
)
DATA_DIR_BYTES = Gauge("raft_data_dir_bytes", "Size of the database, its WAL and the snapshot files")
SPACE_ALARM = Gauge("raft_space_alarm", "1 while this node's free space is below its reserve")
STORAGE_ERRORS = Counter(
    "raft_storage_errors_total", "Disk failures that stopped the node or refused a write", ["kind"]
)
WRITES_REFUSED_NOSPACE = Counter(
    "raft_writes_refused_nospace_total", "New values refused because a member was short of space"
)
PEER_RPC_FAILURES = Counter("raft_peer_rpc_failures_total", "Batches a peer did not take", ["peer"])

_ROLES = ("leader", "follower", "candidate", "learner")


def observe_state(node: RaftNode) -> None:
    core = node.core
    TERM.set(core.term)
    role = node.role_name
    for name in _ROLES:
        ROLE.labels(name).set(1 if name == role else 0)
    COMMIT_INDEX.set(core.log.committed)
    APPLIED_INDEX.set(node.kv.applied_index)
    LAST_LOG_INDEX.set(core.log.last_index())


def observe_peer_rpc(peer: str, seconds: float, ok: bool) -> None:
    PEER_RPC_SECONDS.labels(peer).observe(seconds)
    if not ok:
        PEER_RPC_FAILURES.labels(peer).inc()
