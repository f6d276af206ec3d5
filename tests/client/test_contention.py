"""The lock recipe without I/O: waiters queue by create_revision, the
oldest holds, each other waits for the one just before it (never for the
holder: no thundering herd), and only the keys of this lock count."""

from __future__ import annotations

import pytest

from raft_trio import schema
from raft_trio.client._contention import (
    Contender,
    Gone,
    Holds,
    Leader,
    WaitFor,
    acquire_txn,
    contenders,
    in_line,
    leader_of,
    place,
    prefix_of,
)

LEASES = ["000000000000000a", "000000000000000c", "0000000000000011", "0000000000000014"]


def item(key: str, create_revision: int, value: str = "") -> schema.RangeItem:
    return schema.RangeItem(key, create_revision, create_revision, 1, value)


def queue(*revisions: int) -> list[Contender]:
    return contenders("jobs/", [item(f"jobs/{LEASES[i]}", r) for i, r in enumerate(revisions)])


def test_the_prefix_is_the_name_and_a_slash() -> None:
    assert prefix_of("jobs") == prefix_of("jobs/") == "jobs/"
    with pytest.raises(ValueError, match="empty"):
        prefix_of("//")
    with pytest.raises(ValueError, match="too long"):
        prefix_of("x" * 1010)
    assert prefix_of("x" * 1007) == "x" * 1007 + "/"  # the key with its lease id: 1024 bytes


def test_waiters_are_ordered_by_create_revision_and_other_keys_do_not_count() -> None:
    items = [
        item("jobs/0000000000000020", 40, "late"),
        item("jobs/0000000000000010", 12, "early"),
        item("jobs/sub/0000000000000005", 3),  # the lock "jobs/sub"
        item("jobs/notes", 2),
        item("jobs/0000000000000015", 30),
    ]
    found = contenders("jobs/", items)
    assert [c.create_revision for c in found] == [12, 30, 40]
    assert leader_of("jobs", found) == Leader("jobs", "jobs/0000000000000010", "early", 12)
    assert leader_of("jobs", []) is None


def test_the_oldest_waiter_holds_and_every_other_waits_for_the_one_just_before_it() -> None:
    waiting = queue(10, 12, 17, 20)
    assert place(waiting[0].key, 10, waiting, revision=25) == Holds()
    assert place(waiting[1].key, 12, waiting, revision=25) == WaitFor(waiting[0].key, 25)
    assert place(waiting[2].key, 17, waiting, revision=25) == WaitFor(waiting[1].key, 25)
    assert place(waiting[3].key, 20, waiting, revision=25) == WaitFor(waiting[2].key, 25)


def test_a_waiter_whose_predecessor_left_early_waits_for_the_next_one_before_it() -> None:
    waiting = [c for c in queue(10, 12, 17, 20) if c.create_revision != 17]
    assert place(waiting[2].key, 20, waiting, revision=30) == WaitFor(waiting[1].key, 30)


def test_a_waiter_whose_key_is_gone_or_was_made_again_is_out_of_line() -> None:
    waiting = queue(10, 12)
    assert place("jobs/0000000000000099", 15, waiting, revision=30) == Gone()
    assert place(waiting[1].key, 13, waiting, revision=30) == Gone()  # another key by that name


def test_the_transaction_puts_the_key_only_if_absent_and_reads_the_line() -> None:
    compare, success, failure = acquire_txn(
        "jobs/", "jobs/000000000000000a", "host pid 1", "000000000000000a"
    )
    assert compare == [schema.Compare("jobs/000000000000000a", "create_revision", "=", 0)]
    assert success == [
        schema.Op.of_put("jobs/000000000000000a", "host pid 1", "000000000000000a"),
        schema.Op.of_range("jobs/"),
    ]
    assert failure == [schema.Op.of_get("jobs/000000000000000a"), schema.Op.of_range("jobs/")]


def test_the_transactions_answer_gives_the_place_in_line() -> None:
    mine = schema.TxnResult(key="jobs/000000000000000c", create_revision=12, mod_revision=12)
    ranged = schema.TxnResult(
        kvs=[item("jobs/000000000000000a", 10), item("jobs/000000000000000c", 12)], count=2, more=False
    )
    line = in_line("jobs/", schema.TxnAnswer(True, [mine, ranged], 12))
    assert line.create_revision == 12 and line.complete and line.revision == 12
    assert [c.create_revision for c in line.waiting] == [10, 12]
    partial = schema.TxnResult(kvs=[item("jobs/000000000000000a", 10)], count=2000, more=True)
    assert not in_line("jobs/", schema.TxnAnswer(True, [mine, partial], 12)).complete
