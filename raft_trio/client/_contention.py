"""Locks and elections without I/O: the key a waiter puts, who holds the
lock (leads the election), and whom each waiter waits for.

The recipe of etcd's concurrency package, on leases, revisions and
watches:

- a waiter takes a lease and puts ``NAME/<lease id>`` with it, if absent
  (a transaction comparing the key's ``create_revision`` with 0), reading
  every waiter's key under ``NAME/`` in the same transaction;
- the waiter whose key has the lowest ``create_revision`` holds the lock;
- every other waiter watches only the key just before its own (the
  highest ``create_revision`` below its own) for its deletion, then looks
  again: a release wakes one waiter, not all (no thundering herd);
- the holder's **fencing token** is its key's ``create_revision``, the
  revision at which it got into line. Revisions only grow, so a key made
  later has a larger one, and keys are served in ``create_revision``
  order: every later holder has a larger token.

Only keys directly under ``NAME/`` whose last part looks like a lease id
count as waiters: the lock ``a`` is not held up by the lock ``a/b``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from .. import schema

#: The default TTL of a lock's or a candidate's lease, in seconds: how long
#: a holder that vanished (a crash, a lost network) keeps the lock.
LOCK_TTL_S = 10
#: Keys are at most this many bytes (UTF-8), lease ids 16 hex digits.
MAX_KEY_BYTES = 1024
LEASE_ID_DIGITS = 16


def prefix_of(name: str) -> str:
    """The prefix under which the waiters of lock (or election) ``name``
    put their keys: ``name/``."""
    stem = name.rstrip("/")
    if not stem:
        raise ValueError("the lock name is empty")
    prefix = stem + "/"
    if len((prefix + "0" * LEASE_ID_DIGITS).encode()) > MAX_KEY_BYTES:
        raise ValueError(f"the lock name is too long (at most {MAX_KEY_BYTES - LEASE_ID_DIGITS - 1} bytes)")
    return prefix


def waiter_key(prefix: str, lease: str) -> str:
    return prefix + lease


@dataclasses.dataclass(frozen=True)
class Contender:
    """A waiter's key: who put it (``value``), when (``create_revision``,
    the fencing token it holds the lock with) and with which lease."""

    key: str
    value: str
    create_revision: int
    lease: str | None = None


@dataclasses.dataclass(frozen=True)
class Leader:
    """Who holds the lock, or leads the election, ``name``: its key, its
    value (an election's proposal) and its fencing token."""

    name: str
    key: str
    value: str
    token: int


def contenders(prefix: str, items: Iterable[schema.RangeItem]) -> list[Contender]:
    """The waiters among the keys of a range under ``prefix``, oldest first."""
    found = [
        Contender(
            item.key, item.value if isinstance(item.value, str) else "", item.create_revision, item.lease
        )
        for item in items
        if is_waiter(prefix, item.key)
    ]
    return sorted(found, key=lambda contender: contender.create_revision)


def is_waiter(prefix: str, key: str) -> bool:
    rest = key[len(prefix) :] if key.startswith(prefix) else ""
    return 0 < len(rest) <= LEASE_ID_DIGITS and all(c in "0123456789abcdef" for c in rest)


def leader_of(name: str, waiting: list[Contender]) -> Leader | None:
    if not waiting:
        return None
    first = waiting[0]
    return Leader(name, first.key, first.value, first.create_revision)


def acquire_txn(
    prefix: str, key: str, value: str, lease: str
) -> tuple[list[schema.Compare], list[schema.Op], list[schema.Op]]:
    """The transaction that puts a waiter's key if it is absent, and reads
    every waiter's key in the same revision (the key already there: reads
    it instead, so that a retry finds its place in line)."""
    compare = [schema.Compare(key, "create_revision", "=", 0)]
    success = [schema.Op.of_put(key, value, lease), schema.Op.of_range(prefix)]
    failure = [schema.Op.of_get(key), schema.Op.of_range(prefix)]
    return compare, success, failure


@dataclasses.dataclass(frozen=True)
class InLine:
    """The outcome of :func:`acquire_txn`: the waiter's ``create_revision``,
    the waiters the transaction read (``complete``: all of them; else read
    them again with a range), and the revision they were read at."""

    create_revision: int
    waiting: list[Contender]
    complete: bool
    revision: int


def in_line(prefix: str, answer: schema.TxnAnswer) -> InLine:
    mine, ranged = answer.results
    if not isinstance(mine.create_revision, int) or not mine.create_revision:
        raise ValueError(f"the key {mine.key!r} was not put (the lease is gone)")
    items = ranged.kvs if isinstance(ranged.kvs, list) else []
    return InLine(mine.create_revision, contenders(prefix, items), ranged.more is False, answer.revision)


@dataclasses.dataclass(frozen=True)
class Holds:
    """The waiter holds the lock."""


@dataclasses.dataclass(frozen=True)
class WaitFor:
    """Wait until ``key`` (the waiter just before) is deleted; it was there
    at ``revision``."""

    key: str
    revision: int


@dataclasses.dataclass(frozen=True)
class Gone:
    """The waiter's own key is gone (its lease ran out or was revoked, or
    someone deleted it): it is no longer in line."""


def place(key: str, create_revision: int, waiting: list[Contender], revision: int) -> Holds | WaitFor | Gone:
    """Where a waiter stands, from every waiter's key read at ``revision``."""
    if not any(c.key == key and c.create_revision == create_revision for c in waiting):
        return Gone()
    before = [c for c in waiting if c.create_revision < create_revision]
    if not before:
        return Holds()
    return WaitFor(before[-1].key, revision)
