"""What the peer-signature tests share."""

from __future__ import annotations

from collections.abc import Sequence


class KeptNonces:
    """A data directory's ``peer-nonces.json``, in memory."""

    def __init__(self) -> None:
        self.saved: list[tuple[str, str, int]] = []

    def load(self) -> list[tuple[str, str, int]]:
        return list(self.saved)

    def save(self, accepted: Sequence[tuple[str, str, int]]) -> None:
        self.saved = list(accepted)
