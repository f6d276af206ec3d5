"""The command line of ``raft-trio``: the parser, and parsing of the
values of its flags. No environment is read here (see :mod:`.settings`)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, NoReturn

from .errors import UsageError, fail
from .leave import SERVICEACCOUNT_DIR
from .lock import add_parsers as add_lock_parsers
from .up import DEFAULT_BASE_PORT, DEFAULT_MONITOR_PORT, DEFAULT_NODES, MAX_NODES, UP_DATA_DIR


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 <= int(port) < 65536:
        raise UsageError(f"--listen must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def parse_peers(text: str) -> dict[str, str]:
    """``ID=URL,...``; a repeated id, or two ids at one URL, is refused:
    the one would silently lose a URL, the other make a member that never
    answers (its messages reach the other), which ``members add`` refuses
    too."""
    peers: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        node_id, sep, url = item.partition("=")
        if not sep or not node_id or not url:
            raise UsageError(f"--peers takes ID=URL,... ; {item!r} is not ID=URL")
        url = check_url(url, "--peers")
        check_member_id(node_id, "--peers")
        if node_id in peers:
            raise UsageError(f"--peers: {node_id} is named twice")
        holder = next((other for other, at in peers.items() if at == url), None)
        if holder is not None:
            raise UsageError(f"--peers: {holder} and {node_id} are both at {url}")
        peers[node_id] = url
    if not peers:
        raise UsageError("--peers is empty")
    return peers


def check_member_id(node_id: str, what: str) -> str:
    """``node_id`` if a member may have it (as ``members add`` checks it:
    it must travel in every peer request's header), else a usage error."""
    from ..peer.wire import member_id_problem  # here: as in check_url

    if (problem := member_id_problem(node_id)) is not None:
        raise UsageError(f"{what}: {problem}")
    return node_id


def check_url(url: str, what: str) -> str:
    from ..peer.wire import peer_url_problem  # here: httpx and the core cost every command 80 ms

    if (problem := peer_url_problem(url)) is not None:
        raise UsageError(f"{what}: {problem}")
    return url.rstrip("/")


#: The options every client command takes, anywhere on the line (also
#: before the command): ``--endpoints`` (alias ``--cluster``), ``-o``, and
#: who the client is: ``--user NAME[:PASSWORD]``, ``--cert``/``--key`` (a
#: client certificate) and ``--cacert`` (the CA that signs the nodes').
ENDPOINT_FLAGS = ("--endpoints", "--cluster")
OUTPUT_FLAGS = ("-o", "--output")
IDENTITY_FLAGS = ("--user", "--cert", "--key", "--cacert")
OUTPUTS = ("table", "json")


@dataclasses.dataclass(frozen=True)
class GlobalOptions:
    #: ``--endpoints URL,...`` as given (None: not given).
    endpoints: list[str] | None = None
    #: ``-o table|json`` (None: the command's default).
    output: str | None = None
    #: ``--user``, ``--cert``, ``--key``, ``--cacert`` as given.
    identity: dict[str, str] = dataclasses.field(default_factory=dict)


#: What each flag's value is, for the message when it is missing.
FLAG_VALUES = {
    "--endpoints": "URL[,URL...]",
    "--cluster": "URL[,URL...]",
    "--user": "NAME[:PASSWORD]",
    "--cert": "a certificate file (PEM)",
    "--key": "a key file (PEM)",
    "--cacert": "a CA bundle file (PEM)",
}


def parse_endpoints(value: str, flag: str) -> list[str]:
    urls = [check_url(url.strip(), flag) for url in value.split(",") if url.strip()]
    if not urls:
        raise UsageError(f"{flag} needs URL[,URL...]")
    return urls


def extract_globals(argv: list[str]) -> tuple[list[str], GlobalOptions]:
    """Take ``--endpoints``/``--cluster`` and ``-o``/``--output`` out of
    the line wherever they stand (up to a ``--``, after which everything is
    a command's own), so that the parser sees the rest."""
    rest: list[str] = []
    endpoints: list[str] | None = None
    output: str | None = None
    identity: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        name, eq, inline = arg.partition("=")
        flag = (
            name if name in ENDPOINT_FLAGS + OUTPUT_FLAGS + IDENTITY_FLAGS and (eq or name == arg) else None
        )
        if flag is None and arg.startswith("-o") and len(arg) > 2 and not arg.startswith("--"):
            flag, eq, inline = "-o", "=", arg[2:]  # -ojson, as argparse takes it
        if flag is None:
            rest.append(arg)
            i += 1
            continue
        if eq:
            value, i = inline, i + 1
        elif i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
        else:
            raise UsageError(f"{flag} needs {FLAG_VALUES.get(flag, 'table or json')}")
        if flag in IDENTITY_FLAGS:
            if not value:
                raise UsageError(f"{flag} needs {FLAG_VALUES[flag]}")
            identity[flag.lstrip("-")] = value
        elif flag in ENDPOINT_FLAGS:
            endpoints = parse_endpoints(value, flag)
        elif value not in OUTPUTS:
            raise UsageError(f"{flag} takes table or json, not {value!r}")
        else:
            output = value
    return rest, GlobalOptions(endpoints, output, identity)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(message)


def add_command(sub: Any, name: str, text: str, **options: Any) -> argparse.ArgumentParser:
    """A subcommand whose one line in its parent's list is also the
    description its own ``--help`` opens with."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=text, description=text[:1].upper() + text[1:] + ".", **options
    )
    return parser


def add_auth_commands(sub: Any, client: argparse.ArgumentParser) -> None:
    """``user``, ``role`` and ``auth``: etcdctl's auth commands."""
    user = add_command(sub, "user", "add, delete and list users; give them roles", parents=[client])
    user_sub = user.add_subparsers(
        dest="user_command", metavar="SUBCOMMAND", required=True, parser_class=Parser
    )
    add = add_command(user_sub, "add", "add a user (password from --password or stdin)", parents=[client])
    add.add_argument("name", help="the user's name (letters, digits, . _ @ -; up to 128)")
    add.add_argument("--password", help="the new user's password (else read from stdin)")
    add.add_argument("--no-password", action="store_true", help="it logs in with a client certificate only")
    delete = add_command(
        user_sub, "delete", "delete a user: its tokens stop working at once", parents=[client]
    )
    delete.add_argument("name", help="the user")
    passwd = add_command(user_sub, "passwd", "set a user's password", parents=[client])
    passwd.add_argument("name", help="the user")
    passwd.add_argument("--password", help="the new password (else read from stdin)")
    for verb, text in (("grant-role", "give a user a role"), ("revoke-role", "take a role from a user")):
        change = add_command(user_sub, verb, text, parents=[client])
        change.add_argument("name", help="the user")
        change.add_argument("role", help="the role")
    add_command(user_sub, "list", "every user and its roles", parents=[client])
    get = add_command(user_sub, "get", "one user and its roles", parents=[client])
    get.add_argument("name", help="the user")

    role = add_command(sub, "role", "add, delete and list roles; grant them keys", parents=[client])
    role_sub = role.add_subparsers(
        dest="role_command", metavar="SUBCOMMAND", required=True, parser_class=Parser
    )
    add_command(role_sub, "add", "add a role", parents=[client]).add_argument("name", help="the role's name")
    add_command(role_sub, "delete", "delete a role", parents=[client]).add_argument("name", help="the role")
    grant = add_command(role_sub, "grant", "give a role access to a key, prefix or range", parents=[client])
    grant.add_argument("name", help="the role")
    grant.add_argument("access", choices=("read", "write", "readwrite"), help="what the role may do")
    grant.add_argument("key", help="the key (with --prefix: the prefix; with --end: the first key)")
    revoke = add_command(
        role_sub, "revoke", "take a role's access to a key, prefix or range", parents=[client]
    )
    revoke.add_argument("name", help="the role")
    revoke.add_argument("key", help="the key, prefix or first key, as it was granted")
    for command in (grant, revoke):
        scope = command.add_mutually_exclusive_group()
        scope.add_argument("--prefix", action="store_true", help="every key starting with KEY")
        scope.add_argument("--end", help="the keys from KEY up to END, exclusive ('' : to the last key)")
    add_command(role_sub, "list", "every role and its permissions", parents=[client])
    add_command(role_sub, "get", "one role and its permissions", parents=[client]).add_argument(
        "name", help="the role"
    )

    auth = add_command(sub, "auth", "turn auth on or off, or see whether it is", parents=[client])
    auth.add_argument(
        "auth_command",
        metavar="{enable,disable,status}",
        choices=("enable", "disable", "status"),
        help="enable (needs a user root), disable, or status",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="raft-trio",
        description="A Raft consensus service written for Trio: run nodes, and talk to a cluster.",
        epilog="'raft-trio COMMAND --help' tells more; docs/cli.md has it all.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    node = add_command(sub, "node", "run one node")
    node.add_argument(
        "--id",
        help="this node's id (with --discover: default the data dir's, else the replica's name or hostname)",
    )
    node.add_argument("--listen", required=True, metavar="HOST:PORT", help="where to serve clients and peers")
    node.add_argument(
        "--data-dir",
        metavar="DIR",
        required=True,
        help="this node's data directory; {hostname} stands for the hostname, {name} (with --discover) "
        "for the replica's stable DNS name (its container name), else the hostname",
    )
    node.add_argument(
        "--peers",
        metavar="ID=URL,...",
        help="the static initial membership, this node included (used only by a new data dir)",
    )
    node.add_argument(
        "--discover",
        metavar="NAME",
        help="find peers by DNS (A/SRV records of NAME; default $APP_NAME)",
    )
    node.add_argument("--join", metavar="URL", help="ask the cluster at URL to add this node (as a learner)")
    node.add_argument(
        "--bootstrap-expect",
        metavar="N",
        type=int,
        help="with --discover: replicas that form the first cluster (default $BOOTSTRAP_EXPECT or 3)",
    )
    node.add_argument(
        "--auto-remove-after",
        metavar="SECONDS",
        type=float,
        help="with --discover: remove a member missing from DNS this many seconds "
        "(default $AUTO_REMOVE_AFTER_S; unset: never)",
    )
    node.add_argument(
        "--discovery-interval",
        metavar="SECONDS",
        type=float,
        help="with --discover: seconds between the leader's DNS lookups (default $DISCOVERY_INTERVAL_S or 5)",
    )
    node.add_argument(
        "--dns-server",
        metavar="HOST[:PORT]",
        help="with --discover: ask this DNS server, HOST[:PORT] (default $RAFT_DNS_SERVER, else the system's)",
    )
    node.add_argument(
        "--advertise",
        metavar="URL",
        help="the URL others reach this node at (default: its --peers entry; with --join, its --listen "
        "address, which must then not be a wildcard)",
    )
    node.add_argument(
        "--cluster-id",
        metavar="NAME",
        help="name of the cluster, recorded in the data dir; a dir of another cluster, or one that "
        "records none, is refused (default $RAFT_CLUSTER_ID)",
    )
    node.add_argument(
        "--adopt-data-dir",
        action="store_true",
        help="record --cluster-id in a data dir made without one (otherwise such a dir is refused)",
    )
    node.add_argument(
        "--never-ran",
        action="store_true",
        help="this member never ran before: when the cluster lists it as a voter that has not started, "
        "start without waiting for every voter to answer (wrong for a member whose data dir was lost)",
    )
    node.add_argument(
        "--cluster-secret-file",
        metavar="FILE",
        help="file holding the secret every peer request is signed with "
        "(default $RAFT_CLUSTER_SECRET_FILE or $RAFT_CLUSTER_SECRET; unset: peers are trusted)",
    )
    node.add_argument(
        "--admin-token-file",
        metavar="FILE",
        help="file holding the token that membership changes and leadership transfer need "
        "(default $RAFT_ADMIN_TOKEN_FILE or $RAFT_ADMIN_TOKEN; unset: anyone may)",
    )
    node.add_argument(
        "--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM; default $RAFT_TLS_CERT)"
    )
    node.add_argument("--tls-key", metavar="FILE", help="the key of --tls-cert (PEM; default $RAFT_TLS_KEY)")
    node.add_argument(
        "--tls-ca",
        metavar="FILE",
        help="verify the other nodes against this CA bundle (PEM; default $RAFT_TLS_CA)",
    )
    node.add_argument(
        "--disk-reserve-bytes",
        metavar="BYTES",
        type=int,
        help="free bytes to keep on the data dir's file system: below them new values are refused "
        "(default $RAFT_DISK_RESERVE_BYTES, else the smaller of 256 MiB and a tenth of the file system)",
    )
    node.add_argument(
        "--heartbeat-ms",
        metavar="MS",
        type=int,
        help="a leader's heartbeat interval (default $HEARTBEAT_REPEAT_MILLIS or 100)",
    )
    node.add_argument(
        "--election-min-ms",
        metavar="MS",
        type=int,
        help="the shortest election timeout (default $ELECTION_TIMEOUT_LOWER_MILLIS or 1000)",
    )
    node.add_argument(
        "--election-max-ms",
        metavar="MS",
        type=int,
        help="the longest election timeout (default $ELECTION_TIMEOUT_UPPER_MILLIS or 2000)",
    )

    up = add_command(sub, "up", "run a local cluster and its monitor on 127.0.0.1; Ctrl-C stops it")
    up.add_argument(
        "--nodes",
        metavar="N",
        type=int,
        help=f"how many nodes, 1 to {MAX_NODES} (default: as many as --data-dir holds, else {DEFAULT_NODES}); "
        "a number other than the data dir's is refused",
    )
    up.add_argument(
        "--base-port",
        metavar="PORT",
        type=int,
        help=f"n1's port; n2 takes the next, and so on (default: the data dir's, else {DEFAULT_BASE_PORT})",
    )
    up.add_argument(
        "--monitor-port",
        metavar="PORT",
        type=int,
        help=f"the monitor's port (default {DEFAULT_MONITOR_PORT})",
    )
    up.add_argument(
        "--data-dir",
        metavar="DIR",
        default=UP_DATA_DIR,
        help="the nodes' data and logs, one directory each; the client commands look for the "
        "cluster in ./raft-data (default %(default)s)",
    )
    up.add_argument(
        "--user",
        metavar="NAME:PASSWORD",
        help="with auth on, the user the monitor logs in as (default $RAFT_TRIO_USER)",
    )

    client = Parser(add_help=False)
    where = client.add_argument_group("cluster and output (anywhere on the line)")
    where.add_argument(
        "--endpoints",
        "--cluster",
        metavar="URL,...",
        help="the nodes to ask, in turn (default $RAFT_TRIO_ENDPOINTS, else the nodes `raft-trio up` "
        "recorded in ./raft-data, else http://127.0.0.1:9001-9003)",
    )
    where.add_argument(
        "-o",
        "--output",
        choices=OUTPUTS,
        help="table, or the API's JSON answer (default: json for kv, table for the others)",
    )
    who = client.add_argument_group("who the client is (anywhere on the line)")
    who.add_argument(
        "--user",
        metavar="NAME[:PASSWORD]",
        help="log in as NAME (default $RAFT_TRIO_USER; without a password, it is asked for)",
    )
    who.add_argument("--cert", help="a client certificate, CN = user (PEM; default $RAFT_TRIO_CERT)")
    who.add_argument("--key", help="the key of --cert (PEM; default $RAFT_TRIO_KEY)")
    who.add_argument(
        "--cacert",
        help="verify the nodes against this CA bundle (PEM; default $RAFT_TRIO_CACERT or $RAFT_TLS_CA)",
    )

    kv = add_command(sub, "kv", "read and write keys", parents=[client])
    kv_sub = kv.add_subparsers(dest="kv_command", metavar="SUBCOMMAND", required=True, parser_class=Parser)
    put = add_command(kv_sub, "put", "write a key, once committed on a majority", parents=[client])
    put.add_argument("key", help="1 to 1024 bytes of UTF-8; / allowed")
    put.add_argument(
        "value", nargs="?", help="the value, at most 1 MiB of UTF-8; - reads it from stdin (or give --file)"
    )
    put.add_argument("--file", help="read the value from this file instead")
    get = add_command(
        kv_sub,
        "get",
        "read a key, or every key under --prefix; linearizable unless --stale",
        parents=[client],
    )
    get.add_argument("key", nargs="?", help="the key (exit status 1 if it does not exist)")
    get.add_argument("--prefix", metavar="P", help="every key starting with P, in key order, instead of KEY")
    get.add_argument("--limit", type=int, metavar="N", help="with --prefix: at most N keys (default: all)")
    get.add_argument("--keys-only", action="store_true", help="with --prefix: leave the values out")
    get.add_argument(
        "--stale", action="store_true", help="read the state of the node that answers, not the leader's"
    )
    get.add_argument(
        "--print-value-only",
        action="store_true",
        help="print the value alone, exactly as stored (no newline added)",
    )
    ls = add_command(
        kv_sub, "ls", "list the keys under a prefix, one a line (-o json: the API's answer)", parents=[client]
    )
    ls.add_argument("prefix", nargs="?", default="", help="list the keys starting with PREFIX (default: all)")
    ls.add_argument("--stale", action="store_true", help="read the state of the node that answers")
    delete = add_command(kv_sub, "del", "delete a key (deleted: whether it existed)", parents=[client])
    delete.add_argument("key", help="the key")
    cas = add_command(
        kv_sub,
        "cas",
        "compare-and-set: write NEW if the key holds EXPECTED (exit status 1 if not)",
        parents=[client],
    )
    cas.add_argument("key", help="the key")
    cas.add_argument("expected", nargs="?", help="the value the key must hold (or give --absent)")
    cas.add_argument("new", help="the value to write; - reads it from stdin")
    cas.add_argument("--absent", dest="expected_absent", action="store_true", help="the key must be absent")

    watch = add_command(
        sub,
        "watch",
        "print every change to KEY, or under --prefix, as it commits, until Ctrl-C",
        parents=[client],
    )
    watch.add_argument("key", nargs="?", help="the key to watch")
    watch.add_argument("--prefix", metavar="P", help="every key starting with P (with neither: every key)")
    watch.add_argument(
        "--rev",
        type=int,
        metavar="R",
        help="start at revision R, replaying the changes since (default: the next change)",
    )
    watch.add_argument("--prev-value", action="store_true", help="show each change's previous value too")

    status = add_command(
        sub, "status", "one row per member: role, term, leader, commit and applied index", parents=[client]
    )
    status.add_argument("--json", action="store_true", help="the same as -o json")

    members = add_command(
        sub, "members", "list, add or remove members (list without a subcommand)", parents=[client]
    )
    members_sub = members.add_subparsers(dest="members_command", metavar="SUBCOMMAND", parser_class=Parser)
    add_command(members_sub, "list", "the configuration: id, URL, voter or learner", parents=[client])
    add = add_command(
        members_sub, "add", "add a member: it joins as a learner, a voter once caught up", parents=[client]
    )
    add.add_argument("id", help="the new member's id")
    add.add_argument("url", help="how the others reach it, http(s)://HOST:PORT")
    remove = add_command(members_sub, "remove", "remove a member", parents=[client])
    remove.add_argument("id", help="the member's id")

    transfer = add_command(sub, "transfer-leader", "hand leadership over to another voter", parents=[client])
    transfer.add_argument(
        "--to", metavar="ID", default=None, help="the voter to lead (default: the most caught-up)"
    )

    snapshot = add_command(sub, "snapshot", "back up the state machine, or make a new cluster from a backup")
    snapshot_sub = snapshot.add_subparsers(
        dest="snapshot_command", metavar="SUBCOMMAND", required=True, parser_class=Parser
    )
    save = add_command(
        snapshot_sub,
        "save",
        "write a consistent, checksummed backup taken from the leader (needs the admin token)",
        parents=[client],
    )
    save.add_argument("file", help="where to write it (a whole backup or nothing)")
    restore = add_command(
        snapshot_sub,
        "restore",
        "make the data directory of one member of a new cluster holding the backup's state",
    )
    restore.add_argument("file", help="a backup written by 'snapshot save'")
    restore.add_argument("--data-dir", required=True, help="a new (absent or empty) data directory")
    restore.add_argument("--id", required=True, help="this member's id")
    restore.add_argument("--peers", required=True, help="the new cluster: ID=URL,... (this member included)")
    restore.add_argument(
        "--cluster-id",
        default=None,
        help="the new cluster's id (default: derived from the backup and --peers, the same for every member)",
    )
    restore.add_argument(
        "--bump-revision",
        type=int,
        default=0,
        metavar="N",
        help="start the new cluster N revisions past the backup's (default 0), above every revision the "
        "old cluster gave out after its backup, so fencing tokens keep growing and old watches get 410; "
        "the same N for every member",
    )

    add_auth_commands(sub, client)
    add_lock_parsers(sub, client)

    leave = add_command(
        sub,
        "leave",
        "the preStop hook of a StatefulSet pod: hand leadership over; "
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
        "--serviceaccount",
        default=SERVICEACCOUNT_DIR,
        help="the directory holding token, ca.crt, namespace (default %(default)s)",
    )
    leave.add_argument(
        "--timeout", type=float, default=20.0, help="give up after this many seconds (default %(default)s)"
    )
    leave.add_argument(
        "--linger",
        type=float,
        default=0.0,
        help="then wait this many seconds, while the endpoints update (default %(default)s)",
    )
    return parser
