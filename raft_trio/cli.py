"""``raft-trio``: run a node or a local cluster, and talk to a cluster.

Bad flags or an unreachable cluster give one clear line on stderr and exit
code 2, never a traceback. Client commands print the API's JSON answer and
exit 0 on a 2xx answer, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote, urlsplit

import httpx

from .security import Security

if TYPE_CHECKING:
    from .discovery import DiscoverySettings

DEFAULT_CLUSTER = "http://127.0.0.1:9001"
EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with what the user asked for: one line, exit code 2."""


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    print(f"raft-trio: {message}", file=sys.stderr)
    raise SystemExit(code)


# -- parsing helpers ------------------------------------------------------------


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


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"environment variable {name} must be a whole number, got {raw!r}") from None


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


# -- client ---------------------------------------------------------------------


class Client:
    """Asks the first cluster URL that answers; follows leader redirects."""

    def __init__(self, urls: list[str], timeout: float = 10.0, security: Security | None = None) -> None:
        self.urls = urls
        security = security or Security()
        self.http = httpx.Client(
            follow_redirects=True,
            timeout=timeout,
            trust_env=False,
            verify=security.client_ssl(),
            event_hooks={"request": [security.sync_admin_hook()]},
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        errors = []
        for url in self.urls:
            try:
                return self.http.request(method, url + path, **kwargs)
            except httpx.HTTPError as error:
                errors.append(f"{url}: {type(error).__name__}")
        raise UsageError("no cluster node answered (" + "; ".join(errors) + ")")


def print_answer(response: httpx.Response) -> int:
    try:
        body = response.json()
    except ValueError:
        body = {"status": response.status_code, "body": response.text}
    print(json.dumps(body, indent=None))
    return 0 if response.is_success else 1


def kv_path(key: str) -> str:
    if not key:
        raise UsageError("the key is empty")
    return "/api/kv/" + quote(key, safe="/")


def cmd_kv(args: argparse.Namespace, client: Client) -> int:
    if args.kv_command == "put":
        return print_answer(client.request("PUT", kv_path(args.key), json={"value": args.value}))
    if args.kv_command == "get":
        params = {"consistency": "stale"} if args.stale else None
        return print_answer(client.request("GET", kv_path(args.key), params=params))
    if args.kv_command == "del":
        return print_answer(client.request("DELETE", kv_path(args.key)))
    expected = None if args.expected_absent else args.expected
    if expected is None and not args.expected_absent:
        raise UsageError("kv cas needs EXPECTED (or --absent)")
    body = {"value": args.new, "expect": expected}
    return print_answer(client.request("PUT", kv_path(args.key), json=body))


def cmd_status(args: argparse.Namespace, client: Client) -> int:
    first = client.request("GET", "/api/status")
    if not first.is_success:
        return print_answer(first)
    members = first.json().get("members", [])
    rows: list[dict[str, Any]] = []
    for member in members:
        try:
            answer = client.http.get(member["url"] + "/api/status", timeout=3)
            row = (
                answer.json()
                if answer.is_success
                else {"id": member["id"], "role": f"http {answer.status_code}"}
            )
        except (httpx.HTTPError, ValueError):
            row = {"id": member["id"], "role": "unreachable"}
        row["url"] = member["url"]
        row["voter"] = member["voter"]
        rows.append(row)
    if args.json:
        print(json.dumps(rows))
        return 0
    columns = ["id", "role", "term", "leader_id", "commit_index", "applied_index", "url"]
    titles = ["ID", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "URL"]
    table = [titles] + [
        [str(row.get(c, "")) if row.get(c) is not None else "-" for c in columns] for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return 0


def cmd_members(args: argparse.Namespace, client: Client) -> int:
    if args.members_command in (None, "list"):
        return print_answer(client.request("GET", "/api/members"))
    if args.members_command == "add":
        check_url(args.url, "members add")
        return print_answer(client.request("POST", "/api/members", json={"id": args.id, "url": args.url}))
    return print_answer(client.request("DELETE", "/api/members/" + quote(args.id, safe="")))


def cmd_transfer(args: argparse.Namespace, client: Client) -> int:
    return print_answer(client.request("POST", "/api/leadership/transfer", json={"to": args.to}))


# -- node and up ------------------------------------------------------------------


def cmd_node(args: argparse.Namespace) -> int:
    import trio

    from . import discovery
    from .http.app import HttpSettings
    from .node.launch import NodeSettings, run_node
    from .node.runtime import Timing
    from .storage import DataDirError, StorageError

    host, port = parse_listen(args.listen)
    peers = parse_peers(args.peers) if args.peers else {}
    join = check_url(args.join, "--join") if args.join else None
    found = None
    if not peers and not join:
        if not args.discover:
            raise UsageError("a node needs --peers, --join or --discover to find its cluster")
        found = discovery_settings(args, port, node_security(args))
    elif args.id is None:
        raise UsageError("--id is needed with --peers or --join")
    # With discovery, the name that stays with this replica when its address
    # changes (its container name), if it has one: its URL and {name}.
    address = discovery.advertise_host(host) if found is not None else host
    name = None
    if found is not None and not args.advertise and address != host:
        try:
            name = discovery.find_replica_name(address, found)
        except discovery.NoReplicaName as error:
            fail(f"cannot tell this replica's name: {error}", 75)  # EX_TEMPFAIL: the engine restarts it
    args.data_dir = args.data_dir.replace("{hostname}", discovery.host_name())
    args.data_dir = args.data_dir.replace("{name}", name or discovery.host_name())
    if os.path.exists(args.data_dir) and not os.path.isdir(args.data_dir):
        raise UsageError(f"--data-dir {args.data_dir} exists and is not a directory")
    if found is not None:
        # Without --id: the id the data directory was created with, else the name.
        args.id = args.id or discovery.stored_node_id(args.data_dir) or name or discovery.host_name()
    if peers and args.id not in peers:
        raise UsageError(f"--peers must include this node ({args.id})")
    if args.advertise:
        url = check_url(args.advertise, "--advertise")
    elif found is not None:
        url = discovery.endpoint_url(name or address, port, found.security.scheme)
    else:
        url = peers.get(args.id, f"{node_security(args).scheme}://{host}:{port}")
    timing = Timing(
        heartbeat_ms=args.heartbeat_ms or env_int("HEARTBEAT_REPEAT_MILLIS", 100),
        election_min_ms=args.election_min_ms or env_int("ELECTION_TIMEOUT_LOWER_MILLIS", 1000),
        election_max_ms=args.election_max_ms or env_int("ELECTION_TIMEOUT_UPPER_MILLIS", 2000),
    )
    if env_int("RAFT_SNAPSHOT_ENTRIES", 10_000) < 1:
        raise UsageError("RAFT_SNAPSHOT_ENTRIES must be at least 1")
    try:
        timing.raft_config().validate()
    except ValueError as error:
        raise UsageError(f"timing: {error}") from None
    security = node_security(args)
    env = os.environ
    http = HttpSettings(
        api_prefix=env.get("API_PREFIX", "/api") or "/api",
        title=env.get("FASTAPI_TITLE", "raft-trio") or "raft-trio",
        description=env.get("FASTAPI_DESCR", HttpSettings.description) or HttpSettings.description,
        maintainer=env.get("FASTAPI_MAINT") or None,
        email=env.get("FASTAPI_EMAIL") or None,
        openapi_path=env.get("FASTAPI_SCHEM", "/openapi.json") or "/openapi.json",
        docs_path=env.get("FASTAPI_DOCS", "/docs") or "/docs",
    )
    settings = NodeSettings(
        node_id=args.id,
        listen_host=host,
        listen_port=port,
        data_dir=args.data_dir,
        peers=peers,
        url=url,
        join=join,
        timing=timing,
        http=http,
        root_path=env.get("ROOT_PATH", ""),
        leader_script=env.get("SCRIPT_LEADER_PATH") or None,
        follower_script=env.get("SCRIPT_FOLLOWER_PATH") or None,
        snapshot_entries=env_int("RAFT_SNAPSHOT_ENTRIES", 10_000),
        cluster_id=args.cluster_id or None,
        discovery=found,
        security=security,
    )
    configure_logging(args.id)
    try:
        trio.run(run_node, settings)
    except (DataDirError, StorageError) as error:
        # sysexits codes: 78 not this node's directory, 75 in use, 65 damaged.
        fail(f"data dir {args.data_dir}: {error}", error.exit_code)
    except OSError as error:
        fail(f"cannot serve on {args.listen}: {error}")
    return 0


def env_float(name: str, default: float | None) -> float | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise UsageError(f"environment variable {name} must be a number, got {raw!r}") from None


def node_security(args: argparse.Namespace) -> Security:
    """The node's TLS files, cluster secret and admin token: flags over
    their variables (raft_trio.security)."""
    try:
        return Security.from_environment(
            os.environ,
            cluster_secret_file=args.cluster_secret_file,
            admin_token_file=args.admin_token_file,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_ca=args.tls_ca,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def client_security() -> Security:
    """A client's trust: ``RAFT_TLS_CA`` and the admin token variables."""
    try:
        return Security.from_environment(os.environ)
    except ValueError as error:
        raise UsageError(str(error)) from None


def discovery_settings(args: argparse.Namespace, port: int, security: Security) -> DiscoverySettings:
    """``--discover NAME`` and its flags, each over its variable."""
    from . import discovery

    expect = args.bootstrap_expect if args.bootstrap_expect is not None else env_int("BOOTSTRAP_EXPECT", 3)
    interval = args.discovery_interval or env_float("DISCOVERY_INTERVAL_S", discovery.DEFAULT_INTERVAL_S)
    remove_after = (
        args.auto_remove_after
        if args.auto_remove_after is not None
        else env_float("AUTO_REMOVE_AFTER_S", None)
    )
    nameserver = args.dns_server or os.environ.get("RAFT_DNS_SERVER") or None
    if nameserver:
        try:
            discovery.parse_nameserver(nameserver)
        except ValueError as error:
            raise UsageError(f"--dns-server: {error}") from None
    try:
        return discovery.DiscoverySettings(
            name=args.discover,
            port=port,
            expect=expect,
            interval=interval or discovery.DEFAULT_INTERVAL_S,
            auto_remove_after=remove_after or None,
            nameserver=nameserver,
            api_prefix=os.environ.get("API_PREFIX", "/api") or "/api",
            security=security,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def configure_logging(node_id: str) -> None:
    level = os.environ.get("LOGGING", "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        level = "INFO"
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s %(levelname)s node={node_id} %(name)s: %(message)s",
    )
    # One line per event: the HTTP access log is noise at INFO.
    logging.getLogger("hypercorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def cmd_leave(args: argparse.Namespace, cluster: list[str] | None) -> int:
    from pathlib import Path

    from .leave import LeaveError, run_leave

    pod = args.pod or os.environ.get("POD_NAME") or os.environ.get("HOSTNAME")
    if not pod:
        raise UsageError("leave needs --pod (or $POD_NAME)")
    try:
        return run_leave(
            node_url=(cluster or [DEFAULT_CLUSTER])[0],
            pod_name=pod,
            node_id=args.id,
            statefulset=args.statefulset,
            namespace=args.namespace or os.environ.get("POD_NAMESPACE") or None,
            api_url=args.kube_api,
            serviceaccount=Path(args.serviceaccount),
            timeout=args.timeout,
            linger=args.linger,
            api_prefix=os.environ.get("API_PREFIX", "/api") or "/api",
            security=client_security(),
        )
    except LeaveError as error:
        raise UsageError(str(error)) from None


def cmd_up(args: argparse.Namespace) -> int:
    from .up import run_up

    return run_up(args.nodes, args.base_port, args.monitor_port, args.data_dir)


# -- the parser -------------------------------------------------------------------


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
        "--data-dir",
        required=True,
        help="this node's data directory; {hostname} stands for the hostname, {name} (with --discover) "
        "for the replica's stable DNS name (its container name), else the hostname",
    )
    node.add_argument("--peers", help="static initial membership ID=URL,... (including this node)")
    node.add_argument(
        "--discover",
        help="find peers by DNS (A/SRV records of NAME)",
        default=os.environ.get("APP_NAME") or None,
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
        default=os.environ.get("RAFT_CLUSTER_ID") or None,
        help="name of the cluster, recorded in the data dir; a dir of another cluster is refused",
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

    from .leave import SERVICEACCOUNT_DIR, default_api_url

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
        default=default_api_url(),
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


def main(argv: Sequence[str] | None = None) -> int:
    try:
        rest, cluster = extract_cluster(list(sys.argv[1:] if argv is None else argv))
        args = build_parser().parse_args(rest)
        if args.command == "node":
            return cmd_node(args)
        if args.command == "up":
            return cmd_up(args)
        if args.command == "leave":
            return cmd_leave(args, cluster)
        client = Client(cluster or [DEFAULT_CLUSTER], security=client_security())
        handlers = {
            "kv": cmd_kv,
            "status": cmd_status,
            "members": cmd_members,
            "transfer-leader": cmd_transfer,
        }
        return handlers[args.command](args, client)
    except UsageError as error:
        fail(str(error))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
