"""End to end, in headless Chromium: a real 3-node cluster and the monitor
(separate processes), the page opened in Debian's ``chromium`` driven by
Playwright. The page shows three nodes and one leader; a key written
through its form moves the commit index; the leader is killed and the page
shows the new one; a fourth node joins and appears. Screenshots are saved
under ``test-artifacts/``, with the measured latency.

Latency: the time from a role change on a node (the node's own log line,
written in the same step as its event) to the page's ``data-role``
attribute changing (a MutationObserver stamps ``Date.now()``), both on this
machine's clock with millisecond resolution.

Skipped, with the reason, where ``/usr/bin/chromium`` or Playwright is
missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from raft_monitor._app import PACKAGE_STATIC
from raft_trio.client import Client
from raft_trio.testing.processes import (
    NodeCluster,
    Process,
    free_port,
    inherited_env,
    python_module,
    stop_all,
)

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "no Chromium at /usr/bin/chromium (apt-get install chromium; .ci/run does)", allow_module_level=True
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install -e '.[test]')"
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Short timeouts so that the test's elections take well under a second.
NODE_ENV = {
    "HEARTBEAT_REPEAT_MILLIS": "50",
    "ELECTION_TIMEOUT_LOWER_MILLIS": "400",
    "ELECTION_TIMEOUT_UPPER_MILLIS": "800",
    "LOGGING": "INFO",
}
#: The goal is 500 ms on loopback; the assertion leaves room for a loaded CI
#: machine running other tests in parallel.
LATENCY_BOUND_MS = 2000
WAIT_MS = 20_000

ROLE_RECORDER = """() => {
  window.__roleChanges = [];
  new MutationObserver((mutations) => {
    const t = Date.now();
    for (const m of mutations) {
      if (m.oldValue !== m.target.dataset.role) {
        window.__roleChanges.push({id: m.target.dataset.nodeId, role: m.target.dataset.role, t});
      }
    }
  }).observe(document.getElementById("nodes"),
             {subtree: true, attributes: true, attributeOldValue: true, attributeFilter: ["data-role"]});
}"""


class Cluster(NodeCluster):
    """n1-n3 (static peers) and the monitor, each a process of its own;
    n4 may join later."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, 3, inherited_env(extra=NODE_ENV))
        self.monitor_url = f"http://127.0.0.1:{free_port()}"
        seeds = ",".join(self.urls.values())
        self.monitor = Process(
            "monitor",
            [*python_module("raft_monitor"), "--listen", self.monitor_url[7:], "--nodes", seeds],
            tmp / "monitor.log",
            self.env,
        )

    def start_all(self) -> None:
        self.start_processes()
        self.monitor.start()

    def join(self, node_id: str, seed: str) -> None:
        port = free_port()
        self.add_node(node_id, ["--join", seed, "--advertise", f"http://127.0.0.1:{port}"], port=port)

    def stop_all(self) -> None:
        try:
            stop_all([*self.nodes.values(), self.monitor], grace=5)
        finally:
            self.close()

    def snapshot(self) -> dict[str, Any]:
        response = httpx.get(self.monitor_url + "/api/nodes", timeout=2, trust_env=False)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def leader_on_monitor(self, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                snapshot = self.snapshot()
                if snapshot["leader"] and len(snapshot["nodes"]) == 3:
                    return str(snapshot["leader"]["id"])
            time.sleep(0.1)
        raise AssertionError(f"no leader within {timeout} s; logs in {self.root}")

    def role_changes_in_log(self, node_id: str) -> list[tuple[float, str]]:
        """(Unix time in ms, role the page shows) for each logged role change."""
        pattern = re.compile(r"^(\S+ \S+) INFO .*role (\w+) -> (\w+) in term \d+")
        changes = []
        for line in self[node_id].log_text().splitlines():
            match = pattern.match(line)
            if match:
                when = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() * 1000
                # A pre-candidate is shown as a candidate: its step to
                # candidate changes nothing on the page.
                old, new = (("candidate" if r == "pre_candidate" else r) for r in match.group(2, 3))
                if old != new:
                    changes.append((when, new))
        return changes


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path)
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.stop_all()


def test_the_page_follows_the_cluster_through_a_leader_failure(cluster: Cluster) -> None:
    first_leader = cluster.leader_on_monitor()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(WAIT_MS)
            page.goto(cluster.monitor_url)

            # Three nodes, one leader, by the contract's attributes.
            page.wait_for_function(
                "document.querySelectorAll('[data-node-id]').length === 3"
                " && document.querySelectorAll('[data-role=leader]').length === 1"
            )
            ids = page.eval_on_selector_all("[data-node-id]", "cards => cards.map(c => c.dataset.nodeId)")
            assert sorted(ids) == ["n1", "n2", "n3"]
            assert page.get_attribute("[data-role=leader]", "data-node-id") == first_leader
            assert first_leader in (page.text_content("#leader-id") or "")
            page.evaluate(ROLE_RECORDER)

            # A write through the form moves every node's commit index.
            page.fill("#kv-key", "greeting")
            page.fill("#kv-value", "hello from the page")
            page.click("#kv-put")
            page.wait_for_selector("#kv-result[data-state=ok]")
            result = page.text_content("#kv-result") or ""
            index = int(re.search(r"index (\d+)", result).group(1))  # type: ignore[union-attr]
            page.wait_for_function(
                f"[...document.querySelectorAll('[data-node-id] .commit')].every(c => Number(c.textContent) >= {index})"
            )
            page.click("#kv-get")
            page.wait_for_function(
                "document.querySelector('#kv-result').textContent.includes('read greeting')"
            )
            assert "hello from the page" in (page.text_content("#kv-result") or "")

            # Kill the leader: the page shows it unreachable and the new leader.
            killed_at = time.time() * 1000
            cluster[first_leader].kill()
            page.wait_for_function(
                f"document.querySelector('[data-node-id={first_leader}]').dataset.role === 'unreachable'"
                f" && document.querySelectorAll('[data-role=leader]').length === 1"
            )
            new_leader = page.get_attribute("[data-role=leader]", "data-node-id")
            assert new_leader is not None and new_leader != first_leader
            page.wait_for_function(
                f"document.querySelector('#leader-id').textContent.includes('{new_leader}')"
            )

            # A node that joins appears without restarting the monitor.
            cluster.join("n4", cluster.urls[new_leader])
            page.wait_for_function(
                "document.querySelectorAll('[data-node-id]').length === 4"
                " && ['follower', 'learner'].includes(document.querySelector('[data-node-id=n4]')?.dataset.role)"
            )
            page.wait_for_timeout(600)  # let the indexes refresh for the picture
            page.screenshot(path=str(ARTIFACTS / "monitor.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            page.wait_for_timeout(200)
            page.screenshot(path=str(ARTIFACTS / "monitor-phone.png"), full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the page scrolls sideways at phone width ({width} px)"

            # Removed while it runs: no voter, for scripts either (its card
            # said data-voter="true" beside "not a member").
            with Client([cluster.urls[n] for n in ("n1", "n2", "n3")]) as client:
                client.remove_member("n4")
            page.wait_for_function("document.querySelector('[data-node-id=n4]')?.dataset.member === 'false'")
            assert page.get_attribute("[data-node-id=n4]", "data-voter") == "false"
            assert (page.text_content("[data-node-id=n4] .membership") or "").strip() == "not a member"

            page_changes: list[dict[str, Any]] = page.evaluate("window.__roleChanges")
        finally:
            browser.close()

    # Latency: each role change a surviving node logged after the kill, to
    # the page showing that role on that node's card.
    latencies = {}
    for node_id in ("n1", "n2", "n3"):
        if node_id == first_leader:
            continue
        for logged_at, role in cluster.role_changes_in_log(node_id):
            if logged_at < killed_at - 1:
                continue
            shown = [
                c["t"]
                for c in page_changes
                if c["id"] == node_id and c["role"] == role and c["t"] >= logged_at - 1
            ]
            assert shown, (
                f"{node_id} became {role} at {logged_at} but the page never showed it: {page_changes}"
            )
            latencies[f"{node_id} -> {role}"] = round(shown[0] - logged_at)
    detected = [c["t"] for c in page_changes if c["id"] == first_leader and c["role"] == "unreachable"]
    figures = {
        "role_change_to_page_ms": latencies,
        "max_role_change_to_page_ms": max(latencies.values()),
        "kill_to_unreachable_on_page_ms": round(detected[0] - killed_at),
    }
    (ARTIFACTS / "monitor-latency.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"monitor latency: {json.dumps(figures)}")
    assert f"{new_leader} -> leader" in latencies
    assert max(latencies.values()) < LATENCY_BOUND_MS, figures


class Writer(threading.Thread):
    """Writes keys through ``url`` (following the leader) until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.halt = threading.Event()
        self.written = 0

    def run(self) -> None:
        with httpx.Client(trust_env=False, follow_redirects=True, timeout=5) as client:
            while not self.halt.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    answer = client.put(f"{self.url}/api/kv/load/{self.written % 20}", json={"value": "x"})
                    self.written += answer.status_code == 200


def legend(page: Any, chart: str) -> dict[str, float]:
    """The chart's latest value per node, as its legend carries them."""
    items = page.eval_on_selector_all(
        f"[data-chart={chart}] .legend li", "items => items.map(i => [i.dataset.node, i.dataset.value])"
    )
    return {node_id: float(value) for node_id, value in items}


def test_the_chart_the_learners_and_a_pre_vote(cluster: Cluster) -> None:
    """Under writes the chart shows every node committing and the
    followers' lag (not the leader's); a learner is told apart from the
    voters; a node that can only ask for pre-votes shows "pre-vote", in
    its card and the timeline, its term unchanged."""
    leader = cluster.leader_on_monitor()
    writer = Writer(cluster.urls[leader])
    writer.start()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(WAIT_MS)
            page.goto(cluster.monitor_url)
            page.wait_for_function(
                "[...document.querySelectorAll('[data-chart=rate] .legend li')]"
                ".filter(i => Number(i.dataset.value) > 0).length === 3"
            )
            rates = legend(page, "rate")
            assert sorted(rates) == ["n1", "n2", "n3"] and min(rates.values()) > 0, rates
            lags, sampled_leader = page.evaluate(
                "[[...document.querySelectorAll('[data-chart=lag] .legend li')].map(i => i.dataset.node),"
                " document.querySelector('[data-chart=lag]').dataset.leader]"
            )
            assert sorted(lags) == sorted(n for n in ("n1", "n2", "n3") if n != sampled_leader), lags
            assert (
                page.eval_on_selector_all("[data-chart=rate] polyline[data-node=n1]", "lines => lines.length")
                >= 1
            )
            writer.halt.set()
            writer.join(timeout=10)
            assert writer.written > 0

            # A learner that never catches up (nothing runs at its URL).
            with Client([cluster.urls[n] for n in ("n1", "n2", "n3")]) as client:
                client.add_member("n9", f"http://127.0.0.1:{free_port()}")
            page.wait_for_function("document.querySelector('[data-node-id=n9]')?.dataset.voter === 'false'")
            assert (page.text_content("[data-node-id=n9] .membership") or "").strip() == "learner"
            assert (page.text_content("[data-node-id=n1] .membership") or "").strip() == "voter"

            # The leader and one follower pause: the other can only ask for pre-votes.
            page.wait_for_function("document.querySelectorAll('[data-role=leader]').length === 1")
            leader = page.get_attribute("[data-role=leader]", "data-node-id") or ""
            follower, lonely = (n for n in ("n1", "n2", "n3") if n != leader)
            term = int(page.text_content(f"[data-node-id={lonely}] .term") or "0")
            cluster[leader].pause()
            cluster[follower].pause()
            try:
                page.wait_for_function(
                    f"document.querySelector('[data-node-id={lonely}]').dataset.preVote === 'true'"
                )
                card = f"[data-node-id={lonely}]"
                assert page.get_attribute(card, "data-role") == "candidate"  # the contract's role
                assert (page.text_content(f"{card} .role-badge") or "").strip() == "pre-vote"
                assert int(page.text_content(f"{card} .term") or "0") == term
                page.wait_for_function(
                    f"[...document.querySelectorAll('#timeline li')].some(li => "
                    f"li.textContent.includes('{lonely}: follower → pre-vote (term {term})'))"
                )
                assert f"{lonely}: follower → candidate (term {term})" not in (
                    page.text_content("#timeline") or ""
                )
                page.wait_for_function(
                    f"['{leader}', '{follower}'].every(id => "
                    "document.querySelector(`[data-node-id=${id}]`).dataset.role === 'unreachable')"
                )
                page.screenshot(path=str(ARTIFACTS / "monitor-pre-vote.png"), full_page=True)
            finally:
                cluster[leader].resume()
                cluster[follower].resume()
        finally:
            writer.halt.set()
            browser.close()


# -- the page alone ------------------------------------------------------------

PAGE_URL = "http://monitor.test/"


class PageAlone:
    """The page in Chromium with no monitor behind it: its files come from
    the package, and its ``events`` stream and form answers from the test
    (Playwright routes), so that what the page does with a given event or
    key is checked in a second, without a cluster."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.events = ""
        #: How many times ``events`` answers 502 first (a proxy in front of
        #: a monitor that restarts).
        self.events_failures = 0
        self.kv_requests: list[tuple[str, str]] = []
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.route(f"{PAGE_URL}**", self._serve)

    def _serve(self, route: Any) -> None:
        request = route.request
        path = request.url.removeprefix(PAGE_URL).partition("?")[0]
        if path in ("", "static/app.js", "static/style.css"):
            name = path.removeprefix("static/") or "index.html"
            types = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
            route.fulfill(
                body=(PACKAGE_STATIC / name).read_text(), content_type=types[name.rpartition(".")[2]]
            )
        elif path == "events" and self.events_failures:
            self.events_failures -= 1
            route.fulfill(status=502, body="Bad Gateway", content_type="text/plain")
        elif path == "events":
            # The body ends (the page then says the monitor is unreachable);
            # a long retry keeps it from asking again.
            route.fulfill(body="retry: 600000\n" + self.events, content_type="text/event-stream")
        elif path.startswith("kv/"):
            self.kv_requests.append((request.method, path))
            key = urllib.parse.unquote(path.removeprefix("kv/"))
            answer = {"key": key, "value": "v", "index": 1}
            route.fulfill(json=answer, headers={"X-Raft-Node": "n1"})
        else:
            route.fulfill(status=404, json={"error": "not found"})

    def open(self, *events: tuple[str, dict[str, Any]]) -> None:
        self.events = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
        self.page.goto(PAGE_URL)


@pytest.fixture
def page_alone() -> Iterator[PageAlone]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            yield PageAlone(page)
        finally:
            browser.close()


def node_doc(node_id: str, role: str = "follower") -> dict[str, Any]:
    return {
        "id": node_id,
        "url": "http://127.0.0.1:9001",
        "role": role,
        "term": 1,
        "leader_id": node_id,
        "commit_index": 1,
        "applied_index": 1,
        "last_contact_ms_ago": 0,
        "reason": None,
        "member": True,
        "voter": True,
        "pre_vote": False,
    }


def test_a_node_id_is_text_in_the_chart_never_markup(page_alone: PageAlone) -> None:
    """A node's id is whatever the node says (the monitor checks only that
    it is not empty): the chart must show it, not parse it."""
    hostile = '"><img src=x onerror="window.__pwned=1">'
    samples = [
        {
            "at_ms": 1000 * i,
            "leader": hostile,
            "nodes": {hostile: {"commit_rate": 2.0, "lag": 1, "voter": True}},
        }
        for i in range(3)
    ]
    snapshot = {"nodes": [node_doc(hostile, "leader")], "leader": None, "timeline": [], "samples": samples}
    page_alone.open(("snapshot", snapshot))
    page = page_alone.page
    page.wait_for_selector("[data-chart=rate] .legend li")
    assert page.eval_on_selector_all("[data-chart] img", "images => images.length") == 0
    lines = page.eval_on_selector_all("[data-chart=rate] polyline", "lines => lines.map(l => l.dataset.node)")
    assert lines == [hostile]
    assert page.evaluate("window.__pwned") is None
    assert page_alone.errors == []


@pytest.mark.parametrize("key", ["a/../b", "a/./c", "/lead", "x/..", "%2e%2e/y"])
def test_the_form_sends_the_key_it_is_given(page_alone: PageAlone, key: str) -> None:
    """A browser resolves ``.`` and ``..`` path segments (``%2e`` too)
    before the request leaves: sent segment by segment, key ``a/../b``
    was written as ``b``."""
    page_alone.open(("snapshot", {"nodes": [node_doc("n1", "leader")], "leader": None, "timeline": []}))
    page = page_alone.page
    page.fill("#kv-key", key)
    page.click("#kv-put")
    page.wait_for_selector("#kv-result[data-state=ok]")
    [(method, path)] = page_alone.kv_requests
    assert method == "PUT" and urllib.parse.unquote(path.removeprefix("kv/")) == key
    assert (page.text_content("#kv-result") or "").startswith(f"wrote {key} = ")


@pytest.mark.parametrize("key", [".", ".."])
def test_the_form_says_it_cannot_send_a_dot_key(page_alone: PageAlone, key: str) -> None:
    """A key that is only dots cannot be put in a URL a browser sends as
    it is: the page says so rather than writing or reading another one."""
    page_alone.open(("snapshot", {"nodes": [node_doc("n1", "leader")], "leader": None, "timeline": []}))
    page = page_alone.page
    page.fill("#kv-key", key)
    page.click("#kv-get")
    page.wait_for_selector("#kv-result[data-state=error]")
    assert "raft-trio kv" in (page.text_content("#kv-result") or "")
    assert page_alone.kv_requests == []


def test_the_page_comes_back_after_an_error_answer_to_its_stream(page_alone: PageAlone) -> None:
    """A proxy in front of a restarting monitor answers 502; EventSource
    gives up for good on an answer that is not a stream, so the page must
    open a new one itself, or it says "retrying" and never does."""
    page_alone.events_failures = 2
    page_alone.open(("snapshot", {"nodes": [node_doc("n1", "leader")], "leader": None, "timeline": []}))
    page = page_alone.page
    page.wait_for_selector("[data-node-id=n1][data-role=leader]")
    assert page_alone.events_failures == 0


def test_the_page_fits_the_narrowest_phone(page_alone: PageAlone) -> None:
    """320 CSS pixels is the narrowest common phone (and WCAG's reflow
    width): the page must not scroll sideways there, charts included."""
    page_alone.page.set_viewport_size({"width": 320, "height": 640})
    samples = [
        {"at_ms": 1000 * i, "leader": "n1", "nodes": {"n1": {"commit_rate": 2.0, "lag": None, "voter": True}}}
        for i in range(3)
    ]
    snapshot = {"nodes": [node_doc("n1", "leader")], "leader": None, "timeline": [], "samples": samples}
    page_alone.open(("snapshot", snapshot))
    page = page_alone.page
    page.wait_for_selector("[data-chart=rate] .legend li")
    assert page.evaluate("document.documentElement.scrollWidth") <= 320


class SilentMonitor(http.server.ThreadingHTTPServer):
    """Serves the page, and an ``/events`` stream that sends a snapshot and
    then nothing while staying open: a monitor that hangs (paused, stuck)
    or a proxy holding the page's connection after losing the monitor.
    Streams opened after the first get no answer at all."""

    daemon_threads = True

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot
        self.streams_opened = 0
        #: Set when the page opened a second stream.
        self.reopened = threading.Event()
        self.done = threading.Event()
        super().__init__(("127.0.0.1", 0), SilentMonitorHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class SilentMonitorHandler(http.server.BaseHTTPRequestHandler):
    server: SilentMonitor

    def do_GET(self) -> None:
        if self.path == "/events":
            self.server.streams_opened += 1
            if self.server.streams_opened == 1:  # then it hangs: later ones get no answer
                self._answer(
                    200, "text/event-stream", f"event: snapshot\ndata: {json.dumps(self.server.snapshot)}\n\n"
                )
                self.wfile.flush()
            else:
                self.server.reopened.set()
            self.server.done.wait()
            return
        name = {"/": "index.html", "/static/app.js": "app.js", "/static/style.css": "style.css"}.get(
            self.path
        )
        if name is None:
            self._answer(404, "text/plain", "not found")
        else:
            kind = {"html": "text/html", "js": "text/javascript", "css": "text/css"}[name.rpartition(".")[2]]
            self._answer(200, kind, (PACKAGE_STATIC / name).read_text())

    def _answer(self, status: int, content_type: str, body: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if content_type != "text/event-stream":
            self.send_header("Content-Length", str(len(body.encode())))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_silent_stream_is_not_shown_as_live() -> None:
    """The monitor sends a chart sample every ``refresh_ms``: a stream that
    stays open but silent for several of them is a hung monitor, and the
    page must say so (and open another) rather than show the roles it
    last got as live for ever."""
    snapshot = {"nodes": [node_doc("n1", "leader")], "leader": None, "timeline": [], "refresh_ms": 200}
    server = SilentMonitor(snapshot)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(WAIT_MS)
                page.goto(server.url)
                page.wait_for_selector("[data-node-id=n1][data-role=leader]")
                page.wait_for_selector("#connection[data-state=lost]")
                page.wait_for_function("document.body.classList.contains('stale')")
                assert server.reopened.wait(WAIT_MS / 1000), "the page never opened another stream"
            finally:
                browser.close()
    finally:
        server.done.set()
        server.shutdown()
        server.server_close()
