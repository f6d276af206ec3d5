"""How the CLI fails: one line on stderr naming the problem, exit code 2
for a usage error, never a traceback."""

from __future__ import annotations

import sys
from typing import NoReturn

EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with what the user asked for: one line, exit code 2."""


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    print(f"raft-trio: {message}", file=sys.stderr)
    raise SystemExit(code)
