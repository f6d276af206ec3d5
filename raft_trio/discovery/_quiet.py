"""A logging filter that says a repeated warning once, then again only
after a quiet window, with a count of what it held back.

A node that keeps asking to join a cluster that refuses it (a wrong
admin token: 401) retries every second, and each refusal is the same
line: the log would fill with it, and hide whatever else happens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: Seconds a repeated message stays quiet.
QUIET_S = 30.0


class QuietRepeats(logging.Filter):
    """Lets a record through unless the same message passed less than
    ``window`` seconds ago; the next one that passes says how many were
    held back. Records below WARNING always pass."""

    def __init__(self, window: float = QUIET_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._window = window
        self._clock = clock
        #: Message -> when it last passed, and how many were held since.
        self._seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        message, now = record.getMessage(), self._clock()
        seen = self._seen.get(message)
        if seen is not None and now - seen[0] < self._window:
            self._seen[message] = (seen[0], seen[1] + 1)
            return False
        self._forget_older_than(now - self._window)
        self._seen[message] = (now, 0)
        if seen is not None and seen[1]:
            record.msg, record.args = f"{message} ({seen[1]} more like it in {now - seen[0]:.0f} s)", None
        return True

    def _forget_older_than(self, cutoff: float) -> None:
        """Messages quiet for a whole window (the reasons of a join change
        with the cluster: addresses, terms) are not kept for ever."""
        if len(self._seen) > 64:
            self._seen = {m: seen for m, seen in self._seen.items() if seen[0] >= cutoff}
