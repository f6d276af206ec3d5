"""DNS discovery for nodes started with ``--discover NAME`` (the container
way): finding the replicas, forming one cluster safely, and following the
replica count at runtime.

One concern per module:

- :mod:`._dns` resolves the service name (SRV, else A records) to node URLs;
- :mod:`._identity`: this node's id and the address it advertises;
- :mod:`._probe`: what a node says about itself (``/api/status``);
- :mod:`._decision`: the bootstrap decision, pure, with its safety argument;
- :mod:`._waiting`: the page a node serves while it waits;
- :mod:`._bootstrap`: the waiting phase that drives the decision;
- :mod:`._reconcile`: the leader keeps the membership in step with DNS;
- :mod:`._join`: a new node asks the cluster to add it.
"""

from ._bootstrap import ACK_FILE, Bootstrap
from ._decision import Action, Decision, decide
from ._dns import DnsError, DnsResolver, parse_nameserver
from ._identity import advertise_host, endpoint_url, host_name, stored_node_id
from ._join import join_discovered, request_membership
from ._probe import MemberView, PeerStatus, probe, probe_all
from ._reconcile import Change, apply_change, manage_membership, plan_changes
from ._settings import DEFAULT_EXPECT, DEFAULT_INTERVAL_S, DEFAULT_PORT, DiscoverySettings
from ._waiting import WaitingApp

__all__ = [
    "ACK_FILE",
    "DEFAULT_EXPECT",
    "DEFAULT_INTERVAL_S",
    "DEFAULT_PORT",
    "Action",
    "Bootstrap",
    "Change",
    "Decision",
    "DiscoverySettings",
    "DnsError",
    "DnsResolver",
    "MemberView",
    "PeerStatus",
    "WaitingApp",
    "advertise_host",
    "apply_change",
    "decide",
    "endpoint_url",
    "host_name",
    "join_discovered",
    "manage_membership",
    "parse_nameserver",
    "plan_changes",
    "probe",
    "probe_all",
    "request_membership",
    "stored_node_id",
]
