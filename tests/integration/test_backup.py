"""Backups with real processes and the real console script: a backup
taken under write load restores, in a new cluster, to exactly the state
at its revision; a damaged or truncated file is refused whole."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from .cluster import HTTP_TIMEOUT, Cluster, cli_command, wait_until

pytestmark = pytest.mark.integration


def raft_trio(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli_command(), *args], capture_output=True, text=True, timeout=60, env=env)


def restore(file: Path, cluster: Cluster, node_id: str, *options: str) -> dict[str, Any]:
    """``raft-trio snapshot restore`` of ``file`` into ``node_id``'s data
    directory, for ``cluster``'s members; what it printed."""
    node = cluster[node_id]
    result = raft_trio(
        "snapshot", "restore", str(file), "--data-dir", str(node.data_dir), "--id", node_id,
        "--peers", cluster.peers, *options,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def state_at(changes: list[tuple[int, str, str, str | None]], revision: int) -> dict[str, str]:
    """The keys and values after every change up to ``revision``."""
    state: dict[str, str] = {}
    for changed_at, kind, key, value in changes:
        if changed_at > revision:
            break
        if kind == "put":
            assert value is not None
            state[key] = value
        else:
            state.pop(key, None)
    return state


def every_change(url: str, up_to: int) -> list[tuple[int, str, str, str | None]]:
    """Every change from revision 1 to ``up_to``, read from a watch."""
    changes: list[tuple[int, str, str, str | None]] = []
    with (
        httpx.Client(timeout=httpx.Timeout(10.0), trust_env=False) as http,
        http.stream("GET", url + "/api/watch", params={"start_revision": 1}) as r,
    ):
        assert r.status_code == 200, r.read()
        event_id, name = 0, ""
        for line in r.iter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                changes.append((event_id, name, data["key"], data.get("value")))
            elif line == "" and event_id >= up_to:
                break
    return changes


def test_a_backup_taken_under_load_restores_to_exactly_its_revision(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    source = make_cluster("source")
    lid, _ = source.wait_for_leader()
    endpoints = ",".join(node.url for node in source.nodes.values())
    stop = threading.Event()
    written = [0]

    def writer(number: int) -> None:
        with httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False, follow_redirects=True) as http:
            n = 0
            while not stop.is_set():
                http.put(source.kv_url(lid, f"k{number}-{n % 40}"), json={"value": f"v{n}"})
                if n % 7 == 0:
                    http.delete(source.kv_url(lid, f"k{number}-{(n * 3) % 40}"))
                n += 1
                written[0] += 1

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(3)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: (written[0] > 150, written[0]), 30, "writes before the backup")
        file = tmp_path / "backup.snapshot"
        saved = raft_trio("snapshot", "save", str(file), "--cluster", endpoints)
        assert saved.returncode == 0, saved.stderr
        wait_until(lambda: (written[0] > 300, written[0]), 30, "writes after the backup")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    summary = json.loads(saved.stdout)
    revision = summary["revision"]
    assert summary["file"] == str(file) and file.stat().st_size == summary["bytes"]
    expected = state_at(every_change(source[lid].url, revision), revision)
    assert expected, "the backup was taken before any write"

    restored = Cluster(tmp_path / "restored", "restored")
    try:
        for node_id in restored.nodes:
            answer = restore(file, restored, node_id)
            assert answer["revision"] == revision and answer["id"] == node_id
        restored.start()
        base_id = restored.leader().id
        base = restored[base_id].url
        page: dict[str, Any] = restored.follow.get(base + "/api/kv", params={"limit": 10000}).json()
        assert {kv["key"]: kv["value"] for kv in page["kvs"]} == expected
        assert max(kv["mod_revision"] for kv in page["kvs"]) <= revision < page["revision"]
        # A new cluster: it takes writes, at revisions after the backup's.
        put = restored.follow.put(base + "/api/kv/after-restore", json={"value": "new"}).json()
        assert put["index"] > revision
        source_status = source.status(lid)
        restored_status = restored.status(restored.leader().id)
        assert source_status is not None and restored_status is not None
        assert {m["url"] for m in restored_status["members"]}.isdisjoint(
            {m["url"] for m in source_status["members"]}
        )

        # None of its members was recorded as started by the source: each
        # is, once it acknowledged entries of the new cluster.
        def all_started() -> tuple[bool, Any]:
            members = (restored.status(base_id) or {}).get("members", [])
            return bool(members) and all(m["started"] for m in members), members

        wait_until(all_started, 30, "every restored member recorded as started")
        # One member's disk is lost and the operator restores it again from
        # the same file: a directory the cluster accepts, at term 1 with
        # no vote. It asks the cluster first, and is refused (a review's
        # finding: it started as a voter that could vote twice in a term).
        victim = next(i for i in restored.nodes if i != base_id)
        restored[victim].kill()
        shutil.rmtree(restored[victim].data_dir)
        restore(file, restored, victim)
        restored[victim].start()
        popen = restored[victim].popen
        assert popen is not None and popen.wait(timeout=30) == 78
        assert f"{victim} is already a member" in restored[victim].log_text(this_run=True)
    finally:
        restored.close()


def test_a_damaged_or_truncated_backup_is_refused_and_nothing_is_made(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    source = make_cluster("source")
    source.write("k", "v")
    file = tmp_path / "good.snapshot"
    saved = raft_trio("snapshot", "save", str(file), "--cluster", source.leader().url)
    assert saved.returncode == 0, saved.stderr
    data = file.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    damaged = {
        "truncated": data[: len(data) - 10],
        "flipped": bytes(flipped),
        "appended": data + b"x",
        "not a backup": b"hello\n",
        "empty": b"",
    }
    for name, content in damaged.items():
        bad = tmp_path / f"{name.replace(' ', '-')}.snapshot"
        bad.write_bytes(content)
        target = tmp_path / f"dir-{name.replace(' ', '-')}"
        result = raft_trio(
            "snapshot", "restore", str(bad), "--data-dir", str(target), "--id", "n1",
            "--peers", "n1=http://127.0.0.1:1",
        )  # fmt: skip
        assert result.returncode == 65, (name, result.stdout, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "refused" in result.stderr, result.stderr
        assert not target.exists(), name
    # An existing, non-empty directory is not overwritten.
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "something").write_text("mine")
    result = raft_trio(
        "snapshot", "restore", str(file), "--data-dir", str(occupied), "--id", "n1",
        "--peers", "n1=http://127.0.0.1:1",
    )  # fmt: skip
    assert result.returncode == 2 and "not empty" in result.stderr, result.stderr
    assert [p.name for p in occupied.iterdir()] == ["something"]
    # A file that is not there is a mistyped argument (2), not a damaged backup (65).
    target = tmp_path / "dir-missing"
    result = raft_trio(
        "snapshot", "restore", str(tmp_path / "nope.snapshot"), "--data-dir", str(target), "--id", "n1",
        "--peers", "n1=http://127.0.0.1:1",
    )  # fmt: skip
    assert result.returncode == 2 and "cannot read" in result.stderr, (result.returncode, result.stderr)
    assert not target.exists()


def test_snapshot_prints_json_and_with_o_table_a_table(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    """``-o table`` was accepted and ignored: both printed JSON (which stays
    the default, what a backup script keeps)."""
    source = make_cluster("source")
    file = tmp_path / "b.snapshot"
    saved = raft_trio("snapshot", "save", str(file), "--cluster", source.leader().url, "-o", "table")
    assert saved.returncode == 0, saved.stderr
    titles, row = saved.stdout.splitlines()
    assert titles.split() == ["FILE", "REVISION", "BYTES", "SHA256", "CLUSTER", "ID"]
    assert row.startswith(str(file)), row
    restored = raft_trio(
        "snapshot", "restore", str(file), "--data-dir", str(tmp_path / "r"), "--id", "n1",
        "--peers", "n1=http://127.0.0.1:1", "-o", "table",
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    titles, row = restored.stdout.splitlines()
    assert titles.split()[:2] == ["DATA", "DIR"] and "n1=http://127.0.0.1:1" in row, restored.stdout
    again = raft_trio("snapshot", "save", str(tmp_path / "c.snapshot"), "--cluster", source.leader().url)
    assert json.loads(again.stdout)["file"] == str(tmp_path / "c.snapshot")


def test_a_backup_needs_the_admin_token_when_one_is_set(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    token = "admin-token-of-at-least-16-bytes"
    source = make_cluster("guarded", env={"RAFT_ADMIN_TOKEN": token})
    source.write("k", "v")
    url = source.leader().url
    refused = source.http.get(url + "/api/snapshot")
    assert refused.status_code == 401, refused.text
    file = tmp_path / "b.snapshot"
    without = raft_trio("snapshot", "save", str(file), "--cluster", url, env={"PATH": "/usr/bin:/bin"})
    assert without.returncode == 1 and not file.exists(), without.stdout + without.stderr
    with_token = raft_trio(
        "snapshot",
        "save",
        str(file),
        "--cluster",
        url,
        env={"PATH": "/usr/bin:/bin", "RAFT_ADMIN_TOKEN": token},
    )
    assert with_token.returncode == 0, with_token.stderr


def backed_up(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> tuple[Cluster, Path, str, dict[str, Any]]:
    """A cluster holding one key, and its backup: the cluster, the file,
    its endpoints and what ``snapshot save`` printed."""
    source = make_cluster("source")
    source.wait_for_leader()
    source.write("k", "v")
    file = tmp_path / "backup.snapshot"
    endpoints = ",".join(node.url for node in source.nodes.values())
    saved = raft_trio("snapshot", "save", str(file), "--cluster", endpoints)
    assert saved.returncode == 0, saved.stderr
    summary: dict[str, Any] = json.loads(saved.stdout)
    return source, file, endpoints, summary


def test_two_restored_members_of_three_form_the_cluster(
    tmp_path: Path, make_cluster: Callable[..., Cluster]
) -> None:
    """A restored cluster starts at term 1, where nobody has voted: two of
    three restored members, started a moment apart while the third is lost,
    form the cluster (a review found the second waiting for the third for
    ever: only term 0 counted as new)."""
    _, file, _, _ = backed_up(make_cluster, tmp_path)
    restored = Cluster(tmp_path / "restored", "restored")
    try:
        for node_id in restored.nodes:
            restore(file, restored, node_id)
        restored["n1"].start()
        wait_until(
            lambda: ("first start" in restored["n1"].log_text(), restored["n1"].log_tail()), 30, "n1 asks"
        )
        restored["n2"].start()  # n3's machine is the one that was lost
        restored.wait_for_leader(["n1", "n2"])
    finally:
        restored.close()


def test_after_a_restore_with_bump_revision_fencing_tokens_pass_the_old_clusters(
    tmp_path: Path, make_cluster: Callable[..., Cluster]
) -> None:
    """The old cluster gave out revisions after its backup (here a lock's
    fencing token). Restored with ``--bump-revision`` larger than the
    writes since, the new cluster's next holder gets a larger token, as a
    storage service that saw the old one needs; a watch from a revision of
    the old cluster's after the backup gets 410, not a silent gap."""
    source, file, endpoints, saved = backed_up(make_cluster, tmp_path)
    backup_revision = saved["revision"]
    show_token = ["--", "sh", "-c", 'echo "$RAFT_FENCING_TOKEN"']
    for n in range(3):
        source.write(f"after-backup-{n}", "v")
    old = raft_trio("lock", "job", "--cluster", endpoints, *show_token)
    assert old.returncode == 0, old.stderr
    old_token = int(old.stdout.split()[-1])
    assert old_token > backup_revision

    restored = Cluster(tmp_path / "restored", "restored")
    try:
        for node_id in restored.nodes:
            answer = restore(file, restored, node_id, "--bump-revision", "100")
            assert (answer["revision"], answer["bumped_by"]) == (backup_revision + 100, 100)
        restored.start()
        url = restored[restored.leader().id].url
        assert restored.follow.get(url + "/api/kv/k").json()["value"] == "v"
        new_endpoints = ",".join(node.url for node in restored.nodes.values())
        new = raft_trio("lock", "job", "--cluster", new_endpoints, *show_token)
        assert new.returncode == 0, new.stderr
        assert int(new.stdout.split()[-1]) > backup_revision + 100 > old_token
        gone = restored.follow.get(url + "/api/watch", params={"start_revision": backup_revision + 1})
        assert gone.status_code == 410, gone.text
    finally:
        restored.close()
