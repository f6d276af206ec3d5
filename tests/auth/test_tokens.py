"""Tokens any node of the cluster can check and no one else can make:
signed, expiring, bound to the user's revision, and useless to another
cluster."""

from __future__ import annotations

import base64

import msgspec
import pytest

from raft_trio.auth import TokenError, issue_token, token_key, token_user, verify_token
from raft_trio.auth._tokens import Claims
from raft_trio.kv import ROOT, AuthEnable, Command, KeyValueStore, UserAdd, UserDelete, UserPassword

NOW = 1_800_000_000.0
SECRET = b"s" * 32


def enabled_store(signing_key: bytes = b"k" * 32) -> KeyValueStore:
    store = KeyValueStore()
    commands: list[Command] = [UserAdd(ROOT, "h"), UserAdd("alice", "h"), AuthEnable(signing_key)]
    for index, command in enumerate(commands, start=1):
        store.apply(index, command)
    return store


def alice_token(
    store: KeyValueStore, *, secret: bytes | None = SECRET, ttl: int = 300, now: float = NOW
) -> str:
    user = store.auth.user("alice")
    assert user is not None
    return issue_token(token_key(store.auth.signing_key, secret), "alice", user.revision, ttl, now)


def test_a_token_proves_its_user_until_it_expires() -> None:
    store = enabled_store()
    token = alice_token(store, ttl=300)
    assert token_user(store.auth, SECRET, token, NOW) == "alice"
    assert token_user(store.auth, SECRET, token, NOW + 299) == "alice"
    with pytest.raises(TokenError, match="expired"):
        token_user(store.auth, SECRET, token, NOW + 300)


def test_every_node_of_the_cluster_accepts_it() -> None:
    """Any node holds the same replicated key, so any node checks it."""
    leader, follower = enabled_store(), KeyValueStore()
    follower.restore(leader.snapshot())
    assert token_user(follower.auth, SECRET, alice_token(leader), NOW) == "alice"


def test_a_token_of_another_cluster_is_refused() -> None:
    ours, theirs = enabled_store(b"a" * 32), enabled_store(b"b" * 32)
    with pytest.raises(TokenError, match="not signed by this cluster"):
        token_user(ours.auth, SECRET, alice_token(theirs), NOW)


def test_the_cluster_secret_is_part_of_the_key() -> None:
    """A backup holds the signing key; without the cluster secret it does
    not make tokens."""
    store = enabled_store()
    forged = alice_token(store, secret=None)
    with pytest.raises(TokenError, match="not signed"):
        token_user(store.auth, SECRET, forged, NOW)
    assert token_user(store.auth, None, forged, NOW) == "alice"


def test_a_changed_claim_breaks_the_signature() -> None:
    store = enabled_store()
    prefix, claims, mac = alice_token(store).split(".")
    decoded = msgspec.msgpack.decode(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)), type=Claims)
    for forged_claims in (
        msgspec.structs.replace(decoded, user=ROOT),
        msgspec.structs.replace(decoded, expires=decoded.expires + 3600),
    ):
        body = base64.urlsafe_b64encode(msgspec.msgpack.encode(forged_claims)).rstrip(b"=").decode()
        with pytest.raises(TokenError, match="not signed"):
            token_user(store.auth, SECRET, f"{prefix}.{body}.{mac}", NOW)


@pytest.mark.parametrize(
    "garbage", ["", "rt1", "rt1..", "rt1.!!!.!!!", "rt2.a.b", "Bearer x", "rt1.a.b.c", "x" * 5000, "rt1.é.é"]
)
def test_garbage_is_a_token_error_and_nothing_else(garbage: str) -> None:
    with pytest.raises(TokenError):
        verify_token(b"k" * 32, garbage, NOW)


def test_a_validly_signed_body_that_is_not_claims_is_malformed() -> None:
    import hashlib
    import hmac

    key = b"k" * 32
    body = "rt1." + base64.urlsafe_b64encode(b"\x93\x01\x02\x03").rstrip(b"=").decode()
    mac = (
        base64.urlsafe_b64encode(hmac.new(key, body.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    )
    with pytest.raises(TokenError, match="malformed"):
        verify_token(key, f"{body}.{mac}", NOW)


def test_a_token_replayed_after_its_user_was_deleted_is_refused_even_if_recreated() -> None:
    store = enabled_store()
    token = alice_token(store)
    store.apply(4, UserDelete("alice"))
    with pytest.raises(TokenError, match="no longer exists"):
        token_user(store.auth, SECRET, token, NOW)
    store.apply(5, UserAdd("alice", "h2"))
    with pytest.raises(TokenError, match="re-created"):
        token_user(store.auth, SECRET, token, NOW)


def test_a_new_password_ends_the_tokens_issued_before() -> None:
    store = enabled_store()
    token = alice_token(store)
    store.apply(4, UserPassword("alice", "h2"))
    with pytest.raises(TokenError, match="password changed"):
        token_user(store.auth, SECRET, token, NOW)
    assert token_user(store.auth, SECRET, alice_token(store), NOW) == "alice"


def test_no_token_is_good_where_auth_was_never_enabled() -> None:
    with pytest.raises(TokenError, match="never enabled"):
        token_user(KeyValueStore().auth, SECRET, alice_token(enabled_store()), NOW)
