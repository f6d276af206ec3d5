"""A checker for watch streams recorded by black-box tests: were the
changes a watcher received gap-free, in order, never repeated, and the
same as what the cluster acknowledged?

The watcher may have reconnected any number of times, to any node, with
``Last-Event-ID``; what it received is checked as one stream:

- revisions never go down, and no change (revision, key) comes twice;
- per key, each put's ``version`` is the previous put's plus one (1 after
  a delete or at the start): a skipped change shows as a jump;
- every write acknowledged with 200 is in the stream at its revision with
  its value, and no put carries a value whose write certainly failed;
- replayed in order, the stream ends in exactly the final state (one
  linearizable read per key after the run).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping


@dataclasses.dataclass(frozen=True)
class WatchedChange:
    revision: int
    kind: str  # "put" or "delete"
    key: str
    value: str | None
    version: int


@dataclasses.dataclass(frozen=True)
class WatchReport:
    ok: bool
    problems: list[str]

    @property
    def message(self) -> str:
        if self.ok:
            return "the watch stream is gap-free, in order and matches the cluster"
        return "; ".join(self.problems[:10])


def check_watch(
    changes: Iterable[WatchedChange],
    acknowledged: Mapping[tuple[str, str], int | None],
    failed_values: Iterable[tuple[str, str]],
    final: Mapping[str, str | None],
    start_revision: int = 1,
) -> WatchReport:
    """``acknowledged``: (key, value) of every write answered 200 -> its
    revision (None if the answer did not say); ``failed_values``: (key,
    value) of writes known not to have taken effect; ``final``: each key's
    value read linearizably at the end (None: absent). The stream is taken
    to start at ``start_revision`` with every key absent."""
    problems: list[str] = []
    seen: set[tuple[int, str]] = set()
    last_revision = start_revision - 1
    versions: dict[str, int] = {}
    state: dict[str, str] = {}
    put_at: dict[tuple[str, str], int] = {}
    for change in changes:
        if change.revision < last_revision:
            problems.append(f"revision {change.revision} after {last_revision}: out of order")
        last_revision = max(last_revision, change.revision)
        if (change.revision, change.key) in seen:
            problems.append(f"{change.key!r} at revision {change.revision} received twice")
        seen.add((change.revision, change.key))
        if change.kind == "put":
            expected = versions.get(change.key, 0) + 1
            if change.version != expected:
                problems.append(
                    f"{change.key!r} version {change.version} at revision {change.revision}, "
                    f"expected {expected}: a change was skipped"
                )
            versions[change.key] = change.version
            assert change.value is not None
            state[change.key] = change.value
            put_at[(change.key, change.value)] = change.revision
        else:
            versions.pop(change.key, None)
            state.pop(change.key, None)
    for (key, value), revision in acknowledged.items():
        got = put_at.get((key, value))
        if got is None:
            problems.append(f"acknowledged write {key}={value!r} (revision {revision}) never watched")
        elif revision is not None and got != revision:
            problems.append(f"acknowledged write {key}={value!r} at revision {revision} watched at {got}")
    for key, value in failed_values:
        if (key, value) in put_at:
            problems.append(f"{key}={value!r} failed for certain, yet was watched at {put_at[(key, value)]}")
    for key, final_value in final.items():
        if state.get(key) != final_value:
            problems.append(
                f"the stream ends with {key}={state.get(key)!r}, the cluster holds {final_value!r}"
            )
    return WatchReport(not problems, problems)
