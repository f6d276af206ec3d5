"""Scripted transcripts of the core, in the style of etcd-io/raft's
``testdata``: each file under ``testdata/`` is a list of commands, each
followed by ``----`` and the output it must produce, up to a blank line.
A transcript reads as the story it tells (who sends what to whom, who
leads in which term), and a change in behaviour shows as a diff.

Commands (on a :class:`~raft_trio.testing.memory.MemoryCluster`):

- ``cluster a b c [seed=N] [setting=value ...]``: a new cluster (the core
  tests' small timing, with RaftConfig settings changed);
- ``campaign ID``: ID's election timer fires; prints its status;
- ``tick ID N``: N ticks on ID alone, nothing delivered; prints its status;
- ``propose ID DATA``: prints the index, or the error;
- ``isolate ID``, ``heal``: lose everything to and from ID, or nothing;
- ``stabilize``: handle every Ready and deliver every message until the
  network is quiet; prints each message delivered, in order, then each
  lost to a partition;
- ``status ID ...``: one line per node.

``RAFT_REWRITE_TRANSCRIPTS=1 pytest tests/core/test_transcripts.py``
rewrites the expected outputs from what the core does (then read the diff).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from raft_trio.core import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    RaftCore,
    RaftError,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)

from .helpers import CONFIG, Network

TESTDATA = Path(__file__).parent / "testdata"
REWRITE = os.environ.get("RAFT_REWRITE_TRANSCRIPTS") == "1"


def entries(items: tuple[Entry, ...]) -> str:
    return "[" + " ".join(f"{e.index}@{e.term}" for e in items) + "]"


def describe(m: Message) -> str:
    head = f"{m.src}->{m.dst} {type(m).__name__} term={m.term}"
    if isinstance(m, RequestVote):
        flags = "".join([" pre_vote" if m.pre_vote else "", " transfer" if m.transfer else ""])
        return f"{head} last={m.last_log_index}@{m.last_log_term}{flags}"
    if isinstance(m, RequestVoteResponse):
        return f"{head} {'granted' if m.granted else 'rejected'}{' pre_vote' if m.pre_vote else ''}"
    if isinstance(m, AppendEntries):
        return f"{head} prev={m.prev_index}@{m.prev_term} entries={entries(m.entries)} commit={m.commit}"
    if isinstance(m, AppendEntriesResponse):
        if m.success:
            return f"{head} ok index={m.index}"
        return f"{head} reject index={m.index} hint={m.hint_index}@{m.hint_term}"
    if isinstance(m, Heartbeat):
        return f"{head} commit={m.commit} seq={m.seq}"
    if isinstance(m, HeartbeatResponse):
        return f"{head} seq={m.seq}"
    if isinstance(m, InstallSnapshot):
        return f"{head} snapshot={m.meta.index}@{m.meta.term}"
    assert isinstance(m, TimeoutNow)
    return head


def status_line(node_id: str, core: RaftCore) -> str:
    s = core.status()
    return (
        f"{node_id}: {s.role.value} term={s.term} vote={s.vote or '-'} leader={s.leader_id or '-'} "
        f"commit={s.commit} last={s.last_index}"
    )


def setting(value: str) -> object:
    if value in ("true", "false"):
        return value == "true"
    return int(value)


class Transcript:
    def __init__(self) -> None:
        self.net: Network | None = None

    @property
    def cluster(self) -> Network:
        assert self.net is not None, "no cluster yet: start with `cluster a b c`"
        return self.net

    def run(self, command: str) -> list[str]:
        name, *args = command.split()
        if name == "cluster":
            ids = [a for a in args if "=" not in a]
            changes = {k: setting(v) for k, v in (a.split("=", 1) for a in args if "=" in a)}
            seed = changes.pop("seed", 0)
            assert isinstance(seed, int)
            config = dataclasses.replace(CONFIG, **changes)  # type: ignore[arg-type]
            self.net = Network(ids, config=config, seed=seed)
            return [status_line(i, c) for i, c in sorted(self.cluster.cores.items())]
        net = self.cluster
        if name == "campaign":
            net.time_out(args[0])
            return [status_line(args[0], net.cores[args[0]])]
        if name == "tick":
            net.tick(args[0], int(args[1]))
            return [status_line(args[0], net.cores[args[0]])]
        if name == "propose":
            try:
                return [f"index {net.cores[args[0]].propose(args[1].encode())}"]
            except RaftError as error:
                return [f"{type(error).__name__}: {error}"]
        if name == "isolate":
            net.isolate(args[0])
            return ["ok"]
        if name == "heal":
            net.heal()
            return ["ok"]
        if name == "stabilize":
            delivered, lost = len(net.delivered), len(net.lost)
            net.deliver_all()
            moved = [describe(m) for m in net.delivered[delivered:]]
            moved += [f"lost: {describe(m)}" for m in net.lost[lost:]]
            return moved or ["(quiet)"]
        if name == "status":
            return [status_line(i, net.cores[i]) for i in args]
        raise ValueError(f"unknown command {command!r}")


def parse(text: str) -> list[tuple[int, str, list[str]]]:
    """(line, command, expected output) for each case of a transcript."""
    cases: list[tuple[int, str, list[str]]] = []
    lines = text.splitlines()
    position = 0
    while position < len(lines):
        line = lines[position]
        if not line.strip() or line.startswith("#"):
            position += 1
            continue
        assert lines[position + 1] == "----", f"line {position + 2}: expected ---- after the command"
        end = position + 2
        while end < len(lines) and lines[end].strip():
            end += 1
        cases.append((position + 1, line, lines[position + 2 : end]))
        position = end
    return cases


def rewrite(text: str, outputs: list[list[str]]) -> str:
    lines = text.splitlines()
    result: list[str] = []
    position = 0
    case = 0
    while position < len(lines):
        line = lines[position]
        if not line.strip() or line.startswith("#"):
            result.append(line)
            position += 1
            continue
        result += [line, "----", *outputs[case]]
        case += 1
        position += 2
        while position < len(lines) and lines[position].strip():
            position += 1
    return "\n".join(result) + "\n"


@pytest.mark.parametrize("path", sorted(TESTDATA.glob("*.txt")), ids=lambda p: p.stem)
def test_transcript(path: Path) -> None:
    text = path.read_text()
    transcript = Transcript()
    outputs = []
    for line, command, expected in parse(text):
        actual = transcript.run(command)
        outputs.append(actual)
        if not REWRITE:
            assert actual == expected, f"{path.name}:{line}: {command}"
    if REWRITE:
        path.write_text(rewrite(text, outputs))
