"""What the disk-fault tests share: small file systems (tmpfs mounts, which
need root), reading a refused node's one line, and the operator's way back
for a member whose data cannot be trusted (remove it, add it anew, start it)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..integration.cluster import CATCH_UP_S, Cluster, cli_command, wait_until
from .harness import wait_dead

MIB = 1 << 20


@contextlib.contextmanager
def mounted(path: Path, what: str, *mount_args: str) -> Iterator[Path]:
    """``mount mount_args... path`` for the block's duration, then a lazy
    unmount (skips the test, naming ``what``, where mounting is not
    allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *mount_args, str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount {what} (needs root, as CI has): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def tmpfs(path: Path, size: int) -> contextlib.AbstractContextManager[Path]:
    """A tmpfs of ``size`` bytes mounted at ``path`` for the block's
    duration (skips the test where mounting is not allowed)."""
    return mounted(path, "a tmpfs", "-t", "tmpfs", "-o", f"size={size}", "tmpfs")


def resize(path: Path, size: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True, capture_output=True)


def exit_line(c: Cluster, nid: str, status: int) -> str:
    """``nid`` exited with ``status``; returns the one line it printed
    (``raft-trio: ...``) after its last start, with no traceback."""
    code = wait_dead(c, nid)
    text = c[nid].log_text()
    since_start = text.rsplit("=== test: starting", 1)[-1]
    lines = [line for line in since_start.splitlines() if line.startswith("raft-trio: ")]
    assert code == status, f"{nid} exited with {code}, not {status}\n{c.tails()}"
    assert "Traceback" not in since_start, f"{nid} ended with a traceback\n{c.tails()}"
    assert len(lines) == 1, f"{nid} should end with one line, printed {lines}"
    return lines[0]


def no_tracebacks(c: Cluster) -> None:
    for node in c.nodes.values():
        assert "Traceback" not in node.log_text(), f"{node.id} logged a traceback\n{c.tails()}"


def cli(*args: str) -> str:
    done = subprocess.run([*cli_command(), *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"raft-trio {' '.join(args)}: {done.returncode} {done.stdout} {done.stderr}"
    return done.stdout


def rejoin(c: Cluster, nid: str, move_aside: bool = True) -> None:
    """The way back the refusal names, as an operator runs it: remove the
    member, move its data directory aside, add it anew, start it; it joins
    as a learner, catches up and is promoted to voter."""
    others = [i for i in c.nodes if i != nid]
    lid, _ = c.wait_for_leader(others)
    leader_url = c[lid].url
    cli("members", "remove", nid, "--cluster", leader_url)
    if move_aside:
        data_dir = c[nid].data_dir
        data_dir.rename(data_dir.with_name(data_dir.name + ".damaged"))
    cli("members", "add", nid, c[nid].url, "--cluster", leader_url)
    c[nid].start()

    def promoted() -> tuple[bool, object]:
        try:
            members = httpx.get(leader_url + "/api/members", timeout=2).json()["members"]
        except (httpx.HTTPError, ValueError, KeyError):
            return False, "no answer"
        entry = next((m for m in members if m["id"] == nid), None)
        return entry is not None and entry["voter"], members

    wait_until(promoted, CATCH_UP_S, f"{nid} to rejoin and be promoted to voter")
