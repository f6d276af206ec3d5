"""Who may read or write which keys: a pure checker over the auth state.

Every grant is a half-open interval of keys: exactly ``K`` is
``[K, K + "\\0")`` (the next key after ``K``), a prefix ``P`` is
``[P, prefix_end(P))``, a range is ``[A, B)``; ``None`` as an end means "to
the last key". A user may read (write) a set of keys when the union of the
intervals its roles grant for reading (writing) covers all of it, which is
etcd's rule: a range request needs permission on the whole range, a watch
on a prefix needs read on every key under it, a transaction needs read on
every compared key and every key it gets, and write on every key it puts
or deletes, in both branches (which one runs is not known beforehand).

The role ``root`` may do everything. With auth off everyone may.

The merged intervals of a user are computed once per auth change and
cached (the hot path asks for one key at a time).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Literal

from ._auth_commands import Grant
from ._auth_state import AuthState
from ._commands import OpDelete, OpGet, OpPut, OpRange, Txn
from ._keys import prefix_end

Need = Literal["read", "write"]
#: ``[start, end)``; end None: to the last key.
Interval = tuple[str, str | None]


def key_interval(key: str) -> Interval:
    """Exactly ``key``: nothing sorts between ``key`` and ``key + "\\0"``."""
    return key, key + "\0"


def prefix_interval(prefix: str) -> Interval:
    return prefix, prefix_end(prefix)


def grant_interval(grant: Grant) -> Interval:
    if grant.scope == "key":
        return key_interval(grant.key)
    if grant.scope == "prefix":
        return prefix_interval(grant.key)
    return grant.key, grant.end


def _ends_before(a: str | None, b: str | None) -> bool:
    """``a < b`` for interval ends, where None is past every key."""
    if a is None:
        return False
    return b is None or a < b


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint, non-adjacent intervals covering the same keys."""
    merged: list[Interval] = []
    for start, end in sorted(intervals, key=lambda i: i[0]):
        if end is not None and end <= start:
            continue  # empty
        if merged and not _ends_before(merged[-1][1], start):
            last_start, last_end = merged[-1]
            merged[-1] = (last_start, None if last_end is None or end is None else max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def covers(merged: list[Interval], start: str, end: str | None) -> bool:
    """Whether ``merged`` (from :func:`merge`) holds every key of
    ``[start, end)``; an empty interval is always held."""
    if end is not None and end <= start:
        return True
    position = bisect.bisect_right(merged, start, key=lambda i: i[0]) - 1
    if position < 0:
        return False
    _, held_end = merged[position]
    if not _ends_before(start, held_end):
        return False  # the interval starting at or before ``start`` ends at or before it
    return not _ends_before(held_end, end)


class Permissions:
    """The checker for one auth state (the store's), with its cache."""

    def __init__(self, state: AuthState) -> None:
        self.state = state
        self._generation = -1
        self._cache: dict[tuple[str, Need], list[Interval]] = {}

    def _intervals(self, user: str, need: Need) -> list[Interval]:
        if self._generation != self.state.generation:
            self._cache.clear()
            self._generation = self.state.generation
        found = self._cache.get((user, need))
        if found is None:
            found = merge(
                grant_interval(grant)
                for grant in self.state.grants_of(user)
                if grant.access in (need, "readwrite")
            )
            if len(self._cache) > 10_000:
                self._cache.clear()  # bounded: users are few, names asked for may not be
            self._cache[(user, need)] = found
        return found

    def may(self, user: str, need: Need, start: str, end: str | None) -> bool:
        """Whether ``user`` may read (write) every key of ``[start, end)``."""
        if not self.state.enabled or self.state.is_root(user):
            return True
        return covers(self._intervals(user, need), start, end)

    def may_key(self, user: str, need: Need, key: str) -> bool:
        return self.may(user, need, *key_interval(key))

    def may_prefix(self, user: str, need: Need, prefix: str) -> bool:
        return self.may(user, need, *prefix_interval(prefix))

    def txn_denial(self, user: str, txn: Txn) -> str | None:
        """Why ``user`` may not run ``txn`` (None: it may)."""
        for compare in txn.compare:
            if not self.may_key(user, "read", compare.key):
                return f"no read permission on {compare.key!r} (compared)"
        for op in (*txn.success, *txn.failure):
            if isinstance(op, (OpPut, OpDelete)) and not self.may_key(user, "write", op.key):
                return f"no write permission on {op.key!r}"
            if isinstance(op, OpGet) and not self.may_key(user, "read", op.key):
                return f"no read permission on {op.key!r}"
            if isinstance(op, OpRange) and not self.may_prefix(user, "read", op.prefix):
                return f"no read permission on every key under the prefix {op.prefix!r}"
        return None
