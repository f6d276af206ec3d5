"""Users, roles and grants in the replicated state: one rule per test,
and the check on apply, which keeps a revocation from being bypassed by a
command that waited in the log."""

from __future__ import annotations

import msgspec
import pytest

from raft_trio.kv import (
    ROOT,
    AuthChanged,
    AuthDisable,
    AuthEnable,
    AuthRefused,
    Caller,
    Command,
    Delete,
    Deleted,
    Grant,
    KeyValueStore,
    LeaseGrant,
    LeaseGranted,
    LeaseRevoke,
    LeaseRevoked,
    OpGet,
    OpPut,
    PermissionDenied,
    Put,
    Role,
    RoleAdd,
    RoleDelete,
    RoleGrant,
    RoleRevoke,
    Txn,
    TxnDone,
    User,
    UserAdd,
    UserDelete,
    UserGrantRole,
    UserPassword,
    UserRevokeRole,
    Written,
    decode_command,
    encode_command,
    valid_name,
)

KEY = b"k" * 32


class Log:
    """A store fed commands at consecutive indexes."""

    def __init__(self) -> None:
        self.store = KeyValueStore()
        self.index = 0

    def __call__(self, command: Command) -> object:
        self.index += 1
        return self.store.apply(self.index, command)

    def caller(self, user: str) -> Caller:
        return Caller(user)


def with_root_and_alice() -> Log:
    """root, and alice with role ``app``: readwrite on the prefix ``app/``."""
    log = Log()
    log(UserAdd(ROOT, "hash-r"))
    log(UserAdd("alice", "hash-a"))
    log(RoleAdd("app"))
    log(RoleGrant("app", Grant("readwrite", "app/", "prefix")))
    log(UserGrantRole("alice", "app"))
    return log


# -- users and roles ---------------------------------------------------------------


def test_a_new_user_has_no_roles_and_the_revision_of_its_entry() -> None:
    log = Log()
    assert log(UserAdd("alice", "h")) == AuthChanged(1)
    assert log.store.auth.user("alice") == User("alice", "h", (), 1)
    assert log.store.auth.revision == 1


def test_the_user_root_holds_the_role_root_from_the_start() -> None:
    log = Log()
    log(UserAdd(ROOT, "h"))
    assert log.store.auth.is_root(ROOT)


def test_adding_a_user_or_role_twice_is_refused_and_changes_nothing() -> None:
    log = with_root_and_alice()
    revision = log.store.auth.revision
    assert log(UserAdd("alice", "other")) == AuthRefused("user_exists", "user 'alice' exists already", 6)
    assert log(RoleAdd("app")) == AuthRefused("role_exists", "role 'app' exists already", 7)
    assert log.store.auth.user("alice").password_hash == "hash-a"  # type: ignore[union-attr]
    assert log.store.auth.revision == revision


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (UserDelete("bob"), "user_not_found"),
        (UserPassword("bob", "h"), "user_not_found"),
        (UserGrantRole("bob", "app"), "user_not_found"),
        (UserGrantRole("alice", "nope"), "role_not_found"),
        (RoleGrant("nope", Grant("read", "k")), "role_not_found"),
        (RoleDelete("nope"), "role_not_found"),
        (RoleRevoke("app", "other/", "prefix"), "grant_not_found"),
        (RoleRevoke("app", "app/", "key"), "grant_not_found"),
        (RoleGrant(ROOT, Grant("read", "k")), "root_protected"),
        (RoleDelete(ROOT), "root_protected"),
    ],
)
def test_a_command_naming_what_is_not_there_is_refused(command: Command, code: str) -> None:
    log = with_root_and_alice()
    result = log(command)
    assert isinstance(result, AuthRefused) and result.code == code


def test_granting_a_role_held_already_changes_nothing_and_keeps_the_revision() -> None:
    log = with_root_and_alice()
    revision = log.store.auth.revision
    assert log(UserGrantRole("alice", "app")) == AuthChanged(revision, changed=False)


def test_a_grant_on_the_same_target_replaces_the_old_one() -> None:
    log = with_root_and_alice()
    log(RoleGrant("app", Grant("read", "app/", "prefix")))
    assert log.store.auth.roles["app"].grants == (Grant("read", "app/", "prefix"),)


def test_revoking_takes_the_grant_on_exactly_that_target() -> None:
    log = with_root_and_alice()
    log(RoleGrant("app", Grant("read", "app/x")))
    assert isinstance(log(RoleRevoke("app", "app/", "prefix")), AuthChanged)
    assert log.store.auth.roles["app"].grants == (Grant("read", "app/x"),)


def test_deleting_a_role_takes_it_from_every_user() -> None:
    log = with_root_and_alice()
    log(RoleDelete("app"))
    assert log.store.auth.user("alice").roles == ()  # type: ignore[union-attr]


def test_a_new_password_gives_the_user_a_new_revision() -> None:
    log = with_root_and_alice()
    log(UserPassword("alice", "new"))
    assert log.store.auth.user("alice") == User("alice", "new", ("app",), log.index)


# -- auth on and off -----------------------------------------------------------------


def test_auth_cannot_be_enabled_without_a_root_user_holding_the_root_role() -> None:
    log = Log()
    result = log(AuthEnable(KEY))
    assert isinstance(result, AuthRefused) and result.code == "root_missing"
    log(UserAdd(ROOT, "h"))
    log(UserRevokeRole(ROOT, ROOT))  # allowed while auth is off
    assert isinstance(log(AuthEnable(KEY)), AuthRefused)
    log(UserGrantRole(ROOT, ROOT))
    assert log(AuthEnable(KEY)) == AuthChanged(6)
    assert log.store.auth.enabled


def test_root_cannot_be_taken_apart_while_auth_is_enabled() -> None:
    log = with_root_and_alice()
    log(AuthEnable(KEY))
    for command in (UserDelete(ROOT), UserRevokeRole(ROOT, ROOT)):
        result = log(command)
        assert isinstance(result, AuthRefused) and result.code == "root_protected"
    log(AuthDisable())
    assert log(UserDelete(ROOT)) == AuthChanged(log.index)


def test_the_signing_key_is_the_first_enables_and_never_changes() -> None:
    log = with_root_and_alice()
    log(AuthEnable(KEY))
    log(AuthDisable())
    log(AuthEnable(b"x" * 32))
    assert log.store.auth.signing_key == KEY


# -- checked again on apply ------------------------------------------------------------


def test_a_permitted_write_is_applied_and_a_forbidden_one_changes_nothing() -> None:
    log = with_root_and_alice()
    log(AuthEnable(KEY))
    assert isinstance(log(Put("app/x", "v", caller=log.caller("alice"))), Written)
    result = log(Put("elsewhere", "v", caller=log.caller("alice")))
    assert result == PermissionDenied("no write permission on 'elsewhere'", log.index)
    assert log.store.get("elsewhere") is None


def test_a_write_under_a_token_of_an_older_password_or_user_changes_nothing() -> None:
    """A token names its user's revision; a write admitted under it that
    applies after the password changed, or after the user was deleted and
    made again, is refused there: the token it came with no longer holds."""
    log = with_root_and_alice()
    log(AuthEnable(KEY))
    alice = log.store.auth.user("alice")
    assert alice is not None
    admitted = Caller("alice", alice.revision)
    assert isinstance(log(Put("app/x", "v", caller=admitted)), Written)
    log(UserPassword("alice", "hash-new"))
    result = log(Put("app/x", "w", caller=admitted))
    assert isinstance(result, PermissionDenied) and "changed" in result.error
    renewed = log.store.auth.user("alice")
    assert renewed is not None
    assert isinstance(log(Put("app/x", "w", caller=Caller("alice", renewed.revision))), Written)
    log(UserDelete("alice"))
    log(UserAdd("alice", "hash-a"))
    log(UserGrantRole("alice", "app"))
    assert isinstance(log(Delete("app/x", caller=Caller("alice", renewed.revision))), PermissionDenied)
    assert isinstance(log(Delete("app/x", caller=Caller("alice"))), Deleted)  # a certificate's


def test_compare_and_set_needs_read_too_since_a_failed_compare_shows_the_value() -> None:
    log = with_root_and_alice()
    log(RoleAdd("writer"))
    log(RoleGrant("writer", Grant("write", "w")))
    log(UserGrantRole("alice", "writer"))
    log(AuthEnable(KEY))
    assert isinstance(log(Put("w", "v", caller=log.caller("alice"))), Written)
    result = log(Put("w", "v2", check=True, expect="x", caller=log.caller("alice")))
    assert isinstance(result, PermissionDenied) and "read" in result.error


def test_a_write_that_waited_in_the_log_while_its_permission_was_revoked_is_denied() -> None:
    log = with_root_and_alice()
    log(AuthEnable(KEY))
    checked = log.caller("alice")
    log(RoleRevoke("app", "app/", "prefix"))
    result = log(Put("app/x", "v", caller=checked))
    assert isinstance(result, PermissionDenied) and "app/x" in result.error
    assert log.store.get("app/x") is None
    assert len(log.store.history) == 0


def test_a_write_of_a_user_deleted_meanwhile_is_denied() -> None:
    log = with_root_and_alice()
    log(AuthEnable(KEY))
    checked = log.caller("alice")
    log(UserDelete("alice"))
    result = log(Delete("app/x", caller=checked))
    assert isinstance(result, PermissionDenied) and "no longer exists" in result.error


def test_an_anonymous_write_applied_after_auth_was_enabled_is_denied() -> None:
    log = with_root_and_alice()
    anonymous = log.caller("")
    log(AuthEnable(KEY))
    assert isinstance(log(Put("k", "v", caller=anonymous)), PermissionDenied)


def test_auth_management_of_a_non_root_caller_is_denied_once_auth_is_on() -> None:
    log = with_root_and_alice()
    before_enable = log.caller("alice")
    log(AuthEnable(KEY))
    result = log(UserGrantRole("alice", ROOT, caller=before_enable))
    assert isinstance(result, PermissionDenied)
    assert not log.store.auth.is_root("alice")


def test_root_and_the_nodes_own_commands_pass() -> None:
    log = with_root_and_alice()
    log(LeaseGrant(10))
    lease = log.index
    log(Put("app/x", "v", lease=lease))
    log(AuthEnable(KEY))
    assert isinstance(log(Put("secret", "v", caller=Caller(ROOT))), Written)
    assert log(LeaseRevoke(lease)) == LeaseRevoked(lease, True, ["app/x"], log.index)  # expiry


def test_a_transaction_is_checked_again_on_every_compare_and_op() -> None:
    log = with_root_and_alice()
    log(AuthEnable(KEY))
    checked = log.caller("alice")
    log(RoleGrant("app", Grant("read", "app/", "prefix")))  # no more write
    reading = Txn([], [OpGet("app/a")], [])
    writing = Txn([], [OpGet("app/a")], [OpPut("app/b", "v")])
    assert isinstance(log(Txn(reading.compare, reading.success, reading.failure, caller=checked)), TxnDone)
    assert isinstance(
        log(Txn(writing.compare, writing.success, writing.failure, caller=checked)), PermissionDenied
    )


def test_revoking_a_lease_needs_write_on_every_key_attached_at_apply() -> None:
    log = with_root_and_alice()
    log(AuthEnable(KEY))
    alice = log.caller("alice")
    assert isinstance(log(LeaseGrant(10, caller=alice)), LeaseGranted)
    lease = log.index
    log(Put("app/x", "v", lease=lease, caller=alice))
    log(Put("secret", "v", lease=lease, caller=log.caller(ROOT)))
    result = log(LeaseRevoke(lease, caller=log.caller("alice")))
    # The refusal does not name the key: alice may not know it exists.
    assert isinstance(result, PermissionDenied) and "secret" not in result.error
    assert "every key attached to the lease" in result.error
    assert log.store.leases[lease].keys == {"app/x", "secret"}
    log(Delete("secret", caller=log.caller(ROOT)))
    assert isinstance(log(LeaseRevoke(lease, caller=log.caller("alice"))), LeaseRevoked)


def test_a_retried_command_returns_its_first_answer_also_after_a_revocation() -> None:
    log = with_root_and_alice()
    log(AuthEnable(KEY))
    put = Put("app/x", "v", token="t1", caller=log.caller("alice"))
    first = log(put)
    log(RoleRevoke("app", "app/", "prefix"))
    assert log(put) == first


def test_a_user_made_again_gets_nothing_of_the_deleted_ones_remembered_answers() -> None:
    """A user deleted and made again under the same name is someone new:
    the same request under the same Idempotency-Key is applied, not
    answered with what the deleted user's request did."""
    log = with_root_and_alice()
    log(AuthEnable(KEY))
    put = Put("app/x", "v", token="t1", caller=log.caller("alice"))
    first = log(put)
    assert isinstance(first, Written)
    log(UserDelete("alice"))
    log(UserAdd("alice", "hash-a2"))
    log(UserGrantRole("alice", "app"))
    again = log(Put("app/x", "v", token="t1", caller=log.caller("alice")))
    assert isinstance(again, Written) and again.index > first.index
    # The other users' remembered answers stay.
    root_put = Put("app/y", "v", token="t2", caller=log.caller(ROOT))
    answered = log(root_put)
    log(UserDelete("alice"))
    assert log(root_put) == answered


def test_with_auth_off_nothing_is_checked() -> None:
    log = with_root_and_alice()
    assert isinstance(log(Put("anything", "v", caller=Caller(""))), Written)
    assert isinstance(log(Delete("anything", caller=Caller("nobody"))), Deleted)


# -- snapshots and the log's format ------------------------------------------------------


def test_a_snapshot_restores_users_roles_grants_the_flag_the_revision_and_the_key() -> None:
    log = with_root_and_alice()
    log(AuthEnable(KEY))
    restored = KeyValueStore()
    restored.restore(log.store.snapshot())
    auth, original = restored.auth, log.store.auth
    assert (auth.enabled, auth.revision, auth.signing_key) == (True, original.revision, KEY)
    assert auth.users == original.users
    assert auth.roles == original.roles
    assert restored.permissions.may_key("alice", "write", "app/1")
    assert not restored.permissions.may_key("alice", "read", "other")


def test_a_snapshot_from_before_auth_restores_with_auth_off() -> None:
    """A snapshot of the previous format has no ``auth`` field at all."""

    class PreviousFormat(msgspec.Struct):
        applied: int
        sessions: list[object]
        kvs: list[tuple[str, str, int, int, int, int]]
        leases: list[tuple[int, int]]
        started: list[str]

    old = msgspec.msgpack.encode(PreviousFormat(3, [], [("a", "1", 2, 3, 2, 0)], [], ["n1"]))
    store = with_root_and_alice().store
    store.restore(old)
    assert store.get("a") is not None
    assert not store.auth.enabled and store.auth.users == {} and set(store.auth.roles) == {ROOT}


def test_a_store_that_never_saw_auth_writes_no_auth_into_its_snapshot() -> None:
    log = Log()
    log(Put("a", "1"))
    raw = msgspec.msgpack.decode(log.store.snapshot())
    assert raw["auth"] is None


def test_auth_commands_and_stamped_commands_survive_the_log_encoding() -> None:
    commands: list[Command] = [
        AuthEnable(KEY, token="t", ts=3, caller=Caller(ROOT)),
        AuthDisable(),
        UserAdd("u", None),
        UserPassword("u", "h"),
        UserGrantRole("u", "r"),
        UserRevokeRole("u", "r"),
        UserDelete("u"),
        RoleAdd("r"),
        RoleGrant("r", Grant("readwrite", "a", "range", "b")),
        RoleRevoke("r", "a", "range", "b"),
        RoleDelete("r"),
        Put("k", "v", caller=Caller("u")),
        LeaseRevoke(3, caller=Caller("")),
    ]
    for command in commands:
        assert decode_command(encode_command(command)) == command


def test_a_put_written_before_callers_existed_decodes_without_one() -> None:
    old_put = msgspec.msgpack.encode(["put", "k", "v", False, None, None, 17, 0])
    assert decode_command(old_put) == Put("k", "v", ts=17)


def test_role_records_keep_their_grants_sorted() -> None:
    log = with_root_and_alice()
    log(RoleGrant("app", Grant("read", "a")))
    assert log.store.auth.roles["app"] == Role(
        "app", (Grant("read", "a"), Grant("readwrite", "app/", "prefix"))
    )


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("alice", True),
        ("svc.web-1@eu_west", True),
        ("", False),
        ("-x", False),
        ("a/b", False),
        ("a" * 129, False),
    ],
)
def test_names_are_plain_words(name: str, valid: bool) -> None:
    assert valid_name(name) is valid
