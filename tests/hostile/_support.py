"""Checks shared by the hostile-input tests."""

from __future__ import annotations

from typing import Any

import httpx

from ..integration.cluster import Cluster, json_of


def assert_serving(cluster: Cluster) -> None:
    """The node runs, answers /healthz 200 and still knows itself leader."""
    assert_serving_with(cluster, {})


def assert_serving_with(cluster: Cluster, headers: dict[str, str]) -> None:
    """:func:`assert_serving`, asking the status with ``headers`` (a token)."""
    assert not cluster.crashed(), cluster.crashed()
    node = cluster["n1"]
    assert node.running, "the node process is gone"
    r = cluster.http.get(node.url + "/healthz", timeout=5)
    assert r.status_code == 200, r.text
    status = cluster.http.get(node.url + "/api/status", headers=headers, timeout=5).json()
    assert status.get("role") == "leader", status


def log_tracebacks(cluster: Cluster) -> list[str]:
    """Tracebacks the node logged: a handler that raised is a bug even when
    the client got an answer."""
    text = cluster["n1"].log_text()
    return [chunk[:2000] for chunk in text.split("Traceback (most recent call last)")[1:]]


def error_body(response: httpx.Response) -> str | None:
    """The ``error`` string of a JSON error answer, else None."""
    body: Any = json_of(response)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return None
