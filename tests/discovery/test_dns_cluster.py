"""DNS discovery end to end, without containers: real ``raft-trio node
--discover node`` processes, each bound to its own 127.x address on one
common port (as replicas of a compose service are), and a real DNS server
(dnsmasq) that lists those addresses under the name ``node``.

Three replicas form one cluster by themselves (BOOTSTRAP_EXPECT=3); a
fourth that appears in DNS becomes a learner, then a voter, with no manual
command; a restarted replica keeps its id; a replica gone from DNS is
removed only after the opt-in grace period (AUTO_REMOVE_AFTER_S), and joins
again as a new member when it comes back; replicas that all come back at
each other's addresses find each other."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from raft_trio.testing.processes import NODE_COMMAND, Process, free_port, inherited_env, stop_all
from raft_trio.testing.waiting import wait_until

from .dnsmasq import Dnsmasq, loopback_block

T = TypeVar("T")

NODE_ENV = {
    "ELECTION_TIMEOUT_LOWER_MILLIS": "300",
    "ELECTION_TIMEOUT_UPPER_MILLIS": "600",
    "HEARTBEAT_REPEAT_MILLIS": "50",
    "BOOTSTRAP_EXPECT": "3",
    "DISCOVERY_INTERVAL_S": "0.5",
    "AUTO_REMOVE_AFTER_S": "3",
    "LOGGING": "INFO",
}
ENV_DROP = ("APP_NAME", "SCRIPT_LEADER_PATH", "SCRIPT_FOLLOWER_PATH", "API_PREFIX", "ROOT_PATH", "HOSTNAME")
WAIT_S = 30.0


def common_free_port(addresses: list[str]) -> int:
    """A port free on every one of ``addresses``."""
    for _ in range(50):
        port = free_port(addresses[0])
        try:
            for address in addresses[1:]:
                with socket.socket() as s:
                    s.bind((address, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no common free port")


class Replicas:
    def __init__(self, root: Path, dns: Dnsmasq, block: str, port: int) -> None:
        self.root = root
        self.dns = dns
        self.block = block
        self.port = port
        self.processes: dict[int, Process] = {}
        #: The address (last byte) each replica listens on, by default its own number.
        self.addresses: dict[int, int] = {}
        self.http = httpx.Client(timeout=httpx.Timeout(2.0, connect=0.5), trust_env=False)

    def url(self, i: int) -> str:
        return f"http://{self.block}{self.addresses.get(i, i)}:{self.port}"

    def log(self, i: int) -> Path:
        return self.root / f"replica-{i}.log"

    def start(self, i: int, hostname: str | None = None, address: int | None = None) -> None:
        """Replica ``i`` (its own data) on address ``address`` (default ``i``)."""
        self.addresses[i] = address or i
        extra = {**NODE_ENV, "RAFT_DNS_SERVER": self.dns.server, "HOSTNAME": hostname or f"replica-{i}"}
        env = inherited_env(drop=ENV_DROP, extra=extra)
        argv = [
            *NODE_COMMAND,
            "node",
            "--discover",
            "node",
            "--listen",
            f"{self.block}{self.addresses[i]}:{self.port}",
            "--data-dir",
            str(self.root / f"volume-{i}" / "{hostname}"),
        ]
        process = Process(f"replica-{i}", argv, self.log(i), env)
        process.start()
        self.processes[i] = process

    def stop(self, i: int) -> None:
        self.processes.pop(i).stop(grace=10)

    def status(self, i: int) -> dict[str, Any] | None:
        try:
            response = self.http.get(self.url(i) + "/api/status")
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    def agreed(self, indexes: list[int], voters: set[str]) -> tuple[bool, Any]:
        """All of ``indexes`` follow one leader and list exactly ``voters``."""
        statuses = {i: self.status(i) for i in indexes}
        views = {
            i: s and (s["id"], s["leader_id"], sorted((m["id"], m["voter"]) for m in s["members"]))
            for i, s in statuses.items()
        }
        leaders = {s["leader_id"] for s in statuses.values() if s}
        ok = (
            all(statuses.values())
            and len(leaders) == 1
            and None not in leaders
            and all({m["id"] for m in s["members"] if m["voter"]} == voters for s in statuses.values() if s)
            and all(len(s["members"]) == len(voters) for s in statuses.values() if s)
        )
        return ok, views

    def form_cluster_of_three(self) -> Any:
        """Replicas 1 to 3 in DNS and started: wait for their one cluster."""
        self.dns.addresses = [f"{self.block}{i}" for i in (1, 2, 3)]
        self.dns.start()
        for i in (1, 2, 3):
            self.start(i)
        three = {"replica-1", "replica-2", "replica-3"}
        return wait_until(lambda: self.agreed([1, 2, 3], three), WAIT_S, "one cluster of the three replicas")

    def close(self) -> None:
        stop_all(self.processes.values(), grace=10)
        self.processes.clear()
        self.http.close()

    def tails(self) -> str:
        parts = []
        for log in sorted(self.root.glob("replica-*.log")):
            lines = log.read_text(errors="replace").splitlines()[-30:]
            parts.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(parts)


@pytest.fixture
def replicas(tmp_path: Path, dnsmasq: Dnsmasq) -> Iterator[Replicas]:
    block = loopback_block()
    port = common_free_port([f"{block}{i}" for i in range(1, 5)])
    group = Replicas(tmp_path, dnsmasq, block, port)
    try:
        yield group
    finally:
        group.close()


def test_replicas_form_one_cluster_and_follow_the_service_in_dns(
    replicas: Replicas, dnsmasq: Dnsmasq
) -> None:
    r = replicas
    try:
        three = {"replica-1", "replica-2", "replica-3"}
        views = r.form_cluster_of_three()
        leader_id = next(iter(views.values()))[1]
        leader = int(leader_id.rsplit("-", 1)[1])

        def written() -> tuple[bool, Any]:
            # Through any node: a redirect leads to the leader of the moment.
            try:
                put = r.http.put(
                    r.url(1) + "/api/kv/greeting", json={"value": "hello"}, follow_redirects=True
                )
            except httpx.HTTPError as error:
                return False, repr(error)
            return put.status_code == 200, put.text

        wait_until(written, WAIT_S, "a write to the cluster")

        # Scale up: a fourth replica appears in DNS and starts; nobody adds it by hand.
        dnsmasq.set_addresses([f"{r.block}{i}" for i in (1, 2, 3, 4)])
        r.start(4)
        four = three | {"replica-4"}
        wait_until(lambda: r.agreed([1, 2, 3, 4], four), WAIT_S, "the fourth replica to become a voter")

        def replicated() -> tuple[bool, Any]:
            try:
                answer = r.http.get(r.url(4) + "/api/kv/greeting", params={"consistency": "stale"})
            except httpx.HTTPError as error:
                return False, repr(error)
            return answer.status_code == 200 and answer.json()["value"] == "hello", answer.text

        wait_until(replicated, WAIT_S, "the fourth replica to hold the data")

        # A restarted replica keeps the id stored in its data directory (its
        # hostname could differ now) and stays a member.
        follower = next(i for i in (1, 2, 3) if i != leader)
        r.stop(follower)
        r.start(follower, hostname=f"replica-{follower}")
        wait_until(lambda: r.agreed([1, 2, 3, 4], four), WAIT_S, "the restarted replica to rejoin")

        # Scale down: the fourth replica stops and leaves DNS; it is removed
        # only once it has been missing for AUTO_REMOVE_AFTER_S (3 s). It
        # stops first, so that the grace period runs from its leaving DNS
        # alone: a stop takes up to 2 s on a loaded machine, which left the
        # check below less than the 1.5 s it means to have.
        r.stop(4)
        gone_at = time.monotonic()
        dnsmasq.set_addresses([f"{r.block}{i}" for i in (1, 2, 3)])
        time.sleep(1.5)
        ok, views = r.agreed([1, 2, 3], four)
        # (On a loaded machine the look itself can take seconds: only an
        # answer complete before the grace period could run out counts.)
        assert ok or time.monotonic() - gone_at >= 3.0 - 0.5, f"removed before the grace period: {views}"
        wait_until(lambda: r.agreed([1, 2, 3], three), WAIT_S, "the missing replica to be removed")
        # The leader last saw it at most one lookup (0.5 s) before it left DNS.
        assert time.monotonic() - gone_at >= 3.0 - 0.5

        # Scale up again: the replica comes back with the data of the member
        # that was removed. It finds a leader that committed a configuration
        # without it, sets that data aside and joins as a new member.
        dnsmasq.set_addresses([f"{r.block}{i}" for i in (1, 2, 3, 4)])
        r.start(4)
        wait_until(lambda: r.agreed([1, 2, 3, 4], four), WAIT_S, "the removed replica to join again")
        assert (r.root / "volume-4" / ".removed" / "replica-4.1" / "meta.json").exists()
        wait_until(replicated, WAIT_S, "the replica that joined again to hold the data")
    except BaseException:
        print(r.tails())
        raise


def test_replicas_that_all_come_back_at_each_others_addresses_find_each_other(
    replicas: Replicas, dnsmasq: Dnsmasq
) -> None:
    """What a compose project's stop and start (or a daemon restart) does
    to replicas advertised by address: every one comes back at an address
    another had. Nobody can elect a leader while messages go to the
    addresses the configuration records (a node drops a message for
    another id), so each node sends to where discovery finds each member,
    and the leader then records the new URLs."""
    r = replicas
    try:
        three = {"replica-1", "replica-2", "replica-3"}
        r.form_cluster_of_three()
        put = r.http.put(r.url(1) + "/api/kv/kept", json={"value": "across"}, follow_redirects=True)
        assert put.status_code == 200, put.text

        for i in (1, 2, 3):
            r.stop(i)
        started = time.monotonic()
        for i, address in ((1, 2), (2, 3), (3, 1)):
            r.start(i, address=address)

        def recorded_where_they_are() -> tuple[bool, Any]:
            ok, views = r.agreed([1, 2, 3], three)
            if not ok:
                return False, views
            where = {f"replica-{i}": r.url(i) for i in (1, 2, 3)}
            statuses = [r.status(i) for i in (1, 2, 3)]
            recorded = [{m["id"]: m["url"] for m in s["members"]} if s else None for s in statuses]
            return all(urls == where for urls in recorded), recorded

        wait_until(recorded_where_they_are, WAIT_S, "a leader, and every member recorded at its new address")
        print(
            f"\nall three moved: a leader and the new URLs recorded {time.monotonic() - started:.1f} s after the restart"
        )
        got = r.http.get(r.url(3) + "/api/kv/kept", follow_redirects=True)
        assert got.status_code == 200 and got.json()["value"] == "across", got.text
    except BaseException:
        print(r.tails())
        raise
