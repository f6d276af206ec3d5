"""The state machine's rules, one behaviour per test: revisions and
versions, ranges and their pages, transactions, leases, exactly-once
retries, snapshots, and the history that watches replay."""

from __future__ import annotations

import msgspec
import pytest

from raft_trio.http import answers
from raft_trio.kv import (
    DEFAULT_RANGE_LIMIT,
    MAX_RANGE_LIMIT,
    MAX_RANGE_PAGE_BYTES,
    MAX_TXN_OPS,
    MAX_VALUE_BYTES,
    AuthEnable,
    Caller,
    CasFailed,
    Command,
    Compare,
    Delete,
    Deleted,
    Got,
    History,
    KeyReused,
    KeyValue,
    KeyValueStore,
    LeaseCheckpoint,
    LeaseGrant,
    LeaseGranted,
    LeaseNotFound,
    LeaseRevoke,
    LeaseRevoked,
    OpDelete,
    OpGet,
    OpPut,
    OpRange,
    Put,
    Ranged,
    Result,
    Started,
    Txn,
    TxnDone,
    TxnOp,
    UserAdd,
    Written,
    decode_command,
    encode_command,
    for_restored_cluster,
    format_lease_id,
    parse_lease_id,
    prefix_end,
    request_fingerprint,
)


def store_with(*commands: Put | Delete | Txn | LeaseGrant | LeaseRevoke | Started) -> KeyValueStore:
    store = KeyValueStore()
    for index, command in enumerate(commands, start=1):
        store.apply(index, command)
    return store


# -- revisions ----------------------------------------------------------------


def test_a_new_key_is_created_at_the_revision_of_its_put_with_version_one() -> None:
    store = KeyValueStore()
    assert store.apply(7, Put("k", "v")) == Written("k", "v", 7, create_revision=7, version=1)
    assert store.get("k") == KeyValue("k", "v", 7, 7, 1)
    assert store.revision == 7


def test_each_put_raises_the_version_and_mod_revision_and_keeps_the_create_revision() -> None:
    store = store_with(Put("k", "a"), Put("other", "x"), Put("k", "b"), Put("k", "c"))
    assert store.get("k") == KeyValue("k", "c", 1, 4, 3)


def test_a_revision_larger_than_the_history_is_kept_whole() -> None:
    """A lease revoke deleting more than the history holds was dropped as
    it was recorded: a caught-up watcher was told it was compacted (a
    review's finding). The newest revision stays, past the bounds."""
    store = KeyValueStore(history=History(max_changes=5))
    store.apply(1, LeaseGrant(60))
    for n in range(8):
        store.apply(2 + n, Put(f"svc/{n}", "x", lease=1))
    store.apply(10, LeaseRevoke(1))
    assert store.history.floor <= 10
    assert [c.key for c in store.history.since(10)] == [f"svc/{n}" for n in range(8)]
    store.apply(11, Put("after", "y"))  # and goes once a newer one comes
    assert store.history.floor == 11


def test_a_delete_is_a_change_at_its_own_revision_and_a_later_put_creates_the_key_anew() -> None:
    store = store_with(Put("k", "a"), Put("k", "b"))
    assert store.apply(3, Delete("k")) == Deleted("k", True, 3, prev_value="b")
    assert store.get("k") is None
    store.apply(4, Put("k", "c"))
    assert store.get("k") == KeyValue("k", "c", 4, 4, 1)


def test_deleting_a_missing_key_changes_nothing_but_is_decided_at_its_revision() -> None:
    store = store_with(Put("k", "a"))
    assert store.apply(2, Delete("absent")) == Deleted("absent", False, 2)
    assert len(store.history) == 1  # no change recorded for it


def test_entries_that_are_not_commands_advance_the_revision_only() -> None:
    store = store_with(Put("k", "a"))
    store.skip(5)
    assert store.revision == 5
    assert store.get("k") == KeyValue("k", "a", 1, 1, 1)


def test_a_configuration_without_a_member_forgets_that_it_started() -> None:
    """So that one removed and added again under its id starts as the new
    learner it is (first_start refuses a learner that has started)."""
    store = store_with(Started("n2"), Started("n3"))
    store.skip(3, members={"n1", "n2", "n3"})
    assert store.started == {"n2", "n3"}
    store.skip(4, members={"n1", "n2"})
    assert store.started == {"n2"}
    store.skip(5)  # a no-op says nothing about members
    assert store.started == {"n2"}


def test_compare_and_set_fails_without_change_when_the_value_differs() -> None:
    store = store_with(Put("k", "a"))
    assert store.apply(2, Put("k", "b", check=True, expect="x")) == CasFailed("k", "a", 2)
    assert store.apply(3, Put("new", "b", check=True, expect=None)).index == 3  # type: ignore[union-attr]
    assert store.apply(4, Put("new", "c", check=True, expect=None)) == CasFailed("new", "b", 4)
    assert store.get("k") == KeyValue("k", "a", 1, 1, 1)


# -- ranges -------------------------------------------------------------------


def keys_of(kvs: list[KeyValue]) -> list[str]:
    return [kv.key for kv in kvs]


def test_a_range_is_in_key_order_with_end_exclusive() -> None:
    store = store_with(*(Put(key, key) for key in ["b", "a/2", "a/1", "c", "a", "a0"]))
    assert keys_of(store.range().kvs) == ["a", "a/1", "a/2", "a0", "b", "c"]
    assert keys_of(store.range("a/", "a0").kvs) == ["a/1", "a/2"]
    assert keys_of(store.range("b").kvs) == ["b", "c"]
    assert keys_of(store.range(end="a0").kvs) == ["a", "a/1", "a/2"]


def test_a_prefix_range_holds_exactly_the_keys_that_start_with_it() -> None:
    keys = ["app", "app/", "app/x", "app/y", "app0", "apq", "ap\U0010ffff", "app\U0010ffff/z"]
    store = store_with(*(Put(key, "v") for key in keys))
    for prefix in ["", "a", "app", "app/", "ap\U0010ffff", "zzz"]:
        expected = sorted(key for key in keys if key.startswith(prefix))
        assert keys_of(store.range(prefix, prefix_end(prefix)).kvs) == expected, prefix


def test_prefix_end_is_the_first_key_past_the_prefix() -> None:
    assert prefix_end("abc") == "abd"
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\U0010ffff") is None
    assert prefix_end("") is None


def test_range_pages_continue_after_the_last_key_with_count_and_more() -> None:
    store = store_with(*(Put(f"k{n:02}", "v") for n in range(10)))
    first = store.range(limit=4)
    assert keys_of(first.kvs) == ["k00", "k01", "k02", "k03"]
    assert (first.count, first.more) == (10, True)
    second = store.range(after="k03", limit=4)
    assert keys_of(second.kvs) == ["k04", "k05", "k06", "k07"]
    assert (second.count, second.more) == (6, True)
    last = store.range(after="k07", limit=4)
    assert keys_of(last.kvs) == ["k08", "k09"]
    assert (last.count, last.more) == (2, False)


def test_a_range_page_is_bounded_by_bytes_but_holds_at_least_one_key() -> None:
    store = store_with(*(Put(f"k{n}", "x" * 100) for n in range(5)))
    page = store.range(max_bytes=250)
    assert keys_of(page.kvs) == ["k0", "k1"]
    assert page.more
    assert keys_of(store.range(max_bytes=10).kvs) == ["k0"]


# -- transactions -------------------------------------------------------------


def test_a_transaction_runs_success_when_every_compare_holds() -> None:
    store = store_with(Put("k", "a"), Put("k", "b"))
    result = store.apply(
        3,
        Txn(
            [
                Compare("k", "value", "=", "b"),
                Compare("k", "version", "=", 2),
                Compare("k", "exists", "=", True),
            ],
            [OpPut("k", "c"), OpPut("other", "o"), OpGet("k")],
            [OpDelete("k")],
        ),
    )
    assert result == TxnDone(
        True,
        [Written("k", "c", 3, 1, 3), Written("other", "o", 3, 3, 1), Got("k", KeyValue("k", "c", 1, 3, 3))],
        3,
    )


def test_a_transaction_runs_failure_when_any_compare_fails() -> None:
    store = store_with(Put("k", "a"))
    result = store.apply(
        2,
        Txn(
            [Compare("k", "value", "=", "a"), Compare("k", "mod_revision", ">", 1)],
            [OpDelete("k")],
            [OpGet("k")],
        ),
    )
    assert result == TxnDone(False, [Got("k", KeyValue("k", "a", 1, 1, 1))], 2)
    assert store.get("k") is not None


@pytest.mark.parametrize(
    ("target", "op", "value", "holds"),
    [
        ("value", "=", "b", True),
        ("value", "!=", "b", False),
        ("value", "<", "c", True),
        ("value", ">", "a", True),
        ("value", ">", "b", False),
        ("version", "=", 2, True),
        ("version", "<", 2, False),
        ("create_revision", "=", 1, True),
        ("mod_revision", "=", 2, True),
        ("mod_revision", ">", 1, True),
        ("exists", "=", True, True),
        ("exists", "!=", True, False),
        ("value", "=", 2, False),  # a compare of the wrong type never holds
    ],
)
def test_compare_targets_and_ops_on_an_existing_key(target: str, op: str, value: object, holds: bool) -> None:
    store = store_with(Put("k", "a"), Put("k", "b"))
    result = store.apply(3, Txn([Compare("k", target, op, value)], [], []))  # type: ignore[arg-type]
    assert isinstance(result, TxnDone)
    assert result.succeeded is holds


@pytest.mark.parametrize(
    ("target", "op", "value", "holds"),
    [
        ("exists", "=", False, True),
        ("version", "=", 0, True),
        ("create_revision", "=", 0, True),
        ("mod_revision", "<", 1, True),
        ("value", "=", "", False),
        ("value", "<", "z", False),
        ("value", "!=", "x", True),
    ],
)
def test_a_missing_key_has_version_and_revisions_zero_and_no_value(
    target: str, op: str, value: object, holds: bool
) -> None:
    store = KeyValueStore()
    result = store.apply(1, Txn([Compare("absent", target, op, value)], [], []))  # type: ignore[arg-type]
    assert isinstance(result, TxnDone)
    assert result.succeeded is holds


def test_operations_in_a_transaction_see_the_ones_before_them() -> None:
    store = store_with(Put("p/a", "1"))
    result = store.apply(2, Txn([], [OpPut("p/b", "2"), OpRange("p/"), OpDelete("p/a"), OpRange("p/")], []))
    assert isinstance(result, TxnDone)
    first, last = result.results[1], result.results[3]
    assert isinstance(first, Ranged) and isinstance(last, Ranged)
    assert keys_of(first.kvs) == ["p/a", "p/b"]
    assert keys_of(last.kvs) == ["p/b"]
    assert (last.count, last.more) == (1, False)


def test_the_ranges_of_one_transaction_share_one_pages_bytes() -> None:
    """128 ranges of a page each (4 MiB of values) would make the leader
    build half a GiB for one answer. Together they get one page's bytes;
    a range past them answers its count and ``more`` with fewer keys (or
    none), and is continued with a plain range request."""
    big = "x" * (1 << 20)
    store = store_with(*(Put(f"{p}/{n}", big) for p in "ab" for n in range(6)))
    result = store.apply(13, Txn([], [OpRange("a/"), OpRange("b/"), OpRange("a/")], []))
    assert isinstance(result, TxnDone)
    first, second, third = result.results
    assert isinstance(first, Ranged) and isinstance(second, Ranged) and isinstance(third, Ranged)
    assert keys_of(first.kvs) == ["a/0", "a/1", "a/2", "a/3"]  # a page: 4 MiB
    assert (second.kvs, second.count, second.more) == ([], 6, True)
    assert (third.kvs, third.count, third.more) == ([], 6, True)
    small = store_with(*(Put(f"{p}/{n}", "v") for p in "ab" for n in range(3)))
    result = small.apply(7, Txn([], [OpRange("a/"), OpRange("b/")], []))
    assert isinstance(result, TxnDone)
    assert [keys_of(r.kvs) for r in result.results if isinstance(r, Ranged)] == [
        ["a/0", "a/1", "a/2"],
        ["b/0", "b/1", "b/2"],
    ]


def test_the_ranges_of_one_transaction_share_one_range_requests_keys() -> None:
    """Small values leave the bytes unspent: the keys are shared too, as
    many in all as one range request may ask for."""
    many = MAX_RANGE_LIMIT // DEFAULT_RANGE_LIMIT + 2
    store = store_with(*(Put(f"k/{n:05d}", "v") for n in range(DEFAULT_RANGE_LIMIT + 1)))
    result = store.apply(DEFAULT_RANGE_LIMIT + 2, Txn([], [OpRange("k/")] * many, []))
    assert isinstance(result, TxnDone)
    pages = [r for r in result.results if isinstance(r, Ranged)]
    assert [len(page.kvs) for page in pages] == [DEFAULT_RANGE_LIMIT] * (many - 2) + [0, 0]
    assert all(page.more and page.count == DEFAULT_RANGE_LIMIT + 1 for page in pages)


def test_a_transaction_nobody_waits_for_changes_the_same_without_gathering_its_reads() -> None:
    """A follower applies a transaction no client waits for there: its
    reads are skipped (they change nothing), its writes are not; with an
    idempotency token they are gathered, for the session that answers a
    retry on whichever replica leads then."""
    txns = [
        Txn([Compare("p/a", "value", "=", "1")], [OpPut("p/b", "2"), OpRange("p/"), OpGet("p/a")], []),
        Txn([], [OpRange("p/"), OpDelete("p/a"), OpPut("p/c", "3")], [], token="retry-me"),
        Txn([Compare("p/x", "exists", "=", True)], [], [OpGet("p/b"), OpPut("p/d", "4")]),
    ]
    leader, follower = store_with(Put("p/a", "1")), store_with(Put("p/a", "1"))
    for index, txn in enumerate(txns, start=2):
        answered = leader.apply(index, txn)
        unanswered = follower.apply(index, txn, answered=False)
        assert isinstance(answered, TxnDone) and isinstance(unanswered, TxnDone)
        assert unanswered.succeeded == answered.succeeded
        reads = [r for r in answered.results if isinstance(r, Got | Ranged)]
        assert reads, "each transaction reads something when answered"
        if txn.token is None:
            assert unanswered.results == [r for r in answered.results if not isinstance(r, Got | Ranged)]
        else:
            assert unanswered == answered
    assert follower.snapshot() == leader.snapshot()  # keys, revisions and sessions alike
    assert follower.history.since(1) == leader.history.since(1)


def test_every_change_of_a_transaction_has_its_revision() -> None:
    store = store_with(Put("a", "0"))
    store.apply(2, Txn([], [OpPut("a", "1"), OpPut("b", "1"), OpDelete("a")], []))
    assert [(c.revision, c.kind, c.key) for c in store.history.since(2)] == [
        (2, "put", "a"),
        (2, "put", "b"),
        (2, "delete", "a"),
    ]


def test_a_transaction_naming_a_missing_lease_changes_nothing() -> None:
    store = store_with(Put("a", "0"))
    before = store.snapshot()
    result = store.apply(2, Txn([], [OpDelete("a"), OpPut("b", "1", lease=99)], []))
    assert result == LeaseNotFound(99, 2)
    assert store.get("a") == KeyValue("a", "0", 1, 1, 1)
    assert store.get("b") is None
    assert len(store.history) == 1
    restored = KeyValueStore()
    restored.restore(before)
    assert restored.range() == store.range()


# -- leases -------------------------------------------------------------------


def test_a_lease_id_is_the_revision_of_its_grant() -> None:
    store = store_with(Put("x", "1"))
    assert store.apply(2, LeaseGrant(30)) == LeaseGranted(2, 30)
    assert store.leases[2].ttl == 30


def test_keys_attached_to_a_lease_are_deleted_together_when_it_is_revoked() -> None:
    store = store_with(LeaseGrant(10), Put("a", "1", lease=1), Put("b", "2", lease=1), Put("c", "3"))
    assert store.leases[1].keys == {"a", "b"}
    assert store.apply(5, LeaseRevoke(1)) == LeaseRevoked(1, True, ["a", "b"], 5)
    assert keys_of(store.range().kvs) == ["c"]
    assert 1 not in store.leases
    assert [(c.revision, c.kind, c.key) for c in store.history.since(5)] == [
        (5, "delete", "a"),
        (5, "delete", "b"),
    ]


def test_revoking_a_lease_that_is_gone_changes_nothing() -> None:
    store = store_with(LeaseGrant(10), LeaseRevoke(1))
    assert store.apply(3, LeaseRevoke(1)) == LeaseRevoked(1, False, [], 3)


def test_a_put_naming_a_missing_lease_is_refused() -> None:
    store = KeyValueStore()
    assert store.apply(1, Put("a", "1", lease=5)) == LeaseNotFound(5, 1)
    assert store.get("a") is None


def test_a_put_without_the_lease_detaches_the_key_and_a_delete_does_too() -> None:
    store = store_with(LeaseGrant(10), LeaseGrant(10), Put("a", "1", lease=1), Put("b", "1", lease=1))
    store.apply(5, Put("a", "2"))
    store.apply(6, Delete("b"))
    assert store.leases[1].keys == set()
    store.apply(7, Put("c", "1", lease=1))
    store.apply(8, Put("c", "2", lease=2))
    assert (store.leases[1].keys, store.leases[2].keys) == (set(), {"c"})
    store.apply(9, LeaseRevoke(1))
    assert store.get("a") is not None and store.get("c") is not None


def test_lease_ids_are_sixteen_hex_digits_and_parse_back() -> None:
    assert format_lease_id(0x2A) == "000000000000002a"
    assert parse_lease_id("000000000000002a") == 0x2A
    assert parse_lease_id("2A") == 0x2A
    for bad in ["", "0", "xyz", "1" * 17, "-1", "+7", "0x7", "1_0", " 7"]:  # int(s, 16) takes the last four
        assert parse_lease_id(bad) is None, bad


# -- exactly-once retries -----------------------------------------------------


def test_a_retried_command_returns_its_first_result_and_is_applied_once() -> None:
    store = KeyValueStore()
    first = store.apply(1, Put("k", "a", token="t1", ts=1000))
    store.apply(2, Put("k", "b"))
    assert store.apply(3, Put("k", "a", token="t1", ts=1001)) == first
    assert store.get("k") == KeyValue("k", "b", 1, 2, 2)
    assert store.remembered(Put("k", "a", token="t1")) == first


def test_a_remembered_answer_keeps_no_value_yet_a_retry_gets_the_first_answer() -> None:
    """A session kept a put's value and a deleted key's for its ten
    minutes, in memory and in every snapshot: deleting keys with the
    client (which sends an Idempotency-Key) to free a full disk gave no
    space back until then (an audit of the docs found it)."""
    store = KeyValueStore()
    big = "v" * (1 << 20)
    put = store.apply(1, Put("k", big, token="put", ts=1000))
    deleted = store.apply(2, Delete("k", token="del", ts=1001))
    txn = store.apply(3, Txn([], [OpPut("t", big), OpDelete("t")], [], token="txn", ts=1002))
    # The txn's put value stays (its answer is not rebuilt), the deleted ones go.
    assert store.session_bytes < (1 << 20) + 4096
    assert len(store.snapshot()) < (1 << 20) + 4096
    assert isinstance(put, Written) and put.value == big
    assert store.apply(4, Put("k", big, token="put", ts=1003)) == put
    assert store.remembered(Put("k", big, token="put")) == put
    assert store.remembered(Delete("k", token="del")) == Deleted("k", True, 2)  # no answer shows prev_value
    assert isinstance(deleted, Deleted) and deleted.deleted
    assert store.remembered(Txn([], [OpPut("t", big), OpDelete("t")], [], token="txn")) == TxnDone(
        True, [Written("t", big, 3, 3, 1), Deleted("t", True, 3)], 3
    )
    assert isinstance(txn, TxnDone)


def test_another_request_under_a_used_token_is_refused_and_changes_nothing() -> None:
    """A token names one request: sent again with a different one it is a
    client's mistake (a reused key), answered as such rather than with
    the first request's outcome, which would read as this one's."""
    store = KeyValueStore()
    first = store.apply(1, Put("k", "a", token="t1", ts=1000))
    assert store.apply(2, Put("k", "b", token="t1", ts=1001)) == KeyReused(2)
    assert store.apply(3, Delete("k", token="t1", ts=1002)) == KeyReused(3)
    assert store.get("k") == KeyValue("k", "a", 1, 1, 1)
    assert store.remembered(Put("k", "b", token="t1")) == KeyReused(3)
    # What the node adds is not the request: its clock, who asked.
    retry = Put("k", "a", token="t1", ts=5000, caller=Caller("alice", 7))
    assert store.remembered(retry) == first
    assert store.apply(4, retry) == first


def test_what_the_node_chooses_is_not_part_of_the_request() -> None:
    """A retried password change carries a new salted hash, a retried
    enable a new signing key: the same request all the same."""
    store = KeyValueStore()
    first = store.apply(1, UserAdd("carol", "scrypt$salt-1", token="t", ts=1))
    assert store.apply(2, UserAdd("carol", "scrypt$salt-2", token="t", ts=2)) == first
    assert store.apply(3, UserAdd("carol", None, token="t", ts=3)) == KeyReused(3)
    assert store.apply(4, UserAdd("dave", "scrypt$salt-3", token="t", ts=4)) == KeyReused(4)
    assert request_fingerprint(AuthEnable(b"key-1")) == request_fingerprint(AuthEnable(b"key-2", ts=9))
    assert request_fingerprint(LeaseGrant(5)) != request_fingerprint(LeaseGrant(6))


def test_a_token_remembered_without_a_fingerprint_answers_any_request_as_before() -> None:
    """A session written by a version that kept no fingerprint (restored
    from its snapshot) cannot tell a retry from another request: it
    answers with the first outcome, as that version did."""

    class OldSession(msgspec.Struct, array_like=True):
        token: str
        ts: int
        result: Result

    class OldSnapshot(msgspec.Struct):
        applied: int
        sessions: list[OldSession]

    first = Written("k", "a", 1, 1, 1)
    store = KeyValueStore()
    store.restore(msgspec.msgpack.encode(OldSnapshot(1, [OldSession("t1", 1000, first)])))
    assert store.apply(2, Put("k", "b", token="t1", ts=1001)) == first


def test_remembered_tokens_are_forgotten_after_their_time() -> None:
    store = KeyValueStore(session_ttl_ms=1000)
    store.apply(1, Txn([], [OpPut("k", "a")], [], token="t", ts=0))
    store.apply(2, Put("x", "y", ts=1001))
    assert store.remembered(Txn([], [OpPut("k", "a")], [], token="t")) is None


def test_remembered_answers_are_bounded_in_bytes_oldest_forgotten_first() -> None:
    """A transaction's answer holds what it read: remembered whole for ten
    minutes, a reader's small requests made every snapshot gigabytes (a
    review's finding: 25 read-only transactions grew an 8 MiB state's
    snapshot to 109 MB). The table keeps at most ``max_session_bytes``."""
    store = KeyValueStore(max_session_bytes=10 << 20)
    for n in range(4):
        store.apply(n + 1, Put(f"p/{n}", "x" * (MAX_VALUE_BYTES - 16)))
    state = len(store.snapshot())
    for n in range(25):
        store.apply(5 + n, Txn([], [OpRange("p/")], [], token=f"t{n}", ts=1), answered=False)
        assert store.session_bytes <= store.max_session_bytes
    assert len(store.snapshot()) < state + store.max_session_bytes + 4096
    assert (
        store.remembered(Txn([], [OpRange("p/")], [], token="t24")) is not None
    )  # the newest answers a retry
    assert store.remembered(Txn([], [OpRange("p/")], [], token="t0")) is None
    restored = KeyValueStore(max_session_bytes=10 << 20)
    restored.restore(store.snapshot())
    assert restored.session_bytes == store.session_bytes


def test_the_gets_of_a_transaction_share_its_reads_budget() -> None:
    """128 gets of one 1 MiB key made a 128 MiB answer from a 5 KB request
    (a review's finding); past the budget a get is answered unread."""
    store = KeyValueStore()
    store.apply(1, Put("big", "x" * MAX_VALUE_BYTES))
    result = store.apply(2, Txn([], [OpGet("big")] * MAX_TXN_OPS, []))
    assert isinstance(result, TxnDone)
    read = [r for r in result.results if isinstance(r, Got) and not r.more]
    assert len(read) == MAX_RANGE_PAGE_BYTES // MAX_VALUE_BYTES
    assert all(isinstance(r, Got) and r.kv is None for r in result.results[len(read) :])
    body = answers.for_result(result).encode()
    assert len(body) <= 2 * MAX_RANGE_PAGE_BYTES
    assert b'{"key":"big","more":true}' in body


# -- snapshots ----------------------------------------------------------------


def test_a_snapshot_restores_keys_revisions_leases_and_remembered_tokens() -> None:
    store = store_with(
        LeaseGrant(30),
        Put("a", "1", lease=1),
        Put("a", "2", lease=1),
        Put("b", "x", token="t", ts=5),
        Delete("z"),
    )
    restored = KeyValueStore()
    restored.restore(store.snapshot())
    assert restored.range() == store.range()
    assert restored.revision == 5
    assert restored.leases[1].keys == {"a"} and restored.leases[1].ttl == 30
    assert restored.remembered(Put("b", "x", token="t")) == store.remembered(Put("b", "x", token="t"))
    assert restored.remembered(Put("b", "y", token="t")) == KeyReused(5)
    assert restored.apply(6, LeaseRevoke(1)) == store.apply(6, LeaseRevoke(1))


def test_remembered_answers_of_a_version_that_kept_no_user_still_restore() -> None:
    """Sessions of four fields (no ``user``) restore with it empty, and
    a snapshot with the field reads in a version that knows four."""
    store = store_with(Put("b", "x", token="t", ts=5))
    snapshot = msgspec.msgpack.decode(store.snapshot())
    assert [len(session) for session in snapshot["sessions"]] == [5]
    snapshot["sessions"] = [session[:4] for session in snapshot["sessions"]]
    restored = KeyValueStore()
    restored.restore(msgspec.msgpack.encode(snapshot))
    assert restored.remembered(Put("b", "x", token="t")) == store.remembered(Put("b", "x", token="t"))

    class FourFields(msgspec.Struct, array_like=True):
        token: str
        ts: int
        result: object
        fingerprint: bytes

    sessions = msgspec.msgpack.encode(msgspec.msgpack.decode(store.snapshot())["sessions"])
    assert [session.token for session in msgspec.msgpack.decode(sessions, type=list[FourFields])] == ["t"]


def test_a_leases_recorded_time_left_goes_with_it_and_a_keep_alives_clear_removes_it() -> None:
    """A leader's checkpoint: the time left each lease had on its clock is
    replicated state, kept in snapshots (where an older version's snapshot,
    without the field, restores with none), and a clear (0) removes it."""
    store = store_with(LeaseGrant(10), LeaseGrant(20))
    assert store.apply(3, LeaseCheckpoint([(1, 4000), (2, 9000), (99, 5)])) is None
    assert (store.leases[1].remaining_ms, store.leases[2].remaining_ms) == (4000, 9000)
    restored = KeyValueStore()
    restored.restore(store.snapshot())
    assert {lease.id: lease.remaining_ms for lease in restored.leases.values()} == {1: 4000, 2: 9000}
    restored.apply(4, LeaseCheckpoint([(1, 0)]))
    assert (restored.leases[1].remaining_ms, restored.leases[2].remaining_ms) == (0, 9000)
    older = msgspec.msgpack.decode(store.snapshot())
    del older["lease_remaining"]
    restored.restore(msgspec.msgpack.encode(older))
    assert [lease.remaining_ms for lease in restored.leases.values()] == [0, 0]


def test_a_restored_cluster_gives_every_lease_a_full_ttl_whatever_the_backup_recorded() -> None:
    """The old cluster may have answered a keep-alive after its backup,
    which cleared the lease's recorded time there; counting from the
    backup's record, the restored cluster could revoke it before that
    keep-alive's TTL ran out."""
    store = store_with(LeaseGrant(60))
    store.apply(2, LeaseCheckpoint([(1, 1500)]))
    restored = KeyValueStore()
    restored.restore(for_restored_cluster(store.snapshot(), "new-cluster"))
    assert restored.leases[1].remaining_ms == 0 and restored.leases[1].ttl == 60


def test_a_snapshot_of_the_first_format_still_restores() -> None:
    class FirstFormat(msgspec.Struct):
        applied: int
        data: dict[str, tuple[str, int]]
        sessions: list[object]

    old = msgspec.msgpack.encode(FirstFormat(9, {"a": ("1", 4), "b": ("2", 9)}, []))
    store = KeyValueStore()
    store.restore(old)
    assert store.range().kvs == [KeyValue("a", "1", 4, 4, 1), KeyValue("b", "2", 9, 9, 1)]
    assert store.revision == 9


def test_commands_of_the_first_format_still_decode() -> None:
    """Entries written before leases existed have one field fewer."""
    old_put = msgspec.msgpack.encode(["put", "k", "v", False, None, None, 17])
    assert decode_command(old_put) == Put("k", "v", ts=17)
    commands: list[Command] = [
        Put("k", "v", lease=3),
        Txn([Compare("k", "exists", "=", True)], [OpRange("p")], []),
        LeaseRevoke(4),
    ]
    for command in commands:
        assert decode_command(encode_command(command)) == command


# -- history ------------------------------------------------------------------


def test_the_history_replays_every_change_since_a_revision() -> None:
    store = store_with(Put("a", "1"), Put("b", "1"), Put("a", "2"), Delete("b"))
    changes = store.history.since(3)
    assert [(c.revision, c.kind, c.key, c.value, c.prev_value, c.version) for c in changes] == [
        (3, "put", "a", "2", "1", 2),
        (4, "delete", "b", None, "1", 0),
    ]
    assert store.history.floor == 1


def test_the_history_drops_its_oldest_changes_and_raises_its_floor() -> None:
    store = KeyValueStore(history=History(max_changes=3))
    for index in range(1, 6):
        store.apply(index, Put("k", str(index)))
    assert [c.revision for c in store.history.since(0)] == [3, 4, 5]
    assert store.history.floor == 3


def test_the_history_drops_a_revision_whole() -> None:
    history = History(max_changes=3)
    store = KeyValueStore(history=history)
    store.apply(1, Put("a", "1"))
    store.apply(2, Txn([], [OpPut("b", "1"), OpPut("c", "1")], []))
    store.apply(3, Put("d", "1"))
    store.apply(4, Put("e", "1"))
    # Four changes exceed three: revision 1 goes; then revision 2 holds two
    # of the remaining four, so it goes whole.
    assert [c.revision for c in history.since(0)] == [3, 4]
    assert history.floor == 3


def test_the_history_is_bounded_by_bytes() -> None:
    history = History(max_bytes=1000)
    store = KeyValueStore(history=history)
    for index in range(1, 20):
        store.apply(index, Put(f"k{index}", "x" * 200))
    assert history.size_bytes <= 1000
    assert history.floor > 1
    assert [c.revision for c in history.since(0)] == list(range(history.floor, 20))


def test_the_history_gives_the_same_changes_from_either_end() -> None:
    """``since`` walks in from the end nearer its start (a watcher that
    keeps up is near the right one): from every revision and with every
    limit, what it returns is the held changes from that revision on,
    cut after ``limit`` only at a revision's end."""
    history = History(max_changes=120)
    store = KeyValueStore(history=history)
    for index in range(1, 80):
        ops: list[TxnOp] = [OpPut(f"k{index}-{n}", "v") for n in range(1 + index % 3)]
        store.apply(index, Txn([], ops, []))
    held = history.since(history.floor)
    assert [(c.revision, c.key) for c in held] == [
        (index, f"k{index}-{n}") for index in range(history.floor, 80) for n in range(1 + index % 3)
    ]
    assert 100 < len(held) <= 120
    for revision in range(history.floor, 82):
        rest = [change for change in held if change.revision >= revision]
        assert history.since(revision) == rest
        for limit in (1, 2, 5, 40):
            taken = history.since(revision, limit=limit)
            assert taken == rest[: len(taken)]
            if len(taken) < len(rest):
                assert len(taken) >= limit
                assert rest[len(taken)].revision != taken[-1].revision
            else:
                assert taken == rest
            assert len(taken) <= max(limit, 1) + 2  # at most a revision's rest (three changes)


def test_after_a_snapshot_the_history_starts_at_the_next_revision() -> None:
    store = store_with(Put("a", "1"), Put("a", "2"))
    follower = KeyValueStore()
    follower.restore(store.snapshot())
    assert follower.history.floor == 3
    assert follower.history.since(0) == []
    follower.apply(3, Put("a", "3"))
    assert [c.prev_value for c in follower.history.since(3)] == ["2"]
