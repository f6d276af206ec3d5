"""Slows down password guessing: a per-node limit on failed logins.

Each failed attempt is counted against the user name and against the
client's address. The first ``FREE_FAILURES`` failures cost nothing; after
that, each further attempt for that name (or from that address) must wait
``BASE_DELAY_S * 2^(k-1)`` seconds after the k-th extra failure, at most
``MAX_DELAY_S``. A success clears the name's count (not the address's, so
one valid account does not reset a guesser's address). An attempt still
being checked (:meth:`LoginThrottle.attempt`) counts as a failure until
its outcome is known: guesses sent all at once would otherwise all pass
the check before the first of them failed. A subject forgotten
after ``FORGET_AFTER_S`` without failures starts again; at most
``MAX_SUBJECTS`` are remembered (the oldest go first), which bounds memory.

The limit is per node, not replicated: a guesser spreading attempts over
N nodes gets N times the rate. With the defaults that is, per node and
name, six guesses at once (the five free failures and one more), then
about one a minute. Besides, every guess costs
the node one scrypt hash (raft_trio.auth.passwords).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import time
from collections.abc import Callable, Hashable, Iterator

FREE_FAILURES = 5
BASE_DELAY_S = 1.0
MAX_DELAY_S = 60.0
FORGET_AFTER_S = 15 * 60.0
MAX_SUBJECTS = 10_000


@dataclasses.dataclass
class _Failures:
    count: int
    last: float


class LoginThrottle:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        free_failures: int = FREE_FAILURES,
        base_delay_s: float = BASE_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
        forget_after_s: float = FORGET_AFTER_S,
        max_subjects: int = MAX_SUBJECTS,
    ) -> None:
        self._clock = clock
        self.free_failures = free_failures
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.forget_after_s = forget_after_s
        self.max_subjects = max_subjects
        self._failures: collections.OrderedDict[Hashable, _Failures] = collections.OrderedDict()
        #: Attempts being checked now, per subject (none: not a key).
        self._in_flight: collections.Counter[Hashable] = collections.Counter()

    def _delay(self, count: int) -> float:
        extra = count - self.free_failures
        if extra <= 0:
            return 0.0
        return min(self.base_delay_s * (1 << min(extra - 1, 62)), self.max_delay_s)

    def _current(self, subject: Hashable, now: float) -> _Failures | None:
        failures = self._failures.get(subject)
        if failures is not None and now - failures.last >= self.forget_after_s:
            del self._failures[subject]
            return None
        return failures

    def wait_s(self, *subjects: Hashable) -> float:
        """How long until an attempt for these subjects is allowed (0: now).
        Attempts in flight count as failures made now."""
        now = self._clock()
        wait = 0.0
        for subject in subjects:
            failures = self._current(subject, now)
            in_flight = self._in_flight[subject]  # (a Counter: 0, and not stored, if none)
            if in_flight:
                count = in_flight + (failures.count if failures is not None else 0)
                wait = max(wait, self._delay(count))
            elif failures is not None:
                wait = max(wait, failures.last + self._delay(failures.count) - now)
        return wait

    @contextlib.contextmanager
    def attempt(self, *subjects: Hashable) -> Iterator[None]:
        """Around checking a password: while it runs, the attempt counts
        as a failure for :meth:`wait_s` (record its outcome inside with
        :meth:`failed` or :meth:`succeeded`)."""
        self._in_flight.update(subjects)
        try:
            yield
        finally:
            self._in_flight.subtract(subjects)
            for subject in subjects:
                if self._in_flight[subject] <= 0:
                    del self._in_flight[subject]

    def failed(self, *subjects: Hashable) -> None:
        now = self._clock()
        for subject in subjects:
            failures = self._current(subject, now)
            if failures is None:
                failures = self._failures[subject] = _Failures(0, now)
            failures.count += 1
            failures.last = now
            self._failures.move_to_end(subject)
        while len(self._failures) > self.max_subjects:
            self._failures.popitem(last=False)

    def succeeded(self, subject: Hashable) -> None:
        self._failures.pop(subject, None)

    def __len__(self) -> int:
        return len(self._failures)
