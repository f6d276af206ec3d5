"""DNS discovery for nodes started with ``--discover NAME`` (the container
way): finding the replicas, forming one cluster safely, and following the
replica count at runtime.

Resolving
    :class:`DnsResolver` asks for the SRV records of NAME (their targets and
    ports, where a DNS server has them: Consul, Kubernetes) and its A
    records (every replica of a compose service, on the nodes' common
    port). dnspython's blocking resolver runs in a worker thread
    (``dns.asyncresolver`` does not run on Trio). ``RAFT_DNS_SERVER``
    (``HOST[:PORT]``) replaces the system's resolver, for tests.

Bootstrapping (:func:`wait_for_cluster`)
    A node with a new data directory serves a small "waiting" page on its
    port (``/api/status`` with its id, an empty membership and its bootstrap
    state; ``/healthz``; 503 for the rest) and looks at every address NAME
    resolves to, twice a second:

    - if one of them already belongs to a cluster, it joins that cluster
      (it is added as a learner, and promoted once caught up), or, if that
      cluster's configuration names it as a voter because it took part in
      the bootstrap, it starts with that configuration;
    - otherwise, once it has seen ``BOOTSTRAP_EXPECT`` waiting replicas
      (itself included) in two rounds in a row, it *acks* the lowest id
      among them as the seed. The ack is written to the data directory and
      never changes. A seed that holds acks from ``BOOTSTRAP_EXPECT``
      replicas bootstraps the cluster: the lowest ``BOOTSTRAP_EXPECT`` ids
      of its ackers, sorted, at the URLs they were found at. The others see
      that configuration on the seed and start with exactly the same one.

    Two clusters cannot share a node (an ack is given once), and with fewer
    than ``2 * BOOTSTRAP_EXPECT`` replicas starting at once there cannot
    be two clusters at all: each needs ``BOOTSTRAP_EXPECT`` acks of its own.
    When exactly ``BOOTSTRAP_EXPECT`` replicas start, every one of them
    acks the same seed. A node whose data directory is new but which a
    cluster already lists as a voter, without having acked, has lost its
    log and vote: it refuses to start as that voter (see the message) rather
    than risk voting twice in a term.

Following the replicas (:func:`manage_membership`)
    Every node re-resolves NAME and probes every address: each node answers
    with its id and the URL it advertises. A member found at another URL
    than the configuration records (its container came back at another
    address) is sent its messages there at once, by every node, so that
    replicas that all moved can still elect a leader. The leader, every
    ``DISCOVERY_INTERVAL_S`` seconds (every second while no leader is
    known), makes one change at a time: it records a member's new URL
    (etcd's ``member update``; its own too), adds a replica that is not a
    member and reports an empty membership as a learner (the core promotes
    it once caught up), and, only if ``AUTO_REMOVE_AFTER_S`` is set,
    removes a member that has been missing that long, never going below
    ``BOOTSTRAP_EXPECT`` voters. A member counts as present while a probe
    finds it, or while its URL's host resolves to an address of NAME that
    no other node answers at (a paused replica). Nothing is removed while
    DNS fails or does not list the leader itself.

Stable names (:func:`replica_name`)
    A replica advertises a DNS name that resolves to it alone when it has
    one, so that its URL survives a new address: its container name, which
    Docker's DNS gives as the reverse lookup of its address and Podman
    writes beside its hostname in ``/etc/hosts``. ``{name}`` in
    ``--data-dir`` stands for that name, so a recreated container finds
    the data of the replica it replaces.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dns.exception
import dns.rdatatype
import dns.resolver
import httpx
import trio

from .core import AddLearner, ConfChange, RaftError, RemoveMember, UpdateMember
from .http.server import serve_app
from .security import Security

if TYPE_CHECKING:
    from .node.runtime import RaftNode

log = logging.getLogger(__name__)

DEFAULT_PORT = 9001
DEFAULT_EXPECT = 3
#: How often the leader re-resolves the name.
DEFAULT_INTERVAL_S = 5.0
#: How often a waiting node looks again.
WAIT_ROUND_S = 0.5
PROBE_TIMEOUT_S = 1.5
DNS_TIMEOUT_S = 2.0
#: After an SRV query times out, A records only for this long.
SRV_RETRY_S = 60.0
#: The seed this node acked, in its data directory.
ACK_FILE = "bootstrap-ack.json"
#: How often the same "still waiting" line is logged again.
REPEAT_LOG_S = 10.0


class DnsError(Exception):
    """The name could not be resolved now (no answer is not an error)."""


@dataclasses.dataclass(frozen=True)
class DiscoverySettings:
    #: The DNS name of the service (its A records, or SRV records).
    name: str
    #: The port for addresses from A records: every replica's own port.
    port: int = DEFAULT_PORT
    #: How many replicas form the first cluster.
    expect: int = DEFAULT_EXPECT
    interval: float = DEFAULT_INTERVAL_S
    #: Remove a member missing from DNS for this long (None: never).
    auto_remove_after: float | None = None
    #: ``HOST[:PORT]`` of the DNS server to ask (None: the system's).
    nameserver: str | None = None
    api_prefix: str = "/api"
    #: TLS and the admin token: with a certificate, the service's addresses
    #: become ``https://`` URLs and probes verify them.
    security: Security = dataclasses.field(default_factory=Security)

    def resolver(self) -> DnsResolver:
        return DnsResolver(self.nameserver, scheme=self.security.scheme)

    def http_client(self) -> httpx.AsyncClient:
        """Probes and join requests: verified TLS, the admin token on joins."""
        return self.security.async_client(self.api_prefix, timeout=PROBE_TIMEOUT_S, follow_redirects=True)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("the service name is empty")
        if self.expect < 1:
            raise ValueError("BOOTSTRAP_EXPECT must be at least 1")
        if self.interval <= 0:
            raise ValueError("DISCOVERY_INTERVAL_S must be positive")
        if self.auto_remove_after is not None and self.auto_remove_after <= 0:
            raise ValueError("AUTO_REMOVE_AFTER_S must be positive (unset it to never remove)")


# -- identity and addresses -------------------------------------------------------


def stored_node_id(data_dir: str | os.PathLike[str]) -> str | None:
    """The node id recorded in an existing data directory, if any."""
    try:
        meta = json.loads((Path(data_dir) / "meta.json").read_bytes())
    except (OSError, ValueError):
        return None
    node_id = meta.get("node_id") if isinstance(meta, dict) else None
    return node_id if isinstance(node_id, str) and node_id else None


def host_name() -> str:
    """The container's hostname: ``$HOSTNAME``, else the kernel's."""
    return os.environ.get("HOSTNAME") or socket.gethostname()


def advertise_host(listen_host: str) -> str:
    """The address the others reach this node at: the ``--listen`` host when
    it is a specific address; else the address the hostname resolves to
    (a container's own IP, from its /etc/hosts); else the address of the
    interface that routes outwards."""
    if listen_host not in ("", "0.0.0.0", "::", "*"):
        return listen_host
    with contextlib.suppress(OSError):
        address = socket.gethostbyname(socket.gethostname())
        if not ipaddress.ip_address(address).is_loopback:
            return address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe_socket:
        try:
            probe_socket.connect(("10.255.255.255", 9))  # no packet is sent
            address = probe_socket.getsockname()[0]
        except OSError:
            address = "127.0.0.1"
    return str(address)


def endpoint_url(host: str, port: int, scheme: str = "http") -> str:
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            return f"{scheme}://[{host}]:{port}"
    return f"{scheme}://{host.rstrip('.')}:{port}"


def hosts_file_names(address: str, path: str = "/etc/hosts") -> list[str]:
    """The names ``/etc/hosts`` gives ``address``, in order."""
    names: list[str] = []
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            fields = line.split("#", 1)[0].split()
            if fields and fields[0] == address:
                names.extend(fields[1:])
    return names


def replica_name(
    address: str, resolver: DnsResolver, hostname: str, hosts_file: str = "/etc/hosts"
) -> str | None:
    """A name that resolves to ``address`` alone and is not the hostname
    (which is the container's id, new with every container): the
    container's name, found as Docker's DNS answers the reverse lookup
    (``<container>.<network>``) or as Podman writes it in ``/etc/hosts``.
    None if there is none; DnsError if the DNS server did not answer."""
    candidates: list[str] = []
    for name in resolver.reverse(address):
        candidates += [name.split(".", 1)[0], name]
    candidates += hosts_file_names(address, hosts_file)
    excluded = {hostname, hostname.split(".", 1)[0], "localhost"}
    for name in dict.fromkeys(candidates):
        if name and name not in excluded and resolver.addresses(name) == [address]:
            return name
    return None


#: Tries and pause of the first look for a replica name: a container's DNS
#: entry can lag its start by a moment, and the name decides the data
#: directory, so one miss must not make a new member.
NAME_TRIES = 5
NAME_RETRY_S = 0.4
#: How long to keep asking a DNS server that does not answer at all.
NAME_DNS_PATIENCE_S = 60.0


class NoReplicaName(Exception):
    """The DNS server did not answer for as long as a replica waits for its name."""


def find_replica_name(address: str, settings: DiscoverySettings) -> str | None:
    """Blocking, at start: :func:`replica_name` of this replica, asked a few
    times before giving up (then the address is advertised, as before).
    While the DNS server does not answer at all, it keeps asking for up to
    ``NAME_DNS_PATIENCE_S`` and then raises NoReplicaName: guessing would
    pick another data directory, and make a new member of an old one."""
    resolver = settings.resolver()
    hostname = host_name()
    misses = 0
    deadline = time.monotonic() + NAME_DNS_PATIENCE_S
    while True:
        try:
            name = replica_name(address, resolver, hostname)
        except DnsError as error:
            if time.monotonic() > deadline:
                raise NoReplicaName(f"the DNS server does not answer: {error}") from error
        else:
            if name is not None:
                return name
            misses += 1
            if misses >= NAME_TRIES:
                return None
        time.sleep(NAME_RETRY_S)


# -- resolving ----------------------------------------------------------------------


def parse_nameserver(text: str) -> tuple[str, int]:
    """``HOST`` or ``HOST:PORT`` (``[V6]:PORT``) of a DNS server."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":") or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, "53"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"a DNS server is HOST or HOST:PORT, got {text!r}")
    ipaddress.ip_address(host)  # ValueError for a name: a DNS server is an address
    return host, int(port)


class DnsResolver:
    """SRV and A records of a service name, as node URLs."""

    def __init__(
        self, nameserver: str | None = None, *, timeout: float = DNS_TIMEOUT_S, scheme: str = "http"
    ) -> None:
        self._scheme = scheme
        if nameserver:
            host, port = parse_nameserver(nameserver)
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [host]
            resolver.port = port
        else:
            try:
                resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                resolver = dns.resolver.Resolver(configure=False)
                resolver.nameservers = ["127.0.0.1"]
        resolver.timeout = timeout
        resolver.lifetime = timeout
        self._resolver = resolver
        self._srv_after = 0.0

    def lookup(self, name: str, default_port: int) -> list[str]:
        """Blocking: the sorted node URLs for ``name``; raises DnsError when
        the DNS server cannot be asked."""
        urls = self._srv(name)
        if urls is None:
            urls = [endpoint_url(address, default_port, self._scheme) for address in self._addresses(name)]
        return sorted(set(urls))

    async def resolve(self, name: str, default_port: int) -> list[str]:
        return await trio.to_thread.run_sync(self.lookup, name, default_port, abandon_on_cancel=True)

    def addresses(self, name: str) -> list[str]:
        """Blocking: the A records of ``name`` (an IP literal: itself)."""
        with contextlib.suppress(ValueError):
            return [str(ipaddress.ip_address(name))]
        return self._addresses(name)

    def reverse(self, address: str) -> list[str]:
        """Blocking: the names a reverse (PTR) lookup gives for ``address``;
        raises DnsError when the DNS server does not answer."""
        try:
            answer = self._resolver.resolve_address(address)
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as error:
            raise DnsError(f"{address}: {error}") from error
        except dns.exception.DNSException:
            return []
        return [rdata.target.to_text(omit_final_dot=True) for rdata in answer]

    def _addresses(self, name: str) -> list[str]:
        try:
            answer = self._resolver.resolve(name, "A", search=True, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return []
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as error:
            raise DnsError(f"{name}: {error}") from error
        except dns.exception.DNSException as error:
            raise DnsError(f"{name}: {type(error).__name__}: {error}") from error
        return [rdata.address for rdata in answer]

    def _srv(self, name: str) -> list[str] | None:
        """URLs from SRV records, or None where the name has none."""
        if time.monotonic() < self._srv_after:
            return None
        try:
            answer = self._resolver.resolve(name, "SRV", search=True)
        except dns.exception.Timeout:
            # A DNS server that forwards unknown types can be slow to say no.
            self._srv_after = time.monotonic() + SRV_RETRY_S
            return None
        except dns.exception.DNSException:
            return None
        additional: dict[str, list[str]] = {}
        for rrset in answer.response.additional:
            if rrset.rdtype == dns.rdatatype.A:
                additional.setdefault(rrset.name.to_text(), []).extend(r.address for r in rrset)
        urls: list[str] = []
        for rdata in answer:
            target = rdata.target.to_text()
            addresses = additional.get(target)
            if addresses is None:
                try:
                    addresses = self._addresses(target)
                except DnsError:
                    addresses = []
            urls.extend(endpoint_url(address, rdata.port, self._scheme) for address in addresses)
        return urls or None


# -- what a node says about itself ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MemberView:
    id: str
    url: str
    voter: bool = True


@dataclasses.dataclass(frozen=True)
class PeerStatus:
    """A node's ``/api/status``, as probed at ``url``."""

    url: str
    id: str
    members: tuple[MemberView, ...] = ()
    leader_url: str | None = None
    #: Still in the bootstrap phase (serving the waiting page).
    waiting: bool = False
    #: The seed it acked, while waiting.
    ack: str | None = None
    #: The URL it says the others reach it at (None: it does not say).
    advertised: str | None = None
    #: As leader: its term, and its commit and last log index.
    leader_log: tuple[int, int, int] | None = None

    @property
    def reach_url(self) -> str:
        """Where the others should reach it: its own word, else where it
        was probed."""
        return self.advertised or self.url

    @classmethod
    def parse(cls, url: str, doc: Any) -> PeerStatus | None:
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or not doc["id"]:
            return None
        members = []
        for item in doc.get("members") or []:
            if (
                isinstance(item, dict)
                and isinstance(item.get("id"), str)
                and isinstance(item.get("url"), str)
            ):
                members.append(MemberView(item["id"], item["url"], bool(item.get("voter", True))))
        bootstrap = doc.get("bootstrap")
        waiting = isinstance(bootstrap, dict)
        ack = bootstrap.get("ack") if isinstance(bootstrap, dict) else None
        leader_url = doc.get("leader_url")
        advertised = doc.get("url")
        term, commit, last = (doc.get(k) for k in ("term", "commit_index", "last_log_index"))
        leader_log = None
        if doc.get("role") == "leader" and type(term) is int and type(commit) is int and type(last) is int:
            leader_log = (term, commit, last)
        return cls(
            url=url,
            id=doc["id"],
            members=tuple(members),
            leader_url=leader_url if isinstance(leader_url, str) and leader_url else None,
            waiting=waiting,
            ack=ack if isinstance(ack, str) and ack else None,
            advertised=advertised.rstrip("/") if isinstance(advertised, str) and advertised else None,
            leader_log=leader_log,
        )

    def member(self, node_id: str) -> MemberView | None:
        for member in self.members:
            if member.id == node_id:
                return member
        return None


async def probe(client: httpx.AsyncClient, url: str, api_prefix: str = "/api") -> PeerStatus | None:
    """Ask ``url`` who it is; None if it does not answer sensibly."""
    try:
        response = await client.get(f"{url}{api_prefix}/status", timeout=PROBE_TIMEOUT_S)
        if response.status_code != 200:
            return None
        return PeerStatus.parse(url, response.json())
    except (httpx.HTTPError, ValueError):
        return None


async def probe_all(
    client: httpx.AsyncClient, urls: Iterable[str], api_prefix: str = "/api"
) -> dict[str, PeerStatus]:
    """Probe every URL at once; the ones that answered."""
    found: dict[str, PeerStatus] = {}

    async def one(url: str) -> None:
        status = await probe(client, url, api_prefix)
        if status is not None:
            found[url] = status

    async with trio.open_nursery() as nursery:
        for url in set(urls):
            nursery.start_soon(one, url)
    return found


# -- the bootstrap decision (pure) ----------------------------------------------------

Action = Literal["wait", "ack", "bootstrap", "adopt", "join", "refuse"]


@dataclasses.dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    #: The initial configuration (bootstrap, adopt).
    members: tuple[MemberView, ...] = ()
    #: A node of the cluster to ask (join).
    join_url: str | None = None
    #: Whom to ack (ack).
    seed: str | None = None


def decide(
    me: str,
    my_url: str,
    expect: int,
    ack: str | None,
    statuses: Iterable[PeerStatus],
    last_view: frozenset[str] | None,
) -> tuple[Decision, frozenset[str]]:
    """One round of the bootstrap: what a waiting node does, given what the
    others said. Returns the decision and the set of waiting ids seen (to
    pass back as ``last_view`` next round)."""
    others = [s for s in statuses if s.id != me]
    clusters = sorted(
        (s for s in others if s.members),
        key=lambda s: (s.leader_url is None, -len(s.members), s.url),
    )
    waiting = {s.id: s for s in others if s.waiting}
    view = frozenset([me, *waiting])
    for status in clusters:
        entry = status.member(me)
        if entry is None:
            continue
        if not entry.voter:
            return Decision("join", f"{status.url} lists this node as a learner", join_url=status.url), view
        if ack is not None:
            return (
                Decision("adopt", f"the cluster of seed {ack} formed (seen at {status.url})", status.members),
                view,
            )
        return (
            Decision(
                "refuse",
                f"the cluster at {status.url} lists this node ({me}) as a voter, but this node's data "
                "directory is new: its log and vote are lost, and starting as that voter could let it "
                f"vote twice in a term. Remove it (raft-trio members remove {me} --cluster {status.url}); "
                "it then joins again as a new learner by itself",
            ),
            view,
        )
    if clusters:
        target = clusters[0]
        return Decision(
            "join", f"found a cluster at {target.url}", join_url=target.leader_url or target.url
        ), view
    if ack is None:
        if len(view) >= expect and view == last_view:
            seed = min(view)
            return Decision("ack", f"{len(view)} replicas are waiting; the seed is {seed}", seed=seed), view
        return Decision("wait", f"{len(view)} of {expect} replicas seen: {', '.join(sorted(view))}"), view
    if ack != me:
        return Decision("wait", f"waiting for the seed {ack} to form the cluster"), view
    ackers = sorted({me} | {s.id for s in waiting.values() if s.ack == me})
    if len(ackers) < expect:
        return Decision("wait", f"seed with {len(ackers)} of {expect} acks: {', '.join(ackers)}"), view
    chosen = ackers[:expect]
    members = tuple(MemberView(i, my_url if i == me else waiting[i].reach_url) for i in chosen)
    return Decision("bootstrap", f"forming the cluster {', '.join(chosen)}", members), view


# -- the waiting phase ------------------------------------------------------------------


class WaitingApp:
    """The ASGI app a node serves while it waits for its cluster: its id and
    bootstrap state on ``/api/status``, ``/healthz``, and 503 for the rest."""

    def __init__(self, status: Callable[[], dict[str, Any]], api_prefix: str = "/api") -> None:
        self.status = status
        self.api_prefix = api_prefix

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        root: str = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root) :]
        headers = [(b"content-type", b"application/json")]
        if path == f"{self.api_prefix}/status" and scope["method"] in ("GET", "HEAD"):
            status, body = 200, self.status()
        elif path == "/healthz":
            status, body = 200, {"ok": True}
        elif path == "/readyz":
            # Not a member of any cluster yet: not ready (the kubelet keeps
            # the pod out of the client Service).
            status = 503
            body = {"ready": False, "reason": "waiting for the cluster to form (bootstrap)"}
        else:
            status = 503
            body = {"error": "this node is waiting for its cluster to form (bootstrap); try again shortly"}
            headers.append((b"retry-after", b"1"))
        data = json.dumps(body).encode()
        headers.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


class Bootstrap:
    """The waiting phase of one node: see the module's documentation."""

    def __init__(
        self,
        node_id: str,
        url: str,
        data_dir: str | os.PathLike[str],
        settings: DiscoverySettings,
        resolver: DnsResolver | None = None,
    ) -> None:
        self.node_id = node_id
        self.url = url
        self.settings = settings
        self.resolver = resolver or settings.resolver()
        self._ack_path = Path(data_dir) / ACK_FILE
        self.ack = self._load_ack()
        self.seen: frozenset[str] = frozenset([node_id])

    def status(self) -> dict[str, Any]:
        return {
            "id": self.node_id,
            "url": self.url,
            "role": "follower",
            "term": 0,
            "leader_id": None,
            "leader_url": None,
            "commit_index": 0,
            "applied_index": 0,
            "last_log_index": 0,
            "members": [],
            "bootstrap": {"expect": self.settings.expect, "ack": self.ack, "seen": sorted(self.seen)},
        }

    def _load_ack(self) -> str | None:
        try:
            doc = json.loads(self._ack_path.read_bytes())
        except (OSError, ValueError):
            return None
        seed = doc.get("seed") if isinstance(doc, dict) else None
        return seed if isinstance(seed, str) and seed else None

    def _save_ack(self, seed: str) -> None:
        """Durably: an ack must survive a restart to stay the only one."""
        temporary = self._ack_path.with_name(ACK_FILE + ".tmp")
        with open(temporary, "wb") as f:
            f.write(json.dumps({"seed": seed}).encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self._ack_path)
        directory = os.open(self._ack_path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    async def serve_and_decide(self, host: str, port: int, root_path: str = "") -> Decision:
        """Serve the waiting page on ``host:port`` until this node knows how
        it starts: bootstrap, adopt or join."""
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            app = WaitingApp(self.status, self.settings.api_prefix)
            await nursery.start(
                partial(serve_app, app, host, port, shutdown, root_path, tls=self.settings.security)
            )
            try:
                return await self.decide_loop()
            finally:
                shutdown.set()

    async def decide_loop(self) -> Decision:
        settings = self.settings
        last_view: frozenset[str] | None = None
        said: tuple[str, float] = ("", -REPEAT_LOG_S)
        round_s = min(WAIT_ROUND_S, settings.interval)
        log.info(
            "bootstrap: looking for %d replicas of %s (this node: %s at %s)",
            settings.expect,
            settings.name,
            self.node_id,
            self.url,
        )
        async with settings.http_client() as client:
            while True:
                urls: list[str] = []
                try:
                    urls = await self.resolver.resolve(settings.name, settings.port)
                except DnsError as error:
                    self._say(said, f"bootstrap: cannot resolve {settings.name}: {error}", logging.WARNING)
                statuses = await probe_all(client, [u for u in urls if u != self.url], settings.api_prefix)
                decision, last_view = decide(
                    self.node_id, self.url, settings.expect, self.ack, statuses.values(), last_view
                )
                self.seen = last_view
                if decision.action == "ack":
                    assert decision.seed is not None
                    await trio.to_thread.run_sync(self._save_ack, decision.seed)
                    self.ack = decision.seed
                    log.info("bootstrap: %s; acked", decision.reason)
                    continue
                if decision.action in ("bootstrap", "adopt", "join"):
                    log.info("bootstrap: %s: %s", decision.action, decision.reason)
                    return decision
                level = logging.ERROR if decision.action == "refuse" else logging.INFO
                said = self._say(said, f"bootstrap: {decision.reason}", level)
                await trio.sleep(round_s)

    @staticmethod
    def _say(said: tuple[str, float], line: str, level: int) -> tuple[str, float]:
        """Log ``line`` when it differs from the last one, or now and then."""
        now = time.monotonic()
        if line != said[0] or now - said[1] >= REPEAT_LOG_S:
            log.log(level, "%s", line)
            return line, now
        return said


# -- the running cluster ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Change:
    kind: Literal["add", "update", "remove"]
    id: str
    url: str
    reason: str


def plan_changes(
    me: str,
    my_url: str,
    members: Sequence[MemberView],
    probes: Mapping[str, PeerStatus],
    last_seen: Mapping[str, float],
    now: float,
    auto_remove_after: float | None,
    keep_voters: int,
) -> list[Change]:
    """What the leader changes in the membership after one look at DNS.

    ``probes`` holds the answers of the service's addresses; ``last_seen``
    when each member was last present; ``auto_remove_after`` None never
    removes, and no removal takes the voters below ``keep_voters``."""
    by_id = {m.id: m for m in members}
    changes: list[Change] = []
    mine = by_id.get(me)
    if mine is not None and mine.url != my_url:
        changes.append(Change("update", me, my_url, f"{me} (the leader) is now at {my_url}, not {mine.url}"))
    for url in sorted(probes):
        status = probes[url]
        member = by_id.get(status.id)
        if member is None:
            if not status.members:
                reach = status.reach_url
                changes.append(Change("add", status.id, reach, f"new replica of the service at {reach}"))
            continue
        if member.id == me or member.url == status.reach_url:
            continue
        if status.advertised is None:
            # A node that does not say its URL: moved only if the old
            # address no longer answers as it.
            at_old = probes.get(member.url)
            if at_old is not None and at_old.id == member.id:
                continue
        reason = f"{member.id} is now at {status.reach_url}, not {member.url}"
        changes.append(Change("update", member.id, status.reach_url, reason))
    if auto_remove_after is not None:
        planned = {c.id for c in changes}
        voters = sum(m.voter for m in members)
        for member in members:
            missing = now - last_seen.get(member.id, now)
            if member.id == me or member.id in planned or missing <= auto_remove_after:
                continue
            if member.voter and voters <= keep_voters:
                continue  # never below BOOTSTRAP_EXPECT voters
            reason = f"{member.id} has been missing from DNS for {missing:.0f} s (AUTO_REMOVE_AFTER_S)"
            changes.append(Change("remove", member.id, member.url, reason))
    return changes


async def apply_change(node: RaftNode, change: Change) -> bool:
    """Make ``change`` through the node (the leader); False if it could not
    be made now (it is planned again next round)."""
    from .node._pending import WriteFailed, WriteIndeterminate
    from .node.runtime import NotLeaderError, Unavailable

    step: ConfChange
    if change.kind == "add":
        step = AddLearner(change.id, change.url)
    elif change.kind == "update":
        step = UpdateMember(change.id, change.url)
    else:
        step = RemoveMember(change.id)
    log.info("discovery: %s", change.reason)
    try:
        await node.change_membership(step)
    except (NotLeaderError, Unavailable, RaftError, WriteFailed, WriteIndeterminate) as error:
        log.warning("discovery: %s %s not done now: %s", change.kind, change.id, error)
        return False
    return True


def url_host(url: str) -> str:
    return httpx.URL(url).host


async def present_members(
    members: Sequence[MemberView],
    probes: Mapping[str, PeerStatus],
    dns_urls: Collection[str],
    resolver: DnsResolver,
) -> set[str]:
    """Ids of the members that are there: found by a probe, or whose URL's
    host resolves to an address of the service at which no other node
    answered (a paused replica answers nothing, and stays in DNS)."""
    found = {status.id for status in probes.values()}
    service_hosts = {url_host(url): url for url in dns_urls}
    present = set()
    for member in members:
        if member.id in found:
            present.add(member.id)
            continue
        try:
            addresses = await trio.to_thread.run_sync(resolver.addresses, url_host(member.url))
        except DnsError:
            continue
        for address in addresses:
            url = service_hosts.get(address)
            if url is not None and (url not in probes or probes[url].id == member.id):
                present.add(member.id)
    return present


async def manage_membership(
    node: RaftNode,
    settings: DiscoverySettings,
    resolver: DnsResolver | None = None,
    on_removed: Callable[[str], None] | None = None,
) -> None:
    """Every node's side and the leader's side of discovery: see the
    module's documentation. ``on_removed`` is called (with the reason) once
    this node is certainly removed from its cluster (:class:`RemovalWatch`)."""
    resolver = resolver or settings.resolver()
    removal = RemovalWatch(node.id)
    last_seen: dict[str, float] = {}
    warned: set[str] = set()
    last_plan = -float("inf")
    async with settings.http_client() as client:
        while True:
            await trio.sleep(min(settings.interval, 1.0))
            leaderless = node.core.leader_id is None
            if not leaderless and trio.current_time() - last_plan < settings.interval:
                continue
            last_plan = trio.current_time()
            try:
                urls = set(await resolver.resolve(settings.name, settings.port))
            except DnsError as error:
                log.warning("discovery: cannot resolve %s: %s", settings.name, error)
                continue
            probes = await probe_all(client, urls, settings.api_prefix)
            member_ids = {m.id for m in node.core.membership.members}
            node.use_found_addresses({s.id: s.reach_url for s in probes.values() if s.id in member_ids})
            own = [MemberView(m.id, m.url, m.voter) for m in node.core.membership.members]
            committed = [MemberView(m.id, m.url, m.voter) for m in node.core.committed_membership.members]
            why = removal.removed(own, committed, probes.values())
            if why is not None and on_removed is not None:
                on_removed(why)
                return
            if node.role_name != "leader":
                last_seen.clear()  # a new leader starts its own clock
                continue
            now = trio.current_time()
            members = [MemberView(m.id, m.url, m.voter) for m in node.core.membership.members]
            present = await present_members(members, probes, urls, resolver)
            for member in members:
                last_seen.setdefault(member.id, now)
                if member.id in present:
                    last_seen[member.id] = now
            # DNS that does not list the leader is no ground to remove.
            trusted = node.id in present
            if not trusted and "self" not in warned:
                warned.add("self")
                log.warning("discovery: %s does not list this leader (%s)", settings.name, node.url)
            changes = plan_changes(
                node.id,
                node.url,
                members,
                probes,
                last_seen,
                now,
                settings.auto_remove_after if trusted else None,
                settings.expect,
            )
            for status in probes.values():
                known = status.id in member_ids
                if not known and status.members and status.url not in warned:
                    warned.add(status.url)
                    log.warning(
                        "discovery: %s at %s has a membership of its own (another cluster, or a "
                        "removed member): not adding it; recreate it (or wipe its data directory) to "
                        "add it as a new member",
                        status.id,
                        status.url,
                    )
            if changes and node.role_name == "leader":
                await apply_change(node, changes[0])  # one change at a time


class RemovalWatch:
    """Whether this node was removed from its cluster, for certain: then it
    starts over as a new member (:func:`retire_data_dir`), where it would
    otherwise hold a configuration of its own for ever (a replica scaled
    away, removed, and scaled up again finds its old data).

    Certain means committed: either this node's own committed configuration
    leaves it out after one that had it (the leader sends a member it
    removes the entries that remove it; a node that joins and replays the
    log meets configurations from before it was added, which do not
    count), or a leader whose configuration leaves it out has committed up
    to the end of the log it had when it first left it out, in the same
    term (so that configuration entry is committed; one answer does when
    its whole log is committed). A removal that is merely appended could
    still be undone by a new leader."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._was_member = False
        #: leader id -> (term, last log index) when it first left us out.
        self._seen: dict[str, tuple[int, int]] = {}

    def removed(
        self,
        own: Sequence[MemberView],
        own_committed: Sequence[MemberView],
        probes: Iterable[PeerStatus],
    ) -> str | None:
        """Why this node is removed, or None. ``own``: its configuration in
        force; ``own_committed``: its last committed one."""
        listed = any(m.id == self.node_id for m in own_committed)
        if listed:
            self._was_member = True
        elif self._was_member and own_committed:
            return "its own committed configuration leaves it out"
        if not own:
            return None  # joining: no configuration of its own yet
        leaders = {s.id: s for s in probes if s.leader_log is not None and s.id != self.node_id}
        for leader in leaders.values():
            assert leader.leader_log is not None
            term, commit, last = leader.leader_log
            if not leader.members or leader.member(self.node_id) is not None:
                self._seen.pop(leader.id, None)
                continue
            first = self._seen.setdefault(leader.id, (term, last))
            if first[0] != term:
                self._seen[leader.id] = (term, last)
            elif commit >= first[1]:
                return f"the leader {leader.id} committed a configuration without it (term {term})"
        for gone in set(self._seen) - set(leaders):
            del self._seen[gone]
        return None


#: Where the data of a removed member is kept, beside the data directories.
REMOVED_DIR = ".removed"


def retire_data_dir(data_dir: str | os.PathLike[str]) -> Path:
    """Move a removed member's data directory aside (``<parent>/.removed/
    <name>.<n>``), durably; the path it is kept at."""
    path = Path(data_dir)
    keep = path.parent / REMOVED_DIR
    keep.mkdir(exist_ok=True)
    n = 1
    while (keep / f"{path.name}.{n}").exists():
        n += 1
    target = keep / f"{path.name}.{n}"
    os.replace(path, target)
    for directory in (keep, path.parent):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return target


async def request_membership(
    client: httpx.AsyncClient, cluster_url: str, node: RaftNode, api_prefix: str = "/api"
) -> bool:
    """Ask the cluster at ``cluster_url`` to add ``node`` as a learner; True
    once it is a member. The node learns the members' addresses from the
    answer: until the leader's entries reach it, its own configuration is
    empty, and it must still answer the leader."""
    members_url = f"{cluster_url}{api_prefix}/members"
    try:
        response = await client.post(members_url, json={"id": node.id, "url": node.url}, timeout=10)
        if response.status_code == 409 and "already a member" in response.text:
            response = await client.get(members_url, timeout=10)
        elif response.status_code == 200:
            log.info("joined the cluster through %s", cluster_url)
        else:
            log.warning("join: %s answered %s %s", cluster_url, response.status_code, response.text[:200])
            return False
        members = PeerStatus.parse(cluster_url, {"id": "-", **response.json()})
    except (httpx.HTTPError, ValueError) as error:
        log.warning("join: %s: %r", cluster_url, error)
        return False
    if response.status_code != 200 or members is None:
        return False
    node.add_known_peers({m.id: m.url for m in members.members if m.id != node.id})
    return True


async def join_discovered(
    node: RaftNode, settings: DiscoverySettings, resolver: DnsResolver | None = None
) -> None:
    """A node that is in no configuration yet asks the cluster to add it, at
    whatever address of the service belongs to it, until it is a member."""
    resolver = resolver or settings.resolver()
    async with settings.http_client() as client:
        while node.core.membership.get(node.id) is None:
            urls: list[str] = []
            with contextlib.suppress(DnsError):
                urls = await resolver.resolve(settings.name, settings.port)
            statuses = await probe_all(client, [u for u in urls if u != node.url], settings.api_prefix)
            clusters = [s for s in statuses.values() if s.members and s.id != node.id]
            if clusters:
                target = next((s.leader_url for s in clusters if s.leader_url), clusters[0].url)
                if await request_membership(client, target, node, settings.api_prefix):
                    return
            await trio.sleep(1.0)


__all__ = [
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
    "decide",
    "find_replica_name",
    "host_name",
    "join_discovered",
    "manage_membership",
    "plan_changes",
    "probe",
    "probe_all",
    "replica_name",
    "request_membership",
    "retire_data_dir",
    "stored_node_id",
]
