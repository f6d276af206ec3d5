"""Crashes, pauses and restarts, each on a cluster of the test's own:
SIGKILL of the leader under load, SIGSTOP of the leader (what ``docker
pause`` does) and of a follower, a restarted node catching up from its log
and from a snapshot, and exactly-once retries across a leader change."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .cluster import (
    ELECTION_S,
    ELECTION_TIMEOUT_MAX_S,
    HTTP_TIMEOUT,
    Cluster,
    as_written,
    describe,
    json_of,
    kv_path,
    wait_until,
)


def queued_requests(port: int) -> list[int]:
    """Local ports of this process's TCP connections to 127.0.0.1:``port``
    whose sent bytes wait unread in the server's receive queue (the
    server is stopped, the kernel accepted them)."""
    ours = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                ours.add(target[8:-1])
    client_ports = set()
    server_side: dict[int, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, queues, inode = fields[1], fields[2], fields[3], fields[4], fields[9]
        local_port, remote_port = int(local.split(":")[1], 16), int(remote.split(":")[1], 16)
        if state != "01":  # ESTABLISHED
            continue
        if inode in ours and remote_port == port:
            client_ports.add(local_port)
        if local_port == port:
            server_side[remote_port] = int(queues.split(":")[1], 16)
    return sorted(p for p in client_ports if server_side.get(p, 0) > 0)


class LoadWriter(threading.Thread):
    """Writes distinct keys one after another, as fast as they are answered,
    rotating to the next node on a connection error or a 503; records each
    write's outcome with the time it came back."""

    def __init__(self, urls: list[str], prefix: str = "load") -> None:
        super().__init__(daemon=True)
        self.urls = urls
        self.prefix = prefix
        #: key -> (value, index, monotonic time of the 200)
        self.acked: dict[str, tuple[str, int, float]] = {}
        #: key -> value, for writes whose outcome is unknown (503, connection error)
        self.unknown: dict[str, str] = {}
        self.refused: list[str] = []
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def acked_after(self, t: float) -> int:
        with self._lock:
            return sum(1 for _, _, at in self.acked.values() if at > t)

    def run(self) -> None:
        target = 0
        i = 0
        try:
            with httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False, follow_redirects=True) as client:
                while not self._halt.is_set():
                    key, value = f"{self.prefix}-{i:06d}", f"value {i}"
                    i += 1
                    url = self.urls[target % len(self.urls)] + kv_path(key)
                    try:
                        r = client.put(url, json={"value": value})
                    except httpx.HTTPError:
                        with self._lock:
                            self.unknown[key] = value
                        target += 1
                        continue
                    with self._lock:
                        if r.status_code == 200:
                            body = r.json()
                            assert body["key"] == key and body["value"] == value, describe(r)
                            self.acked[key] = (value, body["index"], time.monotonic())
                        else:
                            # 503: indeterminate or refused; anything else is
                            # reported, and its outcome is unknown too.
                            self.unknown[key] = value
                            if r.status_code != 503:
                                self.refused.append(describe(r))
                    if r.status_code != 200:
                        target += 1
                        time.sleep(0.02)
        except BaseException as error:
            self.error = error

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)
        assert not self.is_alive(), "the writer did not stop"


# -- 4. SIGKILL of the leader under load ----------------------------------------------


@pytest.mark.integration
def test_leader_killed_under_load_loses_no_acknowledged_write(cluster: Cluster) -> None:
    c = cluster
    old, term = c.wait_for_leader()
    others = [nid for nid in c.nodes if nid != old]
    writer = LoadWriter([c[old].url] + [c[nid].url for nid in others])
    writer.start()
    try:
        wait_until(lambda: (len(writer.acked) >= 30, len(writer.acked)), 15.0, "30 writes before the kill")
        killed_at = time.monotonic()
        c[old].kill()
        new, new_term = c.wait_for_leader(others, min_term=term + 1)
        elected_at = time.monotonic()
        wait_until(
            lambda: (writer.acked_after(elected_at) >= 30, writer.acked_after(elected_at)),
            15.0,
            "30 writes acknowledged after the new leader was seen",
        )
    finally:
        writer.stop()
    assert writer.error is None, repr(writer.error)
    assert new != old and new_term > term
    assert sum(1 for _, _, at in writer.acked.values() if at < killed_at) >= 30

    # Acknowledged in order, so the log indexes grow in that order.
    in_order = sorted(writer.acked.values(), key=lambda a: a[2])
    indexes = [index for _, index, _ in in_order]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes), (
        "acknowledged indexes out of order"
    )

    # Every acknowledged write is there, with its value and index, on the new leader.
    missing = []
    for key, (value, index, _) in writer.acked.items():
        r = c.follow.get(c.kv_url(new, key))
        if r.status_code != 200 or as_written(r.json()) != {"key": key, "value": value, "index": index}:
            missing.append(describe(r))
    assert not missing, (
        f"{len(missing)} of {len(writer.acked)} acknowledged writes are wrong, e.g. {missing[:5]}"
    )
    # A write of unknown outcome is either there with its value or absent.
    for key, value in writer.unknown.items():
        r = c.follow.get(c.kv_url(new, key))
        assert r.status_code == 404 or (r.status_code == 200 and r.json()["value"] == value), describe(r)

    # And the surviving follower holds the same.
    survivor = next(nid for nid in others if nid != new)
    leader_status = c.status(new)
    assert leader_status is not None
    c.wait_caught_up(survivor, leader_status["commit_index"])
    for key, (value, _, _) in writer.acked.items():
        r = c.get(survivor, key, stale=True)
        assert r.status_code == 200 and r.json()["value"] == value, describe(r)

    # Every answer was one the contract allows (200, 307 followed, 503).
    assert not writer.refused, f"{len(writer.refused)} writes got another answer, e.g. {writer.refused[:3]}"


#: What a follower logs when its leader's port refuses its stream.
REFUSED_LINE = "refuses connections: campaigning when its lease ends"


@pytest.mark.integration
@pytest.mark.parametrize("fault", ["kill", "pause"])
def test_a_silent_leader_is_replaced_once_its_followers_leases_end(make_cluster: Any, fault: str) -> None:
    """A SIGKILLed or SIGSTOPped leader says nothing more: its followers
    campaign in turns once their leases end (1 s here), not at a random
    point of the range (1-10 s here, where chance alone would take more
    than 2.5 s two times in three). A killed leader's port also refuses
    connections at once, which its followers log; a paused one's still
    accepts, and nothing is logged."""
    c = make_cluster(
        f"silent-{fault}",
        env={"ELECTION_TIMEOUT_LOWER_MILLIS": "1000", "ELECTION_TIMEOUT_UPPER_MILLIS": "10000"},
    )
    old, term = c.wait_for_leader(timeout=60.0)
    others = [nid for nid in c.nodes if nid != old]
    c.write(f"before-the-{fault}", "x")
    silenced_at = time.monotonic()
    if fault == "kill":
        c[old].kill()
    else:
        c[old].pause()
    try:
        new, new_term = c.wait_for_leader(others, min_term=term + 1, timeout=2.5)
        took = time.monotonic() - silenced_at
    finally:
        if fault == "pause":
            c[old].resume()
    # The leases run from when each follower last heard the leader: the
    # write just before the fault, or a heartbeat (50 ms) before it.
    assert took >= 0.9, f"elected {took:.2f} s after the {fault}: before the followers' leases ended"
    told = [nid for nid in others if REFUSED_LINE in c[nid].log_text(this_run=True)]
    if fault == "kill":
        assert told, "no follower logged that the leader refused its stream"
    else:
        assert not told, f"a paused leader's port refused {told}"
    print(f"{new} elected in term {new_term}, {took:.2f} s after the {fault}; told: {told}")


# -- 5. SIGSTOP of the leader -----------------------------------------------------------


@pytest.mark.integration
def test_paused_leader_is_replaced_and_serves_nothing_stale_after_resuming(cluster: Cluster) -> None:
    c = cluster
    old, term = c.wait_for_leader()
    others = [nid for nid in c.nodes if nid != old]
    key = "paused-leader-key"
    r = c.put(old, key, "before the pause")
    assert r.status_code == 200, describe(r)

    c[old].pause()
    new, new_term = c.wait_for_leader(others, min_term=term + 1)
    assert new != old
    c.write(key, "written to the new leader")
    latest = c.write(key, "latest")
    assert latest["index"] > r.json()["index"]

    # Requests to the old leader, sent while it is still stopped (they wait
    # in its socket backlog) and right after it resumes: no 200 for the
    # write, and a 200 read only with the latest value.
    probes: dict[str, httpx.Response | BaseException] = {}

    def probe(name: str, method: str, url: str, body: dict[str, Any] | None) -> None:
        with httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False) as client:
            try:
                probes[name] = client.request(method, url, json=body)
            except httpx.HTTPError as error:
                probes[name] = error

    early = [
        threading.Thread(
            target=probe, args=("PUT while stopped", "PUT", c.kv_url(old, "stale-write-1"), {"value": "x"})
        ),
        threading.Thread(target=probe, args=("GET while stopped", "GET", c.kv_url(old, key), None)),
    ]
    for t in early:
        t.start()
    wait_until(
        lambda: (len(queued_requests(c[old].port)) >= 2, queued_requests(c[old].port)),
        5.0,
        "both requests to sit in the stopped leader's socket queue",
    )
    c[old].resume()
    probe("PUT after SIGCONT", "PUT", c.kv_url(old, "stale-write-2"), {"value": "x"})
    probe("GET after SIGCONT", "GET", c.kv_url(old, key), None)
    for t in early:
        t.join(timeout=30)
    assert len(probes) == 4, f"probes did not return: {sorted(probes)}"

    for name, answer in probes.items():
        print(f"{name}: {answer if isinstance(answer, BaseException) else describe(answer)}")
    problems = []
    for name, answer in probes.items():
        if isinstance(answer, BaseException):
            continue  # no answer is no acknowledgement
        if name.startswith("PUT") and answer.status_code == 200:
            problems.append(f"{name}: the deposed leader acknowledged a write: {describe(answer)}")
        elif (
            name.startswith("GET") and answer.status_code == 200 and json_of(answer).get("value") != "latest"
        ):
            problems.append(
                f"{name}: the deposed leader served a stale linearizable read: {describe(answer)}"
            )
        elif answer.status_code not in (200, 307, 503):
            problems.append(f"{name}: unexpected answer: {describe(answer)}")
        elif answer.status_code == 307 and answer.headers.get("X-Raft-Leader") != new:
            problems.append(f"{name}: redirected to another node than {new}: {describe(answer)}")
    assert not problems, "\n".join(problems)

    # The old leader steps down: follower of the new leader, in its term.
    def stepped_down() -> tuple[bool, Any]:
        st = c.status(old)
        ok = st is not None and st["role"] == "follower" and st["leader_id"] == new and st["term"] >= new_term
        return ok, st

    wait_until(stepped_down, ELECTION_S, f"{old} to step down after SIGCONT")
    lid, _ = c.wait_for_leader(["n1", "n2", "n3"])
    assert lid == new, "the resumed node disrupted the new leader"
    # A paused process's port still accepts: the timeouts decided.
    assert not [nid for nid in others if REFUSED_LINE in c[nid].log_text(this_run=True)]
    final = c.follow.get(c.kv_url(old, key))
    assert final.status_code == 200 and final.json()["value"] == "latest", describe(final)


# -- 6. SIGSTOP of a follower --------------------------------------------------------


@pytest.mark.integration
def test_paused_follower_costs_nothing_and_catches_up(cluster: Cluster) -> None:
    c = cluster
    lid, term = c.wait_for_leader()
    paused, other = [nid for nid in c.nodes if nid != lid]
    c[paused].pause()
    pause_s = 10 * ELECTION_TIMEOUT_MAX_S + 0.5
    deadline = time.monotonic() + pause_s
    writes = 0
    slowest = 0.0
    i = 0
    while time.monotonic() < deadline:
        started = time.monotonic()
        r = c.put(lid, f"while-paused-{i}", f"v{i}")
        slowest = max(slowest, time.monotonic() - started)
        assert r.status_code == 200, (
            f"write {i} after {pause_s - (deadline - started):.1f} s of pause: {describe(r)}"
        )
        writes += 1
        i += 1
        if i % 5 == 0:
            for nid in (lid, other):
                st = c.status(nid)
                assert st is not None, f"no status from {nid}"
                assert (st["term"], st["leader_id"]) == (term, lid), f"{nid} changed term or leader: {st}"
    assert writes >= 20, f"only {writes} writes committed in {pause_s:.1f} s (slowest {slowest:.2f} s)"
    for nid in (lid, other):
        st = c.status(nid)
        assert st is not None, f"no status from {nid}"
        assert (st["term"], st["leader_id"]) == (term, lid), f"{nid} changed term or leader: {st}"

    c[paused].resume()
    leader_status = c.status(lid)
    assert leader_status is not None
    caught = c.wait_caught_up(paused, leader_status["commit_index"])
    assert caught["leader_id"] == lid, caught
    r = c.get(paused, f"while-paused-{i - 1}", stale=True)
    assert r.status_code == 200 and r.json()["value"] == f"v{i - 1}", describe(r)
    # Its return disturbs nobody.
    assert c.wait_for_leader(["n1", "n2", "n3"]) == (lid, term)


@pytest.mark.integration
def test_node_that_knows_no_leader_answers_503_with_retry_after(cluster: Cluster) -> None:
    c = cluster
    lid, _ = c.wait_for_leader()
    lone = next(nid for nid in c.nodes if nid != lid)
    for nid in c.nodes:
        if nid != lone:
            c[nid].pause()

    def leaderless() -> tuple[bool, Any]:
        st = c.status(lone)
        return st is not None and st["leader_id"] is None, st

    wait_until(leaderless, ELECTION_S, f"{lone} to know no leader with the other two stopped")
    key = "no-leader"
    problems = []
    for method, body in (("PUT", {"value": "x"}), ("GET", None), ("DELETE", None)):
        r = c.http.request(method, c.kv_url(lone, key), json=body)
        body_json = json_of(r)
        if (
            r.status_code != 503
            or "Retry-After" not in r.headers
            or not isinstance(body_json, dict)
            or "error" not in body_json
        ):
            problems.append(f"{describe(r)} Retry-After: {r.headers.get('Retry-After')!r}")
    for nid in c.nodes:
        if nid != lone:
            c[nid].resume()
    assert not problems, "\n".join(problems)
    c.wait_for_leader(["n1", "n2", "n3"])
    assert c.follow.get(c.kv_url(lone, key)).status_code == 404, (
        "a write refused for want of a leader was applied"
    )


# -- 7. restarts ------------------------------------------------------------------------


@pytest.mark.integration
def test_restarted_follower_catches_up(cluster: Cluster) -> None:
    c = cluster
    lid, _ = c.wait_for_leader()
    fid = next(nid for nid in c.nodes if nid != lid)
    before = c.write_many(lid, [(f"before-{i}", f"b{i}") for i in range(20)])
    c.wait_caught_up(fid, max(before.values()))
    c[fid].kill()
    after = c.write_many(lid, [(f"after-{i}", f"a{i}") for i in range(30)])
    c[fid].start()
    c.wait_caught_up(fid, max(after.values()))
    for prefix, count, short in (("before", 20, "b"), ("after", 30, "a")):
        for i in range(count):
            r = c.get(fid, f"{prefix}-{i}", stale=True)
            assert r.status_code == 200 and r.json()["value"] == f"{short}{i}", describe(r)
    c.wait_for_leader(["n1", "n2", "n3"])


@pytest.mark.integration
def test_follower_behind_the_compacted_log_catches_up_by_snapshot(make_cluster: Any) -> None:
    c: Cluster = make_cluster("snapshot", env={"RAFT_SNAPSHOT_ENTRIES": "50"})
    lid, _ = c.wait_for_leader()
    fid = next(nid for nid in c.nodes if nid != lid)
    first = c.write_many(lid, [(f"early-{i}", f"e{i}") for i in range(10)])
    c.wait_caught_up(fid, max(first.values()))
    assert c[fid].stop() == 0
    written = c.write_many(lid, [(f"snap-{i:03d}", f"value {i}") for i in range(300)])
    leader_status = c.status(lid)
    assert leader_status is not None
    target = leader_status["commit_index"]
    assert target >= max(written.values())
    assert "log compacted" in c[lid].log_text(), (
        "the leader never compacted its log (RAFT_SNAPSHOT_ENTRIES=50)"
    )

    c[fid].start()
    c.wait_caught_up(fid, target)
    wrong = []
    for key, value in [(f"early-{i}", f"e{i}") for i in range(10)] + [
        (f"snap-{i:03d}", f"value {i}") for i in range(300)
    ]:
        r = c.get(fid, key, stale=True)
        if r.status_code != 200 or r.json()["value"] != value:
            wrong.append(describe(r))
    assert not wrong, f"{len(wrong)} keys wrong on {fid}, e.g. {wrong[:3]}"
    assert "installed snapshot" in c[fid].log_text(), f"{fid} caught up without installing a snapshot"
    # It keeps following: a new write reaches it.
    last = c.write("after-snapshot", "yes")
    c.wait_caught_up(fid, last["index"])
    r = c.get(fid, "after-snapshot", stale=True)
    assert r.status_code == 200 and r.json()["value"] == "yes", describe(r)


# -- 10b. exactly-once retries across a leader change -------------------------------------


@pytest.mark.integration
def test_idempotent_retry_after_leader_change_is_applied_once(cluster: Cluster) -> None:
    c = cluster
    old, term = c.wait_for_leader()
    key = "once-across-leaders"
    headers = {"Idempotency-Key": "abc"}
    first = c.put(old, key, "v", headers=headers)
    assert first.status_code == 200, describe(first)
    index = first.json()["index"]
    # A few more writes, so that the token's entry is not the last one.
    for i in range(5):
        assert c.put(old, f"filler-{i}", "x").status_code == 200

    c[old].kill()
    new, _ = c.wait_for_leader(min_term=term + 1)

    def retry() -> tuple[bool, Any]:
        try:
            r = c.follow.put(c.kv_url(new, key), json={"value": "v"}, headers=headers)
        except httpx.HTTPError as error:
            return False, repr(error)
        if r.status_code == 503:
            return False, describe(r)
        return True, r

    again: httpx.Response = wait_until(retry, ELECTION_S, "an answer to the retry from the new leader")
    assert again.status_code == 200, describe(again)
    assert again.json() == first.json(), "the retry on the new leader did not return the first answer"
    r = c.follow.get(c.kv_url(new, key))
    assert as_written(r.json()) == {"key": key, "value": "v", "index": index}, (
        "the retry was applied a second time"
    )
