"""The recent changes of the store, oldest first, for watches to replay.

A watcher that asks for the changes from revision R on gets them from
here, then follows new ones as they are applied. The history is bounded
(memory stays bounded by design): at most ``max_changes`` changes and
about ``max_bytes`` of keys and values; the oldest go first.

Invariant: every change with revision >= ``floor`` is held, in revision
order (changes of one transaction share its revision, in the order the
transaction made them). ``floor`` starts at the first revision after the
state the store was restored from (1 for an empty store), and rises past
each change that is dropped. A watch starting below ``floor`` cannot be
served (etcd's "required revision has been compacted").
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable
from typing import Literal

import msgspec

#: Defaults: about 100,000 changes or 32 MiB of keys and values, whichever
#: comes first. A watcher can be at most that far behind and resume.
DEFAULT_MAX_CHANGES = 100_000
DEFAULT_MAX_BYTES = 32 << 20


class Change(msgspec.Struct, frozen=True, gc=False):
    """One put or delete of one key, as a watcher sees it (a msgspec
    struct: one is made per change, on the apply path)."""

    revision: int
    kind: Literal["put", "delete"]
    key: str
    #: The new value (None for a delete).
    value: str | None
    #: 0 for a delete (the key no longer exists).
    create_revision: int
    #: Writes since creation, this one included (0 for a delete).
    version: int
    #: The value before this change (None: the key did not exist).
    prev_value: str | None
    lease: int = 0

    @property
    def size(self) -> int:
        """What this change costs the history's byte budget (characters of
        its key and values, about bytes for most text)."""
        return len(self.key) + len(self.value or "") + len(self.prev_value or "") + 64


class History:
    def __init__(self, max_changes: int = DEFAULT_MAX_CHANGES, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_changes < 1 or max_bytes < 1:
            raise ValueError("the history must hold at least one change")
        self.max_changes = max_changes
        self.max_bytes = max_bytes
        self._changes: collections.deque[Change] = collections.deque()
        self._bytes = 0
        self.floor = 1

    def __len__(self) -> int:
        return len(self._changes)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def reset(self, after_revision: int) -> None:
        """Forget everything: the store was replaced by a snapshot at
        ``after_revision``, and only later changes can be replayed."""
        self._changes.clear()
        self._bytes = 0
        self.floor = after_revision + 1

    def record(self, change: Change) -> None:
        assert not self._changes or change.revision >= self._changes[-1].revision
        self._changes.append(change)
        self._bytes += change.size
        # The newest revision stays whole, even past the bounds (a lease
        # revoke deleting more than they hold): dropping it would tell a
        # caught-up watcher that changes it never saw are gone.
        while self._changes[0].revision != change.revision and (
            len(self._changes) > self.max_changes or self._bytes > self.max_bytes
        ):
            dropped = self._changes.popleft()
            self._bytes -= dropped.size
            # Changes of one revision go together: a watcher resuming at a
            # revision must get all of it or be told it is gone.
            while self._changes and self._changes[0].revision == dropped.revision:
                self._bytes -= self._changes.popleft().size
            self.floor = dropped.revision + 1

    def since(self, revision: int, limit: int | None = None) -> list[Change]:
        """The held changes with revision >= ``revision``, oldest first (a
        copy: the history moves on while a watcher sends them). With a
        ``limit``, about that many: the changes of the last revision taken
        are never split. The caller checks ``revision >= floor`` first."""
        changes = self._changes
        if not changes or changes[-1].revision < revision:
            return []
        # Binary search by revision (a deque indexes in O(n) towards its
        # middle, but a watcher usually resumes near the end).
        low, high = 0, len(changes)
        while low < high:
            middle = (low + high) // 2
            if changes[middle].revision < revision:
                low = middle + 1
            else:
                high = middle
        held = len(changes) - low
        source: Iterable[Change]
        if 3 * held <= low:
            # islice walks a deque from its left end: 0.27 ms to reach the
            # end of a full history, for each woken watcher at each apply.
            # Near the right end, as a watcher that keeps up is, walk in
            # from there (copying costs about three of islice's steps).
            tail = list(itertools.islice(reversed(changes), held))
            tail.reverse()
            source = tail
        else:
            source = itertools.islice(changes, low, None)
        if limit is None:
            return list(source)
        taken: list[Change] = []
        for change in source:
            if len(taken) >= limit and change.revision != taken[-1].revision:
                break
            taken.append(change)
        return taken
