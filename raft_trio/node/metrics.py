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
    "raft_peer_requests_refused_total",
    "Peer requests and stream frames refused: missing, wrong or replayed signature or frame MAC",
)
ADMIN_REQUESTS_REFUSED = Counter(
    "raft_admin_requests_refused_total",
    "Membership or leadership requests refused for want of the admin token",
)
CLIENT_REQUESTS_REFUSED = Counter(
    "raft_client_requests_refused_total",
    "Client requests refused by auth: 401 (who are you), 403 (not allowed), 503 (out of touch)",
    ["status"],
)
LOGINS = Counter("raft_logins_total", "Token requests by outcome: ok, failed, throttled", ["outcome"])
PROPOSALS = Counter("raft_proposals_total", "Client writes proposed to the log on this node")
LEADER_CHANGES = Counter("raft_leader_changes_total", "Times this node became or stopped being leader")
FSYNC_SECONDS = Histogram(
    "raft_fsync_seconds",
    "Time to make one Ready durable (one transaction, one fsync)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)
PEER_FRAMES_SENT = Counter("raft_peer_frames_sent_total", "Frames written to a peer's stream", ["peer"])
PEER_MESSAGES_SENT = Counter(
    "raft_peer_messages_sent_total", "Raft messages written to a peer's stream", ["peer"]
)
DISK_FREE_BYTES = Gauge(
    "raft_disk_free_bytes", "Free bytes on the data directory's file system (for an unprivileged writer)"
)
DISK_RESERVE_BYTES = Gauge(
    "raft_disk_reserve_bytes",
    "Free bytes this node keeps in reserve: its NOSPACE alarm rises below this plus room for its next "
    "snapshot and the WAL",
)
DATA_DIR_BYTES = Gauge("raft_data_dir_bytes", "Size of the database, its WAL and the snapshot files")
SPACE_ALARM = Gauge(
    "raft_space_alarm",
    "1 while this node's free space is below its reserve plus room for its next snapshot and the WAL",
)
STORAGE_ERRORS = Counter(
    "raft_storage_errors_total", "Disk failures that stopped the node or refused a write", ["kind"]
)
WRITES_REFUSED_NOSPACE = Counter(
    "raft_writes_refused_nospace_total", "New values refused because a member was short of space"
)
PEER_BYTES_SENT = Counter(
    "raft_peer_sent_bytes_total", "Bytes of frames written to a peer's stream", ["peer"]
)
PEER_STREAM_BREAKS = Counter(
    "raft_peer_stream_breaks_total",
    "Streams to a peer that ended or broke (unreachable, a write past its deadline, refused)",
    ["peer"],
)
PEER_MESSAGES_DROPPED = Counter(
    "raft_peer_messages_dropped_total", "Messages dropped from a peer's full outbox", ["peer"]
)


class PeerStreamMetrics:
    """The metrics sink of the peer streams (``raft_trio.peer.stream``),
    with each peer's counters looked up once."""

    def __init__(self) -> None:
        self._frames: dict[str, tuple[Counter, Counter, Counter]] = {}

    def frame_sent(self, peer_id: str, messages: int, size: int) -> None:
        counters = self._frames.get(peer_id)
        if counters is None:
            counters = self._frames[peer_id] = (
                PEER_FRAMES_SENT.labels(peer_id),
                PEER_MESSAGES_SENT.labels(peer_id),
                PEER_BYTES_SENT.labels(peer_id),
            )
        frames, sent, sent_bytes = counters
        frames.inc()
        sent.inc(messages)
        sent_bytes.inc(size)

    def stream_broken(self, peer_id: str) -> None:
        PEER_STREAM_BREAKS.labels(peer_id).inc()

    def messages_dropped(self, peer_id: str, count: int) -> None:
        PEER_MESSAGES_DROPPED.labels(peer_id).inc(count)


_ROLES = ("leader", "follower", "candidate", "learner")


def observe_state(node: RaftNode) -> None:
    """The gauges of ``node``'s state, read when ``/metrics`` is scraped
    (not set after every change: that cost the write path a dozen locked
    updates per Ready). One node per process; the last one given wins."""
    TERM.set_function(lambda: node.term)
    for name in _ROLES:
        ROLE.labels(name).set_function(lambda name=name: 1 if node.role_name == name else 0)  # type: ignore[misc]
    COMMIT_INDEX.set_function(lambda: node.commit_index)
    APPLIED_INDEX.set_function(lambda: node.kv.applied_index)
    LAST_LOG_INDEX.set_function(lambda: node.last_log_index)
