"""Every curl line of docs/api.md's "With curl" block, run as written
against a real cluster through a follower (so that ``-L`` follows the
307 to the leader): each answers 2xx with JSON (Prometheus text for
/metrics, events for the streams), and none needs a Content-Type."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from .cluster import Cluster

API_PAGE = Path(__file__).resolve().parents[2] / "docs" / "api.md"
#: The streams never end by themselves: the test ends each after this.
STREAM_SECONDS = 2
#: curl's exit status when --max-time ran out.
CURL_TIMED_OUT = 28


def documented_curl_lines() -> list[str]:
    text = API_PAGE.read_text()
    section = text[text.index("### With curl") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "no sh block in the 'With curl' section of docs/api.md"
    lines = [line for line in block.group(1).splitlines() if line.startswith("curl ")]
    assert len(lines) >= 15, lines
    return lines


def test_the_api_page_shows_curl_for_each_endpoint() -> None:
    shown = "\n".join(documented_curl_lines())
    for path in ("/api/status", "/api/kv/", "/api/kv?", "/api/txn", "/api/leases", "/api/watch",
                 "/api/events", "/api/members", "/api/leadership/transfer", "/metrics", "/healthz", "/readyz"):  # fmt: skip
        assert path in shown, path


@pytest.mark.integration
def test_every_curl_line_of_the_api_page_works_as_written(cluster: Cluster) -> None:
    leader, _ = cluster.wait_for_leader()
    follower = next(node for node in cluster.nodes.values() if node.id != leader)
    for line in documented_curl_lines():
        streaming = " -sN " in line
        extra = f" --max-time {STREAM_SECONDS}" if streaming else ""
        command = f"N={follower.url}; {line.split('  #')[0]}{extra} -w '\\n%{{http_code}}\\n'"
        result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
        expected_exit = CURL_TIMED_OUT if streaming else 0
        assert result.returncode == expected_exit, (line, result)
        *body_lines, status = result.stdout.rstrip("\n").split("\n")
        assert status.startswith("2"), (line, result.stdout[-2000:])
        body = "\n".join(body_lines).strip()
        if streaming:
            assert re.search(r"^event: \w+$", body, re.M), (line, body[:2000])
        elif "/metrics" in line:
            assert "raft_term" in body, body[:500]
        else:
            for document in filter(None, body.split("\n")):
                if not re.fullmatch(r"2\d\d", document):  # two URLs: the first one's status line
                    json.loads(document)


README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readmes_curl_writes_follow_a_redirect_to_the_leader() -> None:
    """The README's walk-through wrote with ``curl -s -X PUT`` to n1, which
    leads only sometimes: on a follower the line printed a 307 and wrote
    nothing. A write (or a linearizable read) may reach a follower; every
    such curl line of the README must carry ``-L``."""
    lines = [line.split("  #")[0] for line in README.read_text().splitlines() if line.startswith("curl ")]
    assert lines
    for line in lines:
        if "/api/kv/" in line and " -N " not in line:
            flags = re.match(r"curl (-\w+)", line)
            assert flags is not None and "L" in flags.group(1), line
