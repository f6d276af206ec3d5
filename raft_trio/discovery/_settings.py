"""The settings of discovery (``--discover NAME`` and its flags), checked
once when they are made."""

from __future__ import annotations

import dataclasses

from ..client import TrioClient
from ..security import Security
from ._dns import DnsResolver
from ._probe import PROBE_TIMEOUT_S

DEFAULT_PORT = 9001
DEFAULT_EXPECT = 3
#: How often the leader re-resolves the name.
DEFAULT_INTERVAL_S = 5.0


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

    def client(self) -> TrioClient:
        """Probes and join requests (each ``.at()`` its node): verified
        TLS, the admin token on joins, and (with auth on) the node's own
        credential for reading the others' status."""
        return TrioClient(
            (),
            timeout=PROBE_TIMEOUT_S,
            api_prefix=self.api_prefix,
            security=self.security,
            authorization=self.security.node_authorization("discovery"),
        )

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("the service name is empty")
        if self.expect < 1:
            raise ValueError("BOOTSTRAP_EXPECT must be at least 1")
        if self.interval <= 0:
            raise ValueError("DISCOVERY_INTERVAL_S must be positive")
        if self.auto_remove_after is not None and self.auto_remove_after <= 0:
            raise ValueError("AUTO_REMOVE_AFTER_S must be positive (unset it to never remove)")
