"""The command line of ``raft-trio``: the parser, and parsing of the
values of its flags. No environment is read here (see :mod:`.settings`)."""

from __future__ import annotations

import argparse
from typing import NoReturn
from urllib.parse import urlsplit

from .errors import UsageError, fail
from .leave import SERVICEACCOUNT_DIR


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"--listen must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def parse_peers(text: str) -> dict[str, str]:
    peers: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        node_id, sep, url = item.partition("=")
        if not sep or not node_id or not url:
            raise UsageError(f"--peers takes ID=URL,... ; {item!r} is not ID=URL")
        check_url(url, "--peers")
        peers[node_id] = url.rstrip("/")
    if not peers:
        raise UsageError("--peers is empty")
    return peers


def check_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{what}: {url!r} is not an http(s) URL")
    return url.rstrip("/")


def extract_cluster(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """``--cluster`` may stand anywhere on the line: take it out first."""
    rest: list[str] = []
    cluster: list[str] | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--cluster":
            if i + 1 >= len(argv):
                raise UsageError("--cluster needs URL[,URL...]")
            cluster = [check_url(u.strip(), "--cluster") for u in argv[i + 1].split(",") if u.strip()]
            i += 2
            continue
        if arg.startswith("--cluster="):
            value = arg.split("=", 1)[1]
            cluster = [check_url(u.strip(), "--cluster") for u in value.split(",") if u.strip()]
            i += 1
            continue
        rest.append(arg)
        i += 1
    if cluster is not None and not cluster:
        raise UsageError("--cluster needs URL[,URL...]")
    return rest, cluster


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(message)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="raft-trio", description="A Raft consensus service written for Trio.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    node = sub.add_parser("node", help="run one node")
    node.add_argument(
        "--id", help="this node's id (with --discover: default the data dir's, else the hostname)"
    )
    node.add_argument("--listen", required=True, help="HOST:PORT to bind")
    node.add_argument(
        "--data-dir", required=True, help="this node's data directory; {hostname} stands for the hostname"
    )
    node.add_argument("--peers", help="static initial membership ID=URL,... (including this node)")
    node.add_argument(
        "--discover",
        help="find peers by DNS (A/SRV records of NAME; default $APP_NAME)",
    )
    node.add_argument("--join", help="ask the cluster at URL to add this node")
    node.add_argument(
        "--bootstrap-expect",
        type=int,
        help="with --discover: replicas that form the first cluster (default $BOOTSTRAP_EXPECT or 3)",
    )
    node.add_argument(
        "--auto-remove-after",
        type=float,
        help="with --discover: remove a member missing from DNS this many seconds "
        "(default $AUTO_REMOVE_AFTER_S; unset: never)",
    )
    node.add_argument(
        "--discovery-interval",
        type=float,
        help="with --discover: seconds between the leader's DNS lookups (default $DISCOVERY_INTERVAL_S or 5)",
    )
    node.add_argument(
        "--dns-server",
        help="with --discover: ask this DNS server, HOST[:PORT] (default $RAFT_DNS_SERVER, else the system's)",
    )
    node.add_argument("--advertise", help="the URL others reach this node at (default: its --peers entry)")
    node.add_argument(
        "--cluster-id",
        help="name of the cluster, recorded in the data dir; a dir of another cluster is refused "
        "(default $RAFT_CLUSTER_ID)",
    )
    node.add_argument(
        "--cluster-secret-file",
        help="file holding the secret every peer request is signed with "
        "(default $RAFT_CLUSTER_SECRET_FILE or $RAFT_CLUSTER_SECRET; unset: peers are trusted)",
    )
    node.add_argument(
        "--admin-token-file",
        help="file holding the token that membership changes and leadership transfer need "
        "(default $RAFT_ADMIN_TOKEN_FILE or $RAFT_ADMIN_TOKEN; unset: anyone may)",
    )
    node.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM; default $RAFT_TLS_CERT)")
    node.add_argument("--tls-key", help="the key of --tls-cert (PEM; default $RAFT_TLS_KEY)")
    node.add_argument(
        "--tls-ca", help="verify the other nodes against this CA bundle (PEM; default $RAFT_TLS_CA)"
    )
    node.add_argument("--heartbeat-ms", type=int)
    node.add_argument("--election-min-ms", type=int)
    node.add_argument("--election-max-ms", type=int)

    up = sub.add_parser("up", help="run a local cluster and its monitor on 127.0.0.1")
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--base-port", type=int, default=9001)
    up.add_argument("--monitor-port", type=int, default=8000)
    up.add_argument("--data-dir", default="./raft-data")

    kv = sub.add_parser("kv", help="read and write keys")
    kv_sub = kv.add_subparsers(dest="kv_command", required=True, parser_class=Parser)
    put = kv_sub.add_parser("put")
    put.add_argument("key")
    put.add_argument("value")
    get = kv_sub.add_parser("get")
    get.add_argument("key")
    get.add_argument("--stale", action="store_true", help="read the node's local state")
    delete = kv_sub.add_parser("del")
    delete.add_argument("key")
    cas = kv_sub.add_parser("cas")
    cas.add_argument("key")
    cas.add_argument("expected", nargs="?")
    cas.add_argument("new")
    cas.add_argument("--absent", dest="expected_absent", action="store_true", help="the key must be absent")

    status = sub.add_parser("status", help="one row per member")
    status.add_argument("--json", action="store_true")

    members = sub.add_parser("members", help="list, add or remove members")
    members_sub = members.add_subparsers(dest="members_command", parser_class=Parser)
    members_sub.add_parser("list")
    add = members_sub.add_parser("add")
    add.add_argument("id")
    add.add_argument("url")
    remove = members_sub.add_parser("remove")
    remove.add_argument("id")

    transfer = sub.add_parser("transfer-leader", help="hand leadership over")
    transfer.add_argument("--to", default=None)

    leave = sub.add_parser(
        "leave",
        help="preStop hook of a StatefulSet pod: hand leadership over; "
        "on a scale-down (ordinal >= spec.replicas) also leave the cluster",
    )
    leave.add_argument("--pod", help="this pod's name, <statefulset>-<ordinal> (default $POD_NAME)")
    leave.add_argument("--id", help="this node's member id (default: the pod name)")
    leave.add_argument("--statefulset", help="the StatefulSet (default: the pod name without its ordinal)")
    leave.add_argument("--namespace", help="default $POD_NAMESPACE, else the service account's")
    leave.add_argument(
        "--kube-api",
        help="the Kubernetes API server (default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)",
    )
    leave.add_argument(
        "--serviceaccount", default=SERVICEACCOUNT_DIR, help="directory holding token, ca.crt, namespace"
    )
    leave.add_argument("--timeout", type=float, default=20.0, help="give up after this many seconds")
    leave.add_argument(
        "--linger", type=float, default=0.0, help="then wait this many seconds (endpoints update)"
    )
    return parser
