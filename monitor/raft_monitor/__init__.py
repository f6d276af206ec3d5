"""The live monitor of a raft-trio cluster (``raft-monitor``).

It keeps one streaming subscription to each node's ``/api/events``, merges
what it hears (:mod:`._state`, pure) and pushes it to browsers as one
server-sent-events stream, next to a plain HTML page that shows one card per
node, the leader, and a timeline of role, term and leader changes.
"""

from ._app import PageSettings, create_app
from ._client import HttpNodeClient, NodeClient, NodeUnavailable
from ._hub import Hub
from ._run import MonitorSettings, run_monitor
from ._state import ROLES, ClusterView, MalformedEvent, NodeState, Report, parse_event, parse_status
from ._watch import Watcher, WatchSettings

__all__ = [
    "ROLES",
    "ClusterView",
    "HttpNodeClient",
    "Hub",
    "MalformedEvent",
    "MonitorSettings",
    "NodeClient",
    "NodeState",
    "NodeUnavailable",
    "PageSettings",
    "Report",
    "WatchSettings",
    "Watcher",
    "create_app",
    "parse_event",
    "parse_status",
    "run_monitor",
]
