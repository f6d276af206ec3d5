"""Key arithmetic shared by ranges, watches and permissions."""

from __future__ import annotations


def prefix_end(prefix: str) -> str | None:
    """The smallest key greater than every key starting with ``prefix``
    (None: no such key, every key from ``prefix`` on matches)."""
    chars = list(prefix)
    while chars:
        last = ord(chars[-1])
        if last < 0x10FFFF:
            chars[-1] = chr(last + 1)
            return "".join(chars)
        chars.pop()
    return None
