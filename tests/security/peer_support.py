"""What the peer-signature tests share."""

from __future__ import annotations

from collections.abc import Mapping


class Marks:
    """A data directory's ``peer-marks.json``, in memory."""

    def __init__(self) -> None:
        self.saved: dict[str, int] = {}

    def load(self) -> dict[str, int]:
        return dict(self.saved)

    def save(self, marks: Mapping[str, int]) -> None:
        self.saved = dict(marks)
