"""DNS discovery for nodes started with ``--discover NAME`` (the container
way): finding the replicas, forming one cluster safely, and following the
replica count at runtime.

One concern per module:

- :mod:`._dns` resolves the service name (SRV, else A records) to node URLs;
- :mod:`._identity`: this node's id and the address it advertises;
- :mod:`._names`: this replica's stable name (its container name);
- :mod:`._probe`: what a node says about itself (``/api/status``);
- :mod:`._decision`: the bootstrap decision, pure, with its safety argument;
- :mod:`._waiting`: the page a node serves while it waits;
- :mod:`._bootstrap`: the waiting phase that drives the decision;
- :mod:`._reconcile`: every node reaches the members where they are, and
  the leader keeps the membership in step with DNS;
- :mod:`._removal`: a member that was removed starts over;
- :mod:`._join`: a new node asks the cluster to add it.
"""

from ._bootstrap import ACK_FILE, Bootstrap
from ._decision import Action, Decision, decide
from ._dns import DnsError, DnsResolver, parse_nameserver
from ._identity import advertise_host, endpoint_url, host_name, stored_node_id
from ._join import join_discovered, request_membership
from ._names import NoReplicaName, find_replica_name, hosts_file_names, replica_name
from ._probe import MemberView, PeerStatus, probe, probe_all
from ._reconcile import Change, apply_change, manage_membership, plan_changes, present_members
from ._removal import REMOVED_DIR, RemovalWatch, retire_data_dir
from ._settings import DEFAULT_EXPECT, DEFAULT_INTERVAL_S, DEFAULT_PORT, DiscoverySettings
from ._waiting import WaitingApp

__all__ = [
    "ACK_FILE",
    "DEFAULT_EXPECT",
    "DEFAULT_INTERVAL_S",
    "DEFAULT_PORT",
    "REMOVED_DIR",
    "Action",
    "Bootstrap",
    "Change",
    "Decision",
    "DiscoverySettings",
    "DnsError",
    "DnsResolver",
    "MemberView",
    "NoReplicaName",
    "PeerStatus",
    "RemovalWatch",
    "WaitingApp",
    "advertise_host",
    "apply_change",
    "decide",
    "endpoint_url",
    "find_replica_name",
    "host_name",
    "hosts_file_names",
    "join_discovered",
    "manage_membership",
    "parse_nameserver",
    "plan_changes",
    "present_members",
    "probe",
    "probe_all",
    "replica_name",
    "request_membership",
    "retire_data_dir",
    "stored_node_id",
]
