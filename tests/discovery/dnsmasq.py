"""A real DNS server for the discovery tests: dnsmasq (Debian's
``dnsmasq-base``) answering one name with the addresses of a hosts file,
on a free port of 127.0.0.1. Any 127.x.y.z address binds on loopback, so
each test node gets an address of its own without network namespaces."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import dns.resolver
import pytest

DNSMASQ = shutil.which("dnsmasq") or next(
    (p for p in ("/usr/sbin/dnsmasq", "/sbin/dnsmasq") if os.access(p, os.X_OK)), None
)
needs_dnsmasq = pytest.mark.skipif(
    DNSMASQ is None,
    reason="dnsmasq is not installed (apt-get install dnsmasq-base; .ci/run installs it)",
)


def free_udp_port() -> int:
    """A port free for both UDP and TCP (dnsmasq binds both) right now."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port


def loopback_block() -> str:
    """A random 127.A.B. prefix, so that concurrent runs do not collide."""
    rng = random.SystemRandom()
    return f"127.{rng.randrange(100, 250)}.{rng.randrange(0, 256)}."


class Dnsmasq:
    """dnsmasq serving ``name`` -> the addresses in ``self.addresses``."""

    def __init__(self, root: Path, name: str) -> None:
        assert DNSMASQ is not None
        self.name = name
        self.hosts = root / "hosts"
        self.addresses: list[str] = []
        self.srv: list[tuple[str, str, int]] = []  # (srv name, target, port)
        #: More (address, name) lines, before the service's (a reverse
        #: lookup answers the first name an address has).
        self.names: list[tuple[str, str]] = []
        self.port = free_udp_port()
        self.log = root / "dnsmasq.log"
        self._write()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write(self) -> None:
        lines = [f"{address} {name}\n" for address, name in self.names]
        lines += [f"{address} {self.name}\n" for address in self.addresses]
        self.hosts.write_text("".join(lines))

    def start(self) -> None:
        assert DNSMASQ is not None
        self._write()
        argv = [
            DNSMASQ,
            "--keep-in-foreground",
            "--no-daemon",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            f"--addn-hosts={self.hosts}",
            "--address=/#/",  # NXDOMAIN for every other name, as an authoritative server says
            "--log-facility=-",
        ]
        if os.geteuid() == 0:
            argv.append("--user=root")  # else it reads the hosts file as nobody, in a private tmp dir
        argv += [f"--srv-host={name},{target},{port}" for name, target, port in self.srv]
        # Another test process may take the port between the check and
        # dnsmasq's bind (tests run in parallel): then try another port.
        for attempt in range(5):
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    [*argv, f"--port={self.port}"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                self.wait_until_answering()
                return
            except AssertionError:
                if attempt == 4 or "Address already in use" not in self.log.read_text():
                    raise
                self.port = free_udp_port()

    def wait_until_answering(self, timeout: float = 10.0) -> None:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        resolver.lifetime = 0.5
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            try:
                resolver.resolve(self.name, "A", raise_on_no_answer=False)
                return
            except dns.resolver.NXDOMAIN:
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def set_addresses(self, addresses: list[str]) -> None:
        """Serve ``addresses`` from now on (SIGHUP reloads the hosts file)."""
        self.addresses = list(addresses)
        self._write()
        if self.process is not None:
            self.process.send_signal(signal.SIGHUP)
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
