"""A member that was removed starts over: a replica scaled away, removed,
and scaled up again finds its old data, which holds a configuration of
its own; it would stay outside the cluster for ever. Once it is certain
that it was removed (:class:`RemovalWatch`), its data is set aside
(:func:`retire_data_dir`) and it joins again as a new member."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from ._probe import MemberView, PeerStatus


class RemovalWatch:
    """Whether this node was removed from its cluster, for certain: then it
    starts over as a new member (:func:`retire_data_dir`), where it would
    otherwise hold a configuration of its own for ever (a replica scaled
    away, removed, and scaled up again finds its old data).

    Certain means committed: either this node's own committed configuration
    leaves it out after one that had it (the leader sends a member it
    removes the entries that remove it; a node that joins and replays the
    log meets configurations from before it was added, which do not
    count), or a leader whose configuration leaves it out has committed up
    to the end of the log it had when it first left it out, in the same
    term (so that configuration entry is committed; one answer does when
    its whole log is committed). A removal that is merely appended could
    still be undone by a new leader. A leader whose configuration shares
    no voter with this node's is another cluster's (replicas of the same
    service that formed one of their own) and says nothing about this
    one: believing it once made every member of a cluster set its data
    aside."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._was_member = False
        #: leader id -> (term, last log index) when it first left us out.
        self._seen: dict[str, tuple[int, int]] = {}

    def removed(
        self,
        own: Sequence[MemberView],
        own_committed: Sequence[MemberView],
        probes: Iterable[PeerStatus],
    ) -> str | None:
        """Why this node is removed, or None. ``own``: its configuration in
        force; ``own_committed``: its last committed one."""
        leaders = {s.id: s for s in probes if s.leader_log is not None and s.id != self.node_id}
        listed = any(m.id == self.node_id for m in own_committed)
        if listed:
            self._was_member = True
        elif self._was_member and own_committed and not self._listed_again(own, leaders.values()):
            return "its own committed configuration leaves it out"
        if not own:
            return None  # joining: no configuration of its own yet
        ours = {m.id for m in [*own, *own_committed] if m.voter} - {self.node_id}
        for leader in leaders.values():
            assert leader.leader_log is not None
            term, commit, last = leader.leader_log
            foreign = not ours & {m.id for m in leader.members if m.voter}
            if not leader.members or leader.member(self.node_id) is not None or foreign:
                self._seen.pop(leader.id, None)
                continue
            first = self._seen.setdefault(leader.id, (term, last))
            if first[0] != term:
                self._seen[leader.id] = (term, last)
            elif commit >= first[1]:
                return f"the leader {leader.id} committed a configuration without it (term {term})"
        for gone in set(self._seen) - set(leaders):
            del self._seen[gone]
        return None

    def _listed_again(self, own: Sequence[MemberView], leaders: Iterable[PeerStatus]) -> bool:
        """Whether a configuration newer than its committed one names this
        node: the one it appended, or a leader's. A member removed and added
        again under the same id replays its earlier life while it catches
        up (a configuration with it, the one that removed it, the one that
        adds it again), and its committed configuration leaves it out in
        between."""
        if any(m.id == self.node_id for m in own):
            return True
        return any(leader.member(self.node_id) is not None for leader in leaders)


#: Where the data of a removed member is kept, beside the data directories.
REMOVED_DIR = ".removed"


def retire_data_dir(data_dir: str | os.PathLike[str]) -> Path:
    """Move a removed member's data directory aside (``<parent>/.removed/
    <name>.<n>``), durably; the path it is kept at."""
    path = Path(data_dir)
    keep = path.parent / REMOVED_DIR
    keep.mkdir(exist_ok=True)
    n = 1
    while (keep / f"{path.name}.{n}").exists():
        n += 1
    target = keep / f"{path.name}.{n}"
    os.replace(path, target)
    for directory in (keep, path.parent):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return target
