"""What a node trusts: the cluster secret, the admin token and TLS.

All three are optional and independent. Without them a node behaves as
before, which means: anyone who can reach its port can act as a peer, change
the membership and read or write keys, in clear text. That is fine on a
private network (one host, a compose network, a Kubernetes namespace with
network policies) and nowhere else; the README says so.

- ``RAFT_CLUSTER_SECRET`` / ``RAFT_CLUSTER_SECRET_FILE``: peers sign every
  Raft message with it (:mod:`raft_trio.peer.auth`).
- ``RAFT_ADMIN_TOKEN`` / ``RAFT_ADMIN_TOKEN_FILE``: membership changes and
  leadership transfer need ``Authorization: Bearer <token>``; the CLI and a
  node asking to join send it from the same variables.
- ``RAFT_TLS_CERT`` + ``RAFT_TLS_KEY``: the node serves HTTPS (clients and
  peers share its one port); ``RAFT_TLS_CA``: the bundle that verifies the
  other nodes (and, for the CLI and the monitor, the nodes they talk to).
- ``RAFT_TLS_CLIENT_CERT_AUTH=1``: a client may prove its user with a
  certificate signed by ``RAFT_TLS_CA`` (its CN is the user name);
  ``RAFT_TLS_PEER_CERT_AUTH=1``: peers must present one whose CN is their
  node id (mutual TLS between nodes). The node presents its own
  certificate to its peers whenever it has one.
- ``RAFT_AUTH_TOKEN_TTL``: seconds a client token lasts (default 300).
- ``RAFT_AUTH_PROTECT``: which of ``healthz``, ``readyz``, ``metrics``
  (comma-separated) need a user while auth is on; by default all three
  stay open, for probes and scrapers that carry no credential.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import os
import ssl
import time
from collections.abc import Callable, Mapping

import httpx

#: Shorter secrets can be guessed offline from one captured signature.
MIN_SECRET_BYTES = 16
#: A node's own credential for the API (see ``Security.node_credential``):
#: its prefix, and how far its time may be from the receiver's clock.
NODE_CREDENTIAL_PREFIX = "rtn1."
NODE_CREDENTIAL_MAX_SKEW_S = 60.0
_NODE_LABEL = b"raft-trio-node-credential-v1\0"
#: How long a client token lasts by default (etcd's tokens: 5 minutes), and at most.
DEFAULT_TOKEN_TTL_S = 300
MAX_TOKEN_TTL_S = 7 * 24 * 3600
#: What ``RAFT_AUTH_PROTECT`` may name: the endpoints open by default.
PROTECTABLE = ("healthz", "readyz", "metrics")
#: Requests under these paths (after the API prefix) change the cluster
#: itself and need the admin token when one is configured.
ADMIN_PATHS = ("/members", "/leadership/")
#: Reads that need it too: a backup holds every key.
ADMIN_READS = ("/snapshot",)


def is_admin_request(method: str, path: str, api_prefix: str = "/api") -> bool:
    """Membership changes, leadership transfer and backups (reading the
    membership is not one)."""
    rest = path[len(api_prefix.rstrip("/")) :] if path.startswith(api_prefix.rstrip("/")) else ""
    if method.upper() == "GET":
        return rest in ADMIN_READS
    if method.upper() not in ("POST", "PUT", "DELETE", "PATCH"):
        return False
    return any(rest == admin.rstrip("/") or rest.startswith(admin.rstrip("/") + "/") for admin in ADMIN_PATHS)


def load_secret(what: str, value: str | None, path: str | None) -> bytes | None:
    """A secret from its variable or its file (not both), or None.

    A file keeps the secret out of ``ps`` and ``/proc/*/environ`` (the
    Kubernetes and compose secret mounts); surrounding whitespace, such as
    a trailing newline, is not part of it. Raises ValueError naming the
    problem."""
    if value and path:
        raise ValueError(f"give the {what} either directly or as a file, not both")
    if path:
        try:
            with open(path, "rb") as file:
                secret = file.read().strip()
        except OSError as error:
            raise ValueError(f"cannot read the {what} file {path}: {error.strerror}") from None
    elif value:
        secret = value.encode()
    else:
        return None
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the {what} must be at least {MIN_SECRET_BYTES} bytes long")
    return secret


def _flag(value: str | None, variable: str) -> bool:
    if value is None or value.strip().lower() in ("", "0", "false", "no", "off"):
        return False
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{variable} must be 1 or 0 (true or false), not {value!r}")


def _protected(value: str | None) -> tuple[str, ...]:
    names = tuple(sorted({name.strip().lower() for name in (value or "").split(",") if name.strip()}))
    unknown = [name for name in names if name not in PROTECTABLE]
    if unknown:
        raise ValueError(f"RAFT_AUTH_PROTECT names {', '.join(PROTECTABLE)}, not {', '.join(unknown)}")
    return names


def _seconds(value: str | None, variable: str) -> int:
    if value is None or not value.strip():
        return DEFAULT_TOKEN_TTL_S
    if not (value.strip().isascii() and value.strip().isdigit()):
        raise ValueError(f"{variable} must be a whole number of seconds, not {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class Security:
    """A node's (or a client's) credentials; the default trusts everyone."""

    cluster_secret: bytes | None = None
    admin_token: bytes | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    #: Clients may prove their user with a certificate (CN = user name).
    client_cert_auth: bool = False
    #: Peers must present a certificate whose CN is their node id.
    peer_cert_auth: bool = False
    #: Seconds a client token lasts.
    token_ttl_s: int = DEFAULT_TOKEN_TTL_S
    #: Of :data:`PROTECTABLE`, those that need a user while auth is on.
    protected: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("TLS needs both a certificate and its key (RAFT_TLS_CERT and RAFT_TLS_KEY)")
        for flag, variable in (
            (self.client_cert_auth, "RAFT_TLS_CLIENT_CERT_AUTH"),
            (self.peer_cert_auth, "RAFT_TLS_PEER_CERT_AUTH"),
        ):
            if flag and not (self.tls_cert and self.tls_ca):
                raise ValueError(
                    f"{variable} needs TLS: a certificate, its key and the CA that signs "
                    "client certificates (RAFT_TLS_CERT, RAFT_TLS_KEY, RAFT_TLS_CA)"
                )
        if any(name not in PROTECTABLE for name in self.protected):
            raise ValueError(f"only {', '.join(PROTECTABLE)} can be protected, not {self.protected}")
        if not 1 <= self.token_ttl_s <= MAX_TOKEN_TTL_S:
            raise ValueError(f"the token lifetime must be 1 to {MAX_TOKEN_TTL_S} seconds")
        if self.admin_token is not None and not all(33 <= byte < 127 for byte in self.admin_token):
            raise ValueError(
                "the admin token must be printable ASCII without spaces (it travels in a header)"
            )
        for path in (self.tls_cert, self.tls_key, self.tls_ca):
            if path and not os.path.isfile(path):
                raise ValueError(f"TLS file not found: {path}")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ, **overrides: str | None) -> Security:
        """Read the variables above; ``overrides`` (command-line flags,
        named like the fields) win over them."""

        def get(field: str, variable: str) -> str | None:
            given = overrides.get(field)
            return given if given else (environ.get(variable) or None)

        return cls(
            cluster_secret=load_secret(
                "cluster secret",
                environ.get("RAFT_CLUSTER_SECRET") or None,
                get("cluster_secret_file", "RAFT_CLUSTER_SECRET_FILE"),
            ),
            admin_token=load_secret(
                "admin token",
                environ.get("RAFT_ADMIN_TOKEN") or None,
                get("admin_token_file", "RAFT_ADMIN_TOKEN_FILE"),
            ),
            tls_cert=get("tls_cert", "RAFT_TLS_CERT"),
            tls_key=get("tls_key", "RAFT_TLS_KEY"),
            tls_ca=get("tls_ca", "RAFT_TLS_CA"),
            client_cert_auth=_flag(
                get("client_cert_auth", "RAFT_TLS_CLIENT_CERT_AUTH"), "RAFT_TLS_CLIENT_CERT_AUTH"
            ),
            peer_cert_auth=_flag(get("peer_cert_auth", "RAFT_TLS_PEER_CERT_AUTH"), "RAFT_TLS_PEER_CERT_AUTH"),
            token_ttl_s=_seconds(get("token_ttl_s", "RAFT_AUTH_TOKEN_TTL"), "RAFT_AUTH_TOKEN_TTL"),
            protected=_protected(get("protected", "RAFT_AUTH_PROTECT")),
        )

    @property
    def scheme(self) -> str:
        """How others reach a node with these settings."""
        return "https" if self.tls_cert else "http"

    def client_ssl(self) -> ssl.SSLContext:
        """Verifies servers against ``tls_ca`` (the system's bundle without
        one); hostname checking stays on, so certificates name the address
        in the node's URL (an IP SAN for 127.0.0.1). Presents ``tls_cert``
        as this side's certificate when there is one: a node's own to its
        peers, the CLI's ``--cert`` to the nodes."""
        context = ssl.create_default_context(cafile=self.tls_ca)
        if self.tls_cert and self.tls_key:
            # Who this side is, for a server that asks (mutual TLS).
            context.load_cert_chain(self.tls_cert, self.tls_key)
        return context

    def admin_header(self) -> dict[str, str]:
        """What a client sends to pass :meth:`admin_allowed`."""
        return {"Authorization": f"Bearer {self.admin_token.decode()}"} if self.admin_token else {}

    def sync_admin_hook(self, api_prefix: str = "/api") -> Callable[[httpx.Request], None]:
        """An httpx request hook adding the admin token to admin requests.

        A hook, not a header given once, because httpx drops
        ``Authorization`` when it follows a redirect to another origin, and
        a follower redirects membership changes to the leader (307); hooks
        run for every request of a redirect chain."""

        def add_token(request: httpx.Request) -> None:
            if self.admin_token is not None and is_admin_request(
                request.method, request.url.path, api_prefix
            ):
                request.headers.update(self.admin_header())

        return add_token

    def node_credential(self, node_id: str, now: float | None = None) -> str | None:
        """A bearer credential proving "one of this cluster's nodes" to the
        API of another (None without a cluster secret): with auth on, it
        lets nodes read each other's status and member list (discovery,
        the first-start check, the disk watch), nothing else. It names the
        node and the time, under an HMAC of the cluster secret, and is good
        for ``NODE_CREDENTIAL_MAX_SKEW_S`` either side of that time."""
        if self.cluster_secret is None:
            return None
        stamp = str(int(time.time() if now is None else now))
        name = base64.urlsafe_b64encode(node_id.encode()).rstrip(b"=").decode()
        mac = hmac.new(self.cluster_secret, _NODE_LABEL + f"{name}.{stamp}".encode(), hashlib.sha256)
        signature = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()
        return f"{NODE_CREDENTIAL_PREFIX}{name}.{stamp}.{signature}"

    def node_authorization(self, node_id: str) -> Callable[[], str | None]:
        """An ``Authorization`` value made fresh for every call (for the
        clients a node uses to ask other nodes)."""

        def header() -> str | None:
            credential = self.node_credential(node_id)
            return f"Bearer {credential}" if credential is not None else None

        return header

    def credential_node(self, credential: str, now: float | None = None) -> str | None:
        """The node a credential of :meth:`node_credential` names, if it is
        one of this cluster's and fresh; else None."""
        if self.cluster_secret is None or not credential.startswith(NODE_CREDENTIAL_PREFIX):
            return None
        parts = credential[len(NODE_CREDENTIAL_PREFIX) :].split(".")
        if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdigit()):
            return None
        name, stamp, signature = parts
        mac = hmac.new(self.cluster_secret, _NODE_LABEL + f"{name}.{stamp}".encode(), hashlib.sha256)
        expected = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return None
        if abs((time.time() if now is None else now) - int(stamp)) > NODE_CREDENTIAL_MAX_SKEW_S:
            return None
        try:
            return base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None

    def admin_allowed(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries the admin token (in
        constant time); always true when no token is configured."""
        if self.admin_token is None:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.admin_token)
