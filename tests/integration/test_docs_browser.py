"""/docs works on every node, in headless Chromium against real node
processes: on a follower's page, Swagger UI's "Try it out" puts a key
and gets it back; both requests go to the leader (another origin), which
allows the follower's origin by CORS.

Skipped, with the reason, where ``/usr/bin/chromium`` or Playwright is
missing (``.ci/run`` installs both)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .cluster import Cluster

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "no Chromium at /usr/bin/chromium (apt-get install chromium; .ci/run does)", allow_module_level=True
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install -e '.[test]')"
)

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 20_000


def try_it_out(page: Any, operation: str, key: str, body: str | None = None) -> tuple[str, Any, str]:
    """Expand an operation, "Try it out", fill the key (and body),
    "Execute": the status, the answer's JSON and the URL it went to."""
    op = page.locator(f"#operations-default-{operation}")
    op.locator(".opblock-summary").click()
    op.locator(".try-out__btn").click()
    op.locator("tr[data-param-name='key'] input").fill(key)
    if body is not None:
        op.locator("textarea.body-param__text").fill(body)
    op.locator("button.execute").click()
    status = op.locator(".live-responses-table tbody .response-col_status")
    status.wait_for(timeout=WAIT_MS)
    answer = op.locator(".live-responses-table tbody .response-col_description pre.microlight").first
    return (
        status.inner_text().strip(),
        json.loads(answer.inner_text()),
        op.locator(".request-url pre").inner_text(),
    )


@pytest.mark.integration
def test_try_it_out_from_a_followers_docs_puts_and_gets_a_key(cluster: Cluster) -> None:
    leader, _ = cluster.wait_for_leader()
    follower = next(node for node in cluster.nodes.values() if node.id != leader)
    leader_url = cluster.nodes[leader].url
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(follower.url + "/docs")
            page.wait_for_selector("#operations-default-put_put_key", timeout=WAIT_MS)
            page.wait_for_function(
                "document.getElementById('raft-leader').textContent.includes('the leader')", timeout=WAIT_MS
            )
            note = page.inner_text("#raft-leader")
            assert f"the leader {leader} at {leader_url}" in note, note

            status, answer, sent_to = try_it_out(
                page, "put_put_key", "from/the docs", '{"value": "written on a follower\'s page"}'
            )
            assert status == "200", answer
            assert answer["key"] == "from/the docs" and answer["version"] == 1
            assert sent_to.startswith(leader_url), sent_to

            status, answer, sent_to = try_it_out(page, "get_get_key", "from/the docs")
            assert status == "200", answer
            assert answer["value"] == "written on a follower's page"
            assert sent_to.startswith(leader_url), sent_to
        finally:
            browser.close()
    assert not errors, errors
    stored = cluster.follow.get(cluster.kv_url(follower.id, "from/the docs"))
    assert stored.json()["value"] == "written on a follower's page"
