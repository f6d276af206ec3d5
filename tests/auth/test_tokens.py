"""Tokens any node of the cluster can check and no one else can make:
signed, expiring, bound to the user's revision, and useless to another
cluster."""

from __future__ import annotations

import base64
from pathlib import Path

import msgspec
import pytest

from raft_trio.auth import TokenError, issue_token, token_key, token_user, verify_token
from raft_trio.auth._tokens import Claims
from raft_trio.cli import main
from raft_trio.kv import (
    ROOT,
    AuthEnable,
    AuthState,
    Command,
    KeyValueStore,
    UserAdd,
    UserDelete,
    UserPassword,
    with_new_signing_key,
)
from raft_trio.storage import DurableStorage, backup_stream

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


def restored_auth(tmp_path: Path, backup: bytes, member: str, peers: str) -> AuthState:
    """The auth state a member restored with ``raft-trio snapshot restore`` starts from."""
    (tmp_path / "backup").write_bytes(backup)
    data_dir = tmp_path / member
    argv = ["snapshot", "restore", str(tmp_path / "backup"), "--data-dir", str(data_dir), "--id", member]
    assert main([*argv, "--peers", peers]) == 0
    storage = DurableStorage.open(data_dir, member)
    try:
        store = KeyValueStore()
        store.restore(storage.snapshot().data)
    finally:
        storage.close()
    return store.auth


def test_a_cluster_restored_from_a_backup_refuses_the_tokens_of_the_original(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A restored cluster is a new cluster: the restore gives it a signing
    key of its own (the same on every member restored alike), so a token
    the original issued, even one that has not expired, is refused there;
    the users, roles and the switch are the backup's, and logging in again
    gives a token the restored cluster accepts."""
    store = enabled_store()
    original = alice_token(store)
    backup = b"".join(backup_stream(store.revision, 2, store.snapshot(), "old-cluster", "n1"))
    peers = "a=http://127.0.0.1:1,b=http://127.0.0.1:2"
    member_a = restored_auth(tmp_path, backup, "a", peers)
    member_b = restored_auth(tmp_path, backup, "b", peers)
    capsys.readouterr()
    assert member_a.signing_key == member_b.signing_key != store.auth.signing_key
    assert len(member_a.signing_key) == len(store.auth.signing_key)
    assert member_a.enabled and member_a.user("alice") == store.auth.user("alice")
    with pytest.raises(TokenError, match="not signed by this cluster"):
        token_user(member_a, SECRET, original, NOW)
    alice = member_a.user("alice")
    assert alice is not None
    fresh = issue_token(token_key(member_a.signing_key, SECRET), "alice", alice.revision, 300, NOW)
    assert token_user(member_b, SECRET, fresh, NOW) == "alice"
    # Another restore of the same backup (other members) is another cluster.
    other = restored_auth(tmp_path, backup, "c", "c=http://127.0.0.1:3")
    assert other.signing_key not in (member_a.signing_key, store.auth.signing_key)


def test_a_backup_of_a_cluster_that_never_had_auth_restores_unchanged() -> None:
    store = KeyValueStore()
    store.apply(1, UserAdd("alice", "h"))
    plain = KeyValueStore()
    assert with_new_signing_key(store.snapshot(), "c") == store.snapshot()
    assert with_new_signing_key(plain.snapshot(), "c") == plain.snapshot()
    assert with_new_signing_key(b"", "c") == b""
