"""The peer signature: what it accepts, and every way it refuses."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
import trio
import trio.testing

from raft_trio.peer import auth as peer_auth
from raft_trio.peer.auth import SIGNATURE_HEADER, PeerAuthenticator, PeerAuthError
from raft_trio.testing.waiting import LoopTurns

from .peer_support import KeptNonces

SECRET = b"0123456789abcdef-cluster"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pair(clock: Clock | None = None) -> tuple[PeerAuthenticator, PeerAuthenticator]:
    clock = clock or Clock()
    return PeerAuthenticator(SECRET, "n1", clock), PeerAuthenticator(SECRET, "n2", clock)


async def test_a_signed_request_is_accepted_once() -> None:
    n1, n2 = pair()
    header = n1.sign("n2", b"body")[SIGNATURE_HEADER]
    await n2.verify("n1", header, b"body")
    with pytest.raises(PeerAuthError, match="replayed"):
        await n2.verify("n1", header, b"body")


async def test_each_signature_is_fresh() -> None:
    n1, n2 = pair()
    first, second = (n1.sign("n2", b"same body")[SIGNATURE_HEADER] for _ in range(2))
    assert first != second
    await n2.verify("n1", first, b"same body")
    await n2.verify("n1", second, b"same body")


@pytest.mark.parametrize(
    ("sender", "body", "secret", "recipient"),
    [
        ("n1", b"changed body", SECRET, "n2"),
        ("n3", b"body", SECRET, "n2"),  # another sender claimed
        ("n1", b"body", b"another-cluster-secret", "n2"),
        ("n1", b"body", SECRET, "n3"),  # signed for another node: no replay across nodes
    ],
    ids=["tampered body", "wrong sender", "wrong secret", "other recipient"],
)
async def test_a_signature_that_does_not_match_is_refused(
    sender: str, body: bytes, secret: bytes, recipient: str
) -> None:
    clock = Clock()
    signer = PeerAuthenticator(secret, "n1", clock)
    receiver = PeerAuthenticator(SECRET, "n2", clock)
    header = signer.sign(recipient, b"body")[SIGNATURE_HEADER]
    with pytest.raises(PeerAuthError, match="wrong peer signature"):
        await receiver.verify(sender, header, body)


@pytest.mark.parametrize("offset", [-31.0, 31.0])
async def test_a_timestamp_outside_the_window_is_refused(offset: float) -> None:
    signer_clock, receiver_clock = Clock(), Clock()
    n1 = PeerAuthenticator(SECRET, "n1", signer_clock)
    n2 = PeerAuthenticator(SECRET, "n2", receiver_clock)
    signer_clock.now += offset
    header = n1.sign("n2", b"body")[SIGNATURE_HEADER]
    with pytest.raises(PeerAuthError, match="away from this node's clock"):
        await n2.verify("n1", header, b"body")


async def test_a_replay_after_the_window_is_refused_by_its_timestamp() -> None:
    clock = Clock()
    n1, n2 = pair(clock)
    header = n1.sign("n2", b"body")[SIGNATURE_HEADER]
    await n2.verify("n1", header, b"body")
    clock.now += peer_auth.MAX_CLOCK_SKEW_S + 1
    with pytest.raises(PeerAuthError, match="away from this node's clock"):
        await n2.verify("n1", header, b"body")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "t=abc,n=0123456789abcdef,s=00",
        "t=1,n=short,s=00",
        "t=1,n=0123456789abcdef,s=",
        "t=" + "9" * 5000 + ",n=0123456789abcdef,s=00",  # no int() of a huge number
        "t=1,t=2,,,=,n=0123456789abcdef",
        "t=²,n=0123456789abcdef,s=00",  # "²".isdigit() is true, int("²") raises
    ],
)
async def test_a_missing_or_malformed_header_is_refused(header: str | None) -> None:
    _, n2 = pair()
    with pytest.raises(PeerAuthError):
        await n2.verify("n1", header, b"body")


async def test_the_nonce_memory_forgets_what_the_window_refuses_anyway() -> None:
    clock = Clock()
    n1, n2 = pair(clock)
    for _ in range(100):
        await n2.verify("n1", n1.sign("n2", b"x")[SIGNATURE_HEADER], b"x")
    assert len(n2._seen) == 100
    clock.now += peer_auth.MAX_CLOCK_SKEW_S + 1
    await n2.verify("n1", n1.sign("n2", b"x")[SIGNATURE_HEADER], b"x")
    assert len(n2._seen) == 1


async def test_the_nonce_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peer_auth, "MAX_REMEMBERED_NONCES", 10)
    n1, n2 = pair()
    for _ in range(50):
        await n2.verify("n1", n1.sign("n2", b"x")[SIGNATURE_HEADER], b"x")
    assert len(n2._seen) <= 10


async def test_a_request_signed_before_the_node_started_is_refused() -> None:
    """The nonces a node saw before a restart are gone; what was signed
    before it started cannot be told from a replay, and is refused."""
    clock = Clock()
    n1 = PeerAuthenticator(SECRET, "n1", clock)
    captured = n1.sign("n2", b"body")[SIGNATURE_HEADER]
    clock.now += 1.0
    restarted = PeerAuthenticator(SECRET, "n2", clock)
    with pytest.raises(PeerAuthError, match="signed before this node started"):
        await restarted.verify("n1", captured, b"body")
    await restarted.verify("n1", n1.sign("n2", b"body")[SIGNATURE_HEADER], b"body")


async def test_a_request_accepted_before_a_restart_is_refused_after_it_whatever_the_clocks() -> None:
    """The sender runs 10 s ahead, so requests it signed just before the
    receiver's restart look newer than the restart: the receiver kept what
    it accepted on disk and refuses their replays after the restart."""
    receiver_clock = Clock()
    sender_clock = Clock(receiver_clock.now + 10.0)
    sender = PeerAuthenticator(SECRET, "n1", sender_clock)
    kept = KeptNonces()
    receiver = PeerAuthenticator(SECRET, "n2", receiver_clock, kept)
    captured = [sender.sign("n2", b"body")[SIGNATURE_HEADER] for _ in range(2)]
    for header in captured:
        await receiver.verify("n1", header, b"body")
    receiver_clock.now += 2.0
    sender_clock.now += 2.0
    restarted = PeerAuthenticator(SECRET, "n2", receiver_clock, kept)
    for header in captured:
        with pytest.raises(PeerAuthError, match="replayed"):
            await restarted.verify("n1", header, b"body")
    await restarted.verify("n1", sender.sign("n2", b"body")[SIGNATURE_HEADER], b"body")


async def test_what_the_window_refuses_anyway_leaves_the_disk() -> None:
    clock = Clock()
    sender = PeerAuthenticator(SECRET, "n1", clock)
    kept = KeptNonces()
    receiver = PeerAuthenticator(SECRET, "n2", clock, kept)
    await receiver.verify("n1", sender.sign("n2", b"a")[SIGNATURE_HEADER], b"a")
    clock.now += peer_auth.MAX_CLOCK_SKEW_S + 1
    second = sender.sign("n2", b"b")[SIGNATURE_HEADER]
    await receiver.verify("n1", second, b"b")
    assert [nonce for _, nonce, _ in kept.saved] == [second.split(",")[1].removeprefix("n=")]


class SteppingClock:
    """Returns ``now``, then moves on by ``step``: time passing between two
    readings within one check (the MAC over a large body takes real time)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.step = 0.0

    def __call__(self) -> float:
        now = self.now
        self.now += self.step
        return now


async def test_a_replay_at_the_edge_of_the_window_is_refused() -> None:
    """Found by review: the window was checked with one reading of the
    clock and the nonces it refuses anyway were forgotten with a second,
    taken after the MAC over the body (2 ms and more for a snapshot): a
    replay just inside the window found its nonce forgotten."""
    clock = SteppingClock()
    sender = PeerAuthenticator(SECRET, "n1", clock)
    receiver = PeerAuthenticator(SECRET, "n2", clock)
    signed_at = clock.now
    captured = sender.sign("n2", b"body")[SIGNATURE_HEADER]
    await receiver.verify("n1", captured, b"body")
    clock.now = signed_at + peer_auth.MAX_CLOCK_SKEW_S  # the window still lets it in
    clock.step = 0.001
    with pytest.raises(PeerAuthError, match="replayed"):
        await receiver.verify("n1", captured, b"body")


async def test_a_replay_after_a_restart_at_the_edge_of_the_window_is_refused() -> None:
    """The same with the nonces kept across a restart, from a sender 10 s
    ahead (so that the start-time check does not refuse it first)."""
    receiver_clock = SteppingClock()
    sender_clock = SteppingClock(receiver_clock.now + 10.0)
    sender = PeerAuthenticator(SECRET, "n1", sender_clock)
    kept = KeptNonces()
    receiver = PeerAuthenticator(SECRET, "n2", receiver_clock, kept)
    signed_at = sender_clock.now
    captured = sender.sign("n2", b"body")[SIGNATURE_HEADER]
    await receiver.verify("n1", captured, b"body")
    receiver_clock.now += 2.0
    restarted = PeerAuthenticator(SECRET, "n2", receiver_clock, kept)
    receiver_clock.now = signed_at + peer_auth.MAX_CLOCK_SKEW_S
    receiver_clock.step = 0.001
    with pytest.raises(PeerAuthError, match="replayed"):
        await restarted.verify("n1", captured, b"body")


async def test_a_large_body_is_checked_while_the_event_loop_runs() -> None:
    """The MAC over a snapshot's body runs on a worker thread: a task that
    only yields keeps running meanwhile (on the loop, 32 MiB would have
    held it for 30 ms and more)."""
    n1, n2 = pair()
    body = b"s" * (32 << 20)
    header = n1.sign("n2", body)[SIGNATURE_HEADER]
    turns = LoopTurns()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(turns.run)
        await trio.lowlevel.checkpoint()
        await n2.verify("n1", header, body)
        turns.stop()
    assert turns.count > 50
    with pytest.raises(PeerAuthError, match="wrong peer signature"):
        await n2.verify("n1", n1.sign("n2", body)[SIGNATURE_HEADER], body[:-1] + b"t")


class FrozenDisk(KeptNonces):
    """A ``peer-nonces.json`` on a disk that holds each write until told."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = threading.Event()
        self.thaw = threading.Event()
        self.writes = 0

    def save(self, accepted: Sequence[tuple[str, str, int]]) -> None:
        self.writing.set()
        assert self.thaw.wait(30)
        self.writes += 1
        super().save(accepted)


async def test_the_nonces_are_written_off_the_loop_and_each_request_waits_for_its_own() -> None:
    """Written on the event loop, the nonce memory froze the node with a
    frozen disk. The write runs on a worker thread:
    the loop goes on (a replay of the request being recorded is refused at
    once), no request returns before a write that holds its nonce, and the
    writes come one at a time, the next one holding every nonce that
    waited for it."""
    clock = Clock()
    sender = PeerAuthenticator(SECRET, "n1", clock)
    disk = FrozenDisk()
    receiver = PeerAuthenticator(SECRET, "n2", clock, disk)
    headers = [sender.sign("n2", b"body")[SIGNATURE_HEADER] for _ in range(3)]
    nonces = [header.split(",")[1].removeprefix("n=") for header in headers]
    returned: list[tuple[str, list[str]]] = []

    async def accept(header: str) -> None:
        await receiver.verify("n1", header, b"body")
        returned.append((header, [nonce for _, nonce, _ in disk.saved]))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept, headers[0])
        await trio.to_thread.run_sync(disk.writing.wait)
        with pytest.raises(PeerAuthError, match="replayed"):
            await receiver.verify("n1", headers[0], b"body")
        nursery.start_soon(accept, headers[1])
        nursery.start_soon(accept, headers[2])
        await trio.testing.wait_all_tasks_blocked()
        assert returned == []
        disk.thaw.set()
    assert {header for header, _ in returned} == set(headers)
    for header, saved in returned:
        assert header.split(",")[1].removeprefix("n=") in saved
    assert disk.writes == 2
    assert sorted(nonce for _, nonce, _ in disk.saved) == sorted(nonces)


class HeldDigest:
    """The receiver's digest of a body, held on its worker thread until
    released (a large body's takes tens of milliseconds there)."""

    def __init__(self, receiver: PeerAuthenticator) -> None:
        self.release = threading.Event()
        self._digest = receiver._digest
        receiver._digest = self  # type: ignore[method-assign,assignment]

    def __call__(self, *args: Any) -> str:
        if threading.current_thread() is not threading.main_thread():
            assert self.release.wait(10)
        return self._digest(*args)


async def test_a_replay_whose_window_closes_while_its_mac_runs_is_refused() -> None:
    """Found by review: the replay check came after the MAC's wait, and a
    request verified meanwhile (its clock reading past the captured one's
    window) forgot the captured nonce, so a replay that had passed the
    window was accepted a second time. The check now comes first."""
    clock = Clock()
    sender, receiver = PeerAuthenticator(SECRET, "n1", clock), PeerAuthenticator(SECRET, "n2", clock)
    big = b"s" * peer_auth.MAC_OFF_LOOP_BYTES
    signed_at = clock.now
    captured = sender.sign("n2", big)[SIGNATURE_HEADER]
    await receiver.verify("n1", captured, big)
    held = HeldDigest(receiver)
    clock.now = signed_at + peer_auth.MAX_CLOCK_SKEW_S - 0.001  # still in the window
    outcome: list[object] = []

    async def replay() -> None:
        try:
            await receiver.verify("n1", captured, big)
            outcome.append("accepted")
        except PeerAuthError as error:
            outcome.append(error)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(replay)
        await trio.testing.wait_all_tasks_blocked()
        clock.now = signed_at + peer_auth.MAX_CLOCK_SKEW_S + 0.01
        await receiver.verify("n1", sender.sign("n2", b"x")[SIGNATURE_HEADER], b"x")
        held.release.set()
    assert len(outcome) == 1 and isinstance(outcome[0], PeerAuthError), outcome
    assert "replayed" in str(outcome[0])


async def test_a_copy_arriving_while_the_first_is_checked_is_refused() -> None:
    clock = Clock()
    sender, receiver = PeerAuthenticator(SECRET, "n1", clock), PeerAuthenticator(SECRET, "n2", clock)
    big = b"s" * peer_auth.MAC_OFF_LOOP_BYTES
    header = sender.sign("n2", big)[SIGNATURE_HEADER]
    held = HeldDigest(receiver)
    accepted: list[int] = []

    async def deliver(n: int) -> None:
        await receiver.verify("n1", header, big)
        accepted.append(n)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(deliver, 1)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(PeerAuthError, match="replayed"), trio.fail_after(5):
            await receiver.verify("n1", header, big)  # at once: no second MAC
        held.release.set()
    assert accepted == [1]


async def test_a_request_whose_mac_fails_does_not_use_up_its_nonce() -> None:
    """Bytes that fail the MAC (an altered body under a captured header)
    leave the nonce to the request that holds it."""
    n1, n2 = pair()
    header = n1.sign("n2", b"body")[SIGNATURE_HEADER]
    with pytest.raises(PeerAuthError, match="wrong peer signature"):
        await n2.verify("n1", header, b"altered")
    await n2.verify("n1", header, b"body")
    with pytest.raises(PeerAuthError, match="replayed"):
        await n2.verify("n1", header, b"body")


async def test_requests_waiting_for_a_frozen_disk_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond MAX_WAITING_TO_KEEP requests waiting for the nonce memory's
    write, new ones are refused at once: a frozen disk does not pile up
    tasks and connections while peers retry."""
    monkeypatch.setattr(peer_auth, "MAX_WAITING_TO_KEEP", 3)
    clock = Clock()
    sender = PeerAuthenticator(SECRET, "n1", clock)
    disk = FrozenDisk()
    receiver = PeerAuthenticator(SECRET, "n2", clock, disk)
    done: list[str] = []

    async def accept() -> None:
        await receiver.verify("n1", sender.sign("n2", b"body")[SIGNATURE_HEADER], b"body")
        done.append("accepted")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept)
        await trio.to_thread.run_sync(disk.writing.wait)
        for _ in range(3):
            nursery.start_soon(accept)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(PeerAuthError, match="3 requests wait"):
            await receiver.verify("n1", sender.sign("n2", b"body")[SIGNATURE_HEADER], b"body")
        disk.thaw.set()
    assert done == ["accepted"] * 4
    await receiver.verify("n1", sender.sign("n2", b"body")[SIGNATURE_HEADER], b"body")


async def test_freshness_is_judged_when_the_head_arrives_not_after_a_long_upload() -> None:
    """A snapshot is signed, then uploaded: one that took longer than the
    window was refused at its end, every time (a review's finding)."""
    clock = Clock()
    n1, n2 = pair(clock)
    header = n1.sign("n2", b"snapshot")[SIGNATURE_HEADER]
    pending = n2.begin("n1", header)
    clock.now += peer_auth.MAX_CLOCK_SKEW_S + 10  # the upload
    await n2.finish(pending, b"snapshot")


async def test_a_copy_whose_head_comes_while_the_first_uploads_is_a_replay() -> None:
    clock = Clock()
    n1, n2 = pair(clock)
    header = n1.sign("n2", b"body")[SIGNATURE_HEADER]
    first = n2.begin("n1", header)
    with pytest.raises(PeerAuthError, match="replayed"):
        n2.begin("n1", header)  # its nonce is reserved for the first
    clock.now += peer_auth.MAX_CLOCK_SKEW_S + 10  # the first finishes late
    await n2.finish(first, b"body")
    with pytest.raises(PeerAuthError):
        n2.begin("n1", header)  # and no copy passes the window any more


async def test_a_request_whose_body_never_came_releases_its_nonce() -> None:
    """Its head was checked and its nonce reserved; the connection broke:
    the sender's retry (the same request) is not a replay."""
    n1, n2 = pair(Clock())
    header = n1.sign("n2", b"body")[SIGNATURE_HEADER]
    n2.abandon(n2.begin("n1", header))
    await n2.finish(n2.begin("n1", header), b"body")


@pytest.mark.parametrize(
    ("sender", "secret", "recipient"),
    [
        ("n3", SECRET, "n2"),
        ("n1", b"another-cluster-secret", "n2"),
        ("n1", SECRET, "n3"),
    ],
    ids=["wrong sender", "wrong secret", "other recipient"],
)
async def test_a_head_that_was_not_signed_so_is_refused_before_the_body(
    sender: str, secret: bytes, recipient: str
) -> None:
    """The MAC covers the head and the body's digest, not the body: someone
    without the secret is refused by ``begin``, before any of the body is
    read (version 1's MAC over the body made the node read and hash up to
    a GiB of a stranger's first)."""
    clock = Clock()
    header = PeerAuthenticator(secret, "n1", clock).sign(recipient, b"body")[SIGNATURE_HEADER]
    receiver = PeerAuthenticator(SECRET, "n2", clock)
    with pytest.raises(PeerAuthError, match="wrong peer signature"):
        receiver.begin(sender, header)
    # Nothing was reserved: the genuine request still passes.
    await receiver.verify(
        "n1", PeerAuthenticator(SECRET, "n1", clock).sign("n2", b"body")[SIGNATURE_HEADER], b"body"
    )


async def test_a_stranger_cannot_swap_the_digest() -> None:
    """The digest is part of what is signed: a captured head with the digest
    of another body is refused at the head."""
    n1, n2 = pair()
    header = n1.sign("n2", b"body")[SIGNATURE_HEADER]
    other = peer_auth.PeerAuthenticator._digest(b"evil")
    fields = dict(part.partition("=")[::2] for part in header.split(","))
    forged = f"t={fields['t']},n={fields['n']},d={other},s={fields['s']}"
    with pytest.raises(PeerAuthError, match="wrong peer signature"):
        n2.begin("n1", forged)


async def test_a_body_that_differs_from_its_digest_is_refused_and_its_retry_accepted() -> None:
    n1, n2 = pair()
    header = n1.sign("n2", b"body")[SIGNATURE_HEADER]
    with pytest.raises(PeerAuthError, match="the body differs"):
        await n2.finish(n2.begin("n1", header), b"bodY")
    # The nonce was not accepted: the same request, intact, still is.
    await n2.verify("n1", header, b"body")


@pytest.mark.parametrize("digest", ["", "abc", "A" * 64, "g" * 64, "0" * 63])
async def test_a_malformed_digest_is_refused(digest: str) -> None:
    n1, n2 = pair()
    fields = dict(part.partition("=")[::2] for part in n1.sign("n2", b"x")[SIGNATURE_HEADER].split(","))
    with pytest.raises(PeerAuthError, match="malformed"):
        n2.begin("n1", f"t={fields['t']},n={fields['n']},d={digest},s={fields['s']}")
