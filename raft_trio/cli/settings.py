"""Every setting of ``raft-trio`` read in one place: a flag wins over its
environment variable, which wins over the default. The commands get typed
settings (``NodeSettings``, ``DiscoverySettings``, ``LeaveSettings``,
``Security``); a bad value is a :class:`UsageError` naming it.

The node's settings import the server lazily: the client commands start
without loading it."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..client import DEFAULT_ENDPOINTS
from ..security import Security, load_secret
from .argv import check_member_id, check_url, parse_endpoints, parse_listen, parse_peers
from .errors import UsageError, fail
from .leave import LeaveSettings
from .up import CLUSTER_FILE, UP_DATA_DIR, recorded_endpoints

if TYPE_CHECKING:
    from ..discovery import DiscoverySettings
    from ..server import NodeSettings


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"environment variable {name} must be a whole number, got {raw!r}") from None


def env_float(name: str, default: float | None) -> float | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise UsageError(f"environment variable {name} must be a number, got {raw!r}") from None


def api_prefix() -> str:
    """``API_PREFIX``: where the nodes serve their client API."""
    return os.environ.get("API_PREFIX", "/api") or "/api"


def log_level() -> str:
    """``LOGGING``: a level name; anything else is INFO."""
    level = os.environ.get("LOGGING", "INFO").upper()
    return level if level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO"


@dataclasses.dataclass(frozen=True)
class Endpoints:
    """The nodes a client command asks, in turn, and where that list came
    from (said when none of them answers)."""

    urls: list[str]
    source: str


def endpoints(flag: list[str] | None) -> Endpoints:
    """``--endpoints`` (or ``--cluster``), else ``RAFT_TRIO_ENDPOINTS``,
    else the nodes ``raft-trio up`` recorded in ./raft-data, else the three
    local default ports."""
    if flag:
        return Endpoints(flag, "--endpoints")
    raw = os.environ.get("RAFT_TRIO_ENDPOINTS", "").strip()
    if raw:
        return Endpoints(parse_endpoints(raw, "RAFT_TRIO_ENDPOINTS"), "RAFT_TRIO_ENDPOINTS")
    recorded = recorded_endpoints(Path(UP_DATA_DIR))
    if recorded:
        return Endpoints(recorded, f"{UP_DATA_DIR}/{CLUSTER_FILE}")
    return Endpoints(list(DEFAULT_ENDPOINTS), "the default")


def node_settings(args: argparse.Namespace) -> NodeSettings:
    """``raft-trio node``: its flags and variables, checked."""
    from .. import discovery
    from ..http.app import HttpSettings
    from ..node.runtime import Timing
    from ..server import NodeSettings

    host, port = parse_listen(args.listen)
    node_id = check_member_id(args.id, "--id") if args.id is not None else None
    peers = parse_peers(args.peers) if args.peers else {}
    join = check_url(args.join, "--join") if args.join else None
    check_one_way(peers=bool(peers), join=bool(join), discover=args.discover is not None)
    found = None
    if not peers and not join:
        service = args.discover if args.discover is not None else os.environ.get("APP_NAME") or None
        if not service:
            raise UsageError("a node needs --peers, --join or --discover to find its cluster")
        found = discovery_settings(args, service, port, node_security(args))
    elif node_id is None:
        raise UsageError("--id is needed with --peers or --join")
    # With discovery, the name that stays with this replica when its address
    # changes (its container name), if it has one: its URL, id and {name}.
    address = discovery.advertise_host(host) if found is not None else host
    name = None
    if found is not None and not args.advertise and address != host:
        try:
            name = discovery.find_replica_name(address, found)
        except discovery.NoReplicaName as error:
            fail(f"cannot tell this replica's name: {error}", 75)  # EX_TEMPFAIL: the engine restarts it
    data_dir = args.data_dir.replace("{hostname}", discovery.host_name())
    data_dir = data_dir.replace("{name}", name or discovery.host_name())
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise UsageError(f"--data-dir {data_dir} exists and is not a directory")
    if found is not None:
        # Without --id: the id the data directory was created with, else the name.
        node_id = node_id or discovery.stored_node_id(data_dir) or name or discovery.host_name()
    assert node_id is not None  # --peers and --join need --id; discovery names one
    if peers and node_id not in peers:
        raise UsageError(f"--peers must include this node ({node_id})")
    if args.advertise:
        url = check_url(args.advertise, "--advertise")
    elif found is not None:
        url = discovery.endpoint_url(name or address, port, found.security.scheme)
    elif peers:
        url = peers[node_id]
    else:
        url = joining_url(host, port, node_security(args).scheme, args.listen)
    if join is not None and join == url:
        # Its own waiting page would be "the cluster to join", for ever.
        raise UsageError(
            f"--join names this node itself ({url}): give a member of the running cluster "
            "(the first node of a cluster starts with --peers)"
        )
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
        api_prefix=api_prefix(),
        title=env.get("FASTAPI_TITLE", "raft-trio") or "raft-trio",
        description=env.get("FASTAPI_DESCR", HttpSettings.description) or HttpSettings.description,
        maintainer=env.get("FASTAPI_MAINT") or None,
        email=env.get("FASTAPI_EMAIL") or None,
        openapi_path=env.get("FASTAPI_SCHEM", "/openapi.json") or "/openapi.json",
        docs_path=env.get("FASTAPI_DOCS", "/docs") or "/docs",
    )
    cluster_id = args.cluster_id if args.cluster_id is not None else env.get("RAFT_CLUSTER_ID")
    return NodeSettings(
        node_id=node_id,
        listen_host=host,
        listen_port=port,
        data_dir=data_dir,
        peers=peers,
        url=url,
        join=join,
        timing=timing,
        http=http,
        root_path=env.get("ROOT_PATH", ""),
        leader_script=env.get("SCRIPT_LEADER_PATH") or None,
        follower_script=env.get("SCRIPT_FOLLOWER_PATH") or None,
        snapshot_entries=env_int("RAFT_SNAPSHOT_ENTRIES", 10_000),
        cluster_id=cluster_id or None,
        discovery=found,
        security=security,
        disk_reserve_bytes=disk_reserve(args),
        adopt_data_dir=args.adopt_data_dir,
        never_ran=args.never_ran,
    )


def check_one_way(*, peers: bool, join: bool, discover: bool) -> None:
    """At most one of ``--peers``, ``--join`` and ``--discover``: the node
    follows only one, and silently ignoring another made a wrong cluster
    (``--peers`` naming this node alone with ``--discover`` formed a
    cluster of one). ``APP_NAME`` is no flag: set for every container of
    an image, it turns discovery on only where neither of the others is
    given."""
    given = [flag for flag, on in (("--peers", peers), ("--join", join), ("--discover", discover)) if on]
    if len(given) > 1:
        hint = " (a joining node's own URL is --advertise URL)" if peers and join else ""
        raise UsageError(f"{' and '.join(given)}: give one of --peers, --join or --discover{hint}")


def joining_url(host: str, port: int, scheme: str, listen: str) -> str:
    """Where a ``--join`` node without ``--advertise`` asks to be reached:
    its ``--listen`` address, an IPv6 one in brackets (unbracketed, the
    cluster refused the URL at every try). A wildcard is refused: the
    cluster would add it at ``0.0.0.0``, where every other node reaches
    itself."""
    from ..discovery import endpoint_url

    if host in ("", "0.0.0.0", "::", "*"):
        raise UsageError(
            f"--join with --listen {listen} needs --advertise URL: the cluster cannot reach this node "
            "at a wildcard address"
        )
    return endpoint_url(host, port, scheme)


def disk_reserve(args: argparse.Namespace) -> int | None:
    """``--disk-reserve-bytes`` or ``RAFT_DISK_RESERVE_BYTES``; None: the default."""
    if args.disk_reserve_bytes is not None:
        reserve: int | None = args.disk_reserve_bytes
    else:
        raw = os.environ.get("RAFT_DISK_RESERVE_BYTES")
        reserve = env_int("RAFT_DISK_RESERVE_BYTES", 0) if raw else None
    if reserve is not None and reserve < 0:
        raise UsageError("the disk reserve (--disk-reserve-bytes) must not be negative")
    return reserve


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


def client_security(cacert: str | None = None) -> Security:
    """A client's trust: the CA that signs the nodes' certificates
    (``--cacert``, else ``RAFT_TRIO_CACERT``, else ``RAFT_TLS_CA``) and the
    admin token variables. A node's own certificate variables
    (``RAFT_TLS_CERT``) are not the client's: its certificate is ``--cert``."""
    try:
        admin_token = load_secret(
            "admin token",
            os.environ.get("RAFT_ADMIN_TOKEN") or None,
            os.environ.get("RAFT_ADMIN_TOKEN_FILE") or None,
        )
        ca = cacert or os.environ.get("RAFT_TRIO_CACERT") or os.environ.get("RAFT_TLS_CA") or None
        return Security(admin_token=admin_token, tls_ca=ca)
    except ValueError as error:
        raise UsageError(str(error)) from None


@dataclasses.dataclass(frozen=True)
class ClientIdentity:
    """Who a client command is: a user (and its password) and a client
    certificate, each optional."""

    user: str | None = None
    password: str | None = None
    cert: tuple[str, str] | None = None


def client_identity(given: dict[str, str], ask: Callable[[str], str] | None = None) -> ClientIdentity:
    """``--user NAME[:PASSWORD]`` (else ``RAFT_TRIO_USER``) and ``--cert``
    with ``--key`` (else ``RAFT_TRIO_CERT``, ``RAFT_TRIO_KEY``). A user
    without a password is asked for one on the terminal (``ask``), as
    etcdctl does; without a terminal that is a usage error."""
    raw = given.get("user") or os.environ.get("RAFT_TRIO_USER") or None
    user = password = None
    if raw is not None:
        source = "--user" if given.get("user") else "RAFT_TRIO_USER"
        name, colon, secret = raw.partition(":")
        if not name:
            raise UsageError(f"{source} needs NAME[:PASSWORD]; the name is empty")
        user, password = name, secret if colon else None
        if password is None:
            if ask is None:
                raise UsageError(
                    f"{source} gives no password: use NAME:PASSWORD, or run on a terminal to be asked"
                )
            password = ask(f"Password for {user}: ")
    cert = given.get("cert") or os.environ.get("RAFT_TRIO_CERT") or None
    key = given.get("key") or os.environ.get("RAFT_TRIO_KEY") or None
    if bool(cert) != bool(key):
        raise UsageError("a client certificate needs both --cert and --key")
    for path in (cert, key):
        if path and not os.path.isfile(path):
            raise UsageError(f"TLS file not found: {path}")
    return ClientIdentity(user, password, (cert, key) if cert and key else None)


def discovery_settings(
    args: argparse.Namespace, name: str, port: int, security: Security
) -> DiscoverySettings:
    """``--discover NAME`` and its flags, each over its variable."""
    from .. import discovery

    expect = args.bootstrap_expect if args.bootstrap_expect is not None else env_int("BOOTSTRAP_EXPECT", 3)
    interval = seconds_setting(
        args.discovery_interval, "--discovery-interval", "DISCOVERY_INTERVAL_S", discovery.DEFAULT_INTERVAL_S
    )
    remove_after = seconds_setting(
        args.auto_remove_after, "--auto-remove-after", "AUTO_REMOVE_AFTER_S", None, "unset it to never remove"
    )
    nameserver = args.dns_server or os.environ.get("RAFT_DNS_SERVER") or None
    if nameserver:
        try:
            discovery.parse_nameserver(nameserver)
        except ValueError as error:
            raise UsageError(f"--dns-server: {error}") from None
    try:
        return discovery.DiscoverySettings(
            name=name,
            port=port,
            expect=expect,
            interval=interval if interval is not None else discovery.DEFAULT_INTERVAL_S,
            auto_remove_after=remove_after,
            nameserver=nameserver,
            api_prefix=api_prefix(),
            security=security,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def seconds_setting(
    given: float | None, flag: str, variable: str, default: float | None, hint: str = ""
) -> float | None:
    """A positive, finite number of seconds from ``flag`` (``given``), else
    ``variable``, else ``default``; an error names the one that was given.
    Zero is refused too: it was taken silently, an interval of 0 as the
    default 5 s and a removal after 0 s as never."""
    value, source = (given, flag) if given is not None else (env_float(variable, default), variable)
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError(f"{source} must be positive, got {value:g}" + (f" ({hint})" if hint else ""))
    return value


def kubernetes_api_url() -> str | None:
    """The API server as every pod sees it (the ``kubernetes`` Service)."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    if not host:
        return None
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


def leave_settings(args: argparse.Namespace, cluster: list[str] | None) -> LeaveSettings:
    """``raft-trio leave``: the pod from ``--pod``, else ``$POD_NAME``, else
    ``$HOSTNAME``; the namespace from ``--namespace``, else ``$POD_NAMESPACE``;
    the local node is the first of the endpoints (see :func:`endpoints`)."""
    pod = args.pod or os.environ.get("POD_NAME") or os.environ.get("HOSTNAME")
    if not pod:
        raise UsageError("leave needs --pod (or $POD_NAME)")
    return LeaveSettings(
        node_url=endpoints(cluster).urls[0],
        pod_name=pod,
        node_id=args.id,
        statefulset=args.statefulset,
        namespace=args.namespace or os.environ.get("POD_NAMESPACE") or None,
        api_url=args.kube_api if args.kube_api is not None else kubernetes_api_url(),
        serviceaccount=Path(args.serviceaccount),
        timeout=args.timeout,
        linger=args.linger,
        api_prefix=api_prefix(),
        security=client_security(),
    )
