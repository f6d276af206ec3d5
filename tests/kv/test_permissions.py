"""Who may read or write which keys: the interval rules, checked one by
one and against a brute-force model over a small alphabet (hypothesis)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from raft_trio.kv import (
    ROOT,
    AuthEnable,
    Command,
    Compare,
    Grant,
    KeyValueStore,
    OpDelete,
    OpGet,
    OpPut,
    OpRange,
    Permissions,
    RoleAdd,
    RoleGrant,
    Txn,
    UserAdd,
    UserGrantRole,
)
from raft_trio.kv._permissions import covers, grant_interval, merge


def store_with_grants(*grants: Grant, enabled: bool = True) -> KeyValueStore:
    store = KeyValueStore()
    commands: list[Command] = [UserAdd(ROOT, "h"), UserAdd("u", "h"), RoleAdd("r")]
    commands += [RoleGrant("r", grant) for grant in grants]
    commands += [UserGrantRole("u", "r")]
    if enabled:
        commands.append(AuthEnable(b"k" * 32))
    for index, command in enumerate(commands, start=1):
        store.apply(index, command)
    return store


def check(*grants: Grant) -> Permissions:
    return store_with_grants(*grants).permissions


def test_a_key_grant_covers_that_key_only() -> None:
    p = check(Grant("read", "a/b"))
    assert p.may_key("u", "read", "a/b")
    assert not p.may_key("u", "read", "a/b/c")
    assert not p.may_key("u", "read", "a/")
    assert not p.may_prefix("u", "read", "a/b")


def test_a_prefix_grant_covers_every_key_under_it_and_narrower_prefixes() -> None:
    p = check(Grant("write", "app/", "prefix"))
    assert p.may_key("u", "write", "app/")
    assert p.may_key("u", "write", "app/x/y")
    assert p.may_prefix("u", "write", "app/x")
    assert not p.may_prefix("u", "write", "app")  # "app0" is under it and not granted
    assert not p.may_key("u", "write", "app")


def test_a_range_grant_is_end_exclusive_and_may_be_open_ended() -> None:
    p = check(Grant("read", "b", "range", "d"))
    assert p.may("u", "read", "b", "d")
    assert p.may("u", "read", "c", "czz")
    assert not p.may_key("u", "read", "d")
    assert not p.may("u", "read", "b", None)
    open_ended = check(Grant("read", "m", "range", None))
    assert open_ended.may("u", "read", "x", None)
    assert not open_ended.may("u", "read", "a", None)


def test_the_empty_prefix_is_every_key() -> None:
    p = check(Grant("read", "", "prefix"))
    assert p.may("u", "read", "", None)
    assert p.may_key("u", "read", "\U0010ffff")


def test_read_and_write_are_separate_and_readwrite_is_both() -> None:
    p = check(Grant("read", "r"), Grant("write", "w"), Grant("readwrite", "rw"))
    assert p.may_key("u", "read", "r") and not p.may_key("u", "write", "r")
    assert p.may_key("u", "write", "w") and not p.may_key("u", "read", "w")
    assert p.may_key("u", "read", "rw") and p.may_key("u", "write", "rw")


def test_adjacent_grants_together_cover_a_range_that_neither_covers_alone() -> None:
    p = check(Grant("read", "a", "range", "c"), Grant("read", "c", "range", "e"), Grant("read", "e"))
    assert p.may("u", "read", "b", "e\0")
    assert not p.may("u", "read", "b", "e\0\0")


def test_unknown_users_may_nothing_and_root_may_everything() -> None:
    p = check(Grant("readwrite", "", "prefix"))
    assert not p.may_key("stranger", "read", "k")
    assert p.may("root", "write", "", None)


def test_with_auth_off_everyone_may_everything() -> None:
    p = store_with_grants(enabled=False).permissions
    assert p.may("stranger", "write", "", None)


def test_a_transaction_needs_read_on_compares_and_gets_and_write_on_changes_in_both_branches() -> None:
    p = check(Grant("read", "c/", "prefix"), Grant("readwrite", "w/", "prefix"))
    ok = Txn([Compare("c/1", "exists", "=", True)], [OpPut("w/1", "v"), OpGet("c/2")], [OpDelete("w/2")])
    assert p.txn_denial("u", ok) is None
    denials = [
        Txn([Compare("x", "exists", "=", True)], [], []),
        Txn([], [], [OpPut("c/1", "v")]),
        Txn([], [OpDelete("c/1")], []),
        Txn([], [OpGet("x")], []),
        Txn([], [OpRange("c")], []),
    ]
    for txn in denials:
        assert p.txn_denial("u", txn) is not None, txn


def test_a_grant_changed_after_a_check_is_seen_by_the_next_one() -> None:
    store = store_with_grants(Grant("read", "a"))
    assert not store.permissions.may_key("u", "read", "b")
    store.apply(99, RoleGrant("r", Grant("read", "b")))
    assert store.permissions.may_key("u", "read", "b")


# -- against a model ----------------------------------------------------------------------

ALPHABET = "ab"
#: Every key of up to three letters: the model's universe.
UNIVERSE = ["".join(p) for n in range(4) for p in itertools.product(ALPHABET, repeat=n)]
texts = st.text(alphabet=ALPHABET, max_size=3)


def grants() -> st.SearchStrategy[Grant]:
    return st.one_of(
        st.builds(Grant, st.just("read"), texts, st.just("key")),
        st.builds(Grant, st.just("read"), texts, st.just("prefix")),
        st.builds(Grant, st.just("read"), texts, st.just("range"), st.one_of(st.none(), texts)),
    )


def model_holds(grant: Grant, key: str) -> bool:
    if grant.scope == "key":
        return key == grant.key
    if grant.scope == "prefix":
        return key.startswith(grant.key)
    return grant.key <= key and (grant.end is None or key < grant.end)


@settings(max_examples=300, deadline=None)
@given(st.lists(grants(), max_size=5), texts, st.one_of(st.none(), texts))
def test_a_range_is_allowed_only_when_every_key_in_it_is_granted(
    granted: list[Grant], start: str, end: str | None
) -> None:
    """Sound: over a universe of short keys, a range the checker allows
    holds no key that no grant holds (asked one by one). Complete for
    what was granted: each grant's own keys, and any run of them, are
    allowed."""
    merged = merge(grant_interval(g) for g in granted)
    if covers(merged, start, end):
        in_range = [k for k in UNIVERSE if start <= k and (end is None or k < end)]
        assert all(any(model_holds(g, k) for g in granted) for k in in_range)
    for grant in granted:
        assert covers(merged, *grant_interval(grant))
    for start_key, end_key in merged:
        assert covers(merged, start_key, end_key)
