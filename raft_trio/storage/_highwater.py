"""The high-water mark: what this node promised, kept where SQLite's WAL
cannot roll it back.

``DATA_DIR/high-water.json`` holds the term and vote this node last made
durable and the commit index it knew then, with a CRC32. It is replaced
(temporary file, fsync, rename, directory fsync) after the database commit
that changes the term or the vote, before any message that depends on it
leaves, and once more when the node stops cleanly (then with the final
commit index). Terms and votes change only in elections, so it costs
nothing per write.

On start the database must not be behind it: a lower term, another (or no)
vote in the same term, or a log that ends below the recorded commit index
means the database lost writes it had acknowledged (a rolled-back WAL, an
old copy of ``raft.db`` put back), and the start is refused. A database
ahead of the mark is normal (the node died between its commit and the
mark's rename) and the mark is brought up to date.

The commit index, not the last log index, is what the log is held to: a
follower's uncommitted tail may be replaced by a new leader's shorter log,
but committed entries are never removed except into a snapshot.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path

from raft_trio.core import HardState

from ._errors import CorruptionError
from ._files import atomic_write

MARK_NAME = "high-water.json"


@dataclasses.dataclass(frozen=True)
class HighWater:
    term: int = 0
    vote: str | None = None
    commit: int = 0

    @classmethod
    def of(cls, hard_state: HardState) -> HighWater:
        return cls(hard_state.term, hard_state.vote, hard_state.commit)

    def same_promise(self, hard_state: HardState) -> bool:
        """Whether ``hard_state`` promises what this mark records (term and vote)."""
        return (self.term, self.vote) == (hard_state.term, hard_state.vote)

    def encode(self) -> bytes:
        body = json.dumps({"term": self.term, "vote": self.vote, "commit": self.commit}, sort_keys=True)
        return (json.dumps({"mark": json.loads(body), "crc32": zlib.crc32(body.encode())}) + "\n").encode()


def read_mark(root: Path) -> HighWater | None:
    """The mark in ``root``; None if there is none (a directory made before
    marks existed, or a node that never voted nor learnt a term). A mark
    that fails its CRC or does not parse is refused: it exists only to say
    what the node promised."""
    path = root / MARK_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
        mark = doc["mark"]
        body = json.dumps(mark, sort_keys=True)
        if zlib.crc32(body.encode()) != doc["crc32"]:
            raise ValueError("CRC32 mismatch")
        term, vote, commit = mark["term"], mark["vote"], mark["commit"]
        if not (
            isinstance(term, int) and isinstance(commit, int) and (vote is None or isinstance(vote, str))
        ):
            raise ValueError("malformed fields")
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptionError(f"{path} is damaged ({exc})") from exc
    return HighWater(term, vote, commit)


def write_mark(root: Path, mark: HighWater) -> None:
    atomic_write(root / MARK_NAME, mark.encode())


def check_hard_state(mark: HighWater | None, hard_state: HardState, where: Path) -> None:
    """Raise :class:`CorruptionError` if ``hard_state`` (from the database)
    is behind the mark's term or vote."""
    if mark is None:
        return
    if hard_state.term < mark.term or (
        hard_state.term == mark.term and mark.vote is not None and hard_state.vote != mark.vote
    ):
        raise CorruptionError(
            f"{where} holds term {hard_state.term} and vote {hard_state.vote!r}, but this node had made "
            f"term {mark.term} and vote {mark.vote!r} durable ({MARK_NAME}): the database lost writes "
            "it had acknowledged, and a node that forgot its vote could vote twice in a term"
        )


def check_log(mark: HighWater | None, last_index: int, where: Path) -> None:
    """Raise :class:`CorruptionError` if the recovered log (its last index,
    or the snapshot's when the log is empty) ends below the mark's commit."""
    if mark is not None and last_index < mark.commit:
        raise CorruptionError(
            f"{where} ends at entry {last_index}, but this node knew entries up to {mark.commit} "
            f"committed ({MARK_NAME}): the database lost committed entries"
        )
