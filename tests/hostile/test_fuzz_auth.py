"""Schemathesis with auth on: every operation of /openapi.json fuzzed by a
user who may read and write every key but is not root, so that keys are
served and the root-only operations are refused (403); anything the node
answers keeps the contract's rules (``contract_problem``), and nobody
without a token gets anything but a 401 for any operation."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from ..integration.cluster import Cluster
from ._support import assert_serving_with, log_tracebacks
from .test_fuzz import PASSWORD_HASHING, Case, Operation, Tally, fuzz_events, fuzz_operation, fuzz_watch

pytestmark = pytest.mark.integration

#: Examples per operation and mode: a smaller run than without auth (which
#: fuzzes the same handlers), within the token's five minutes.
EXAMPLES = 20
#: The operations that hash a password (scrypt, a quarter of a second of
#: CPU each) get fewer.
HASHING_EXAMPLES = 8
MIN_REQUESTS = 600


#: Operations anyone may ask, auth on or off.
OPEN = ("/healthz", "/readyz", "/metrics", "/api/auth/token")


def fuzz_anonymous(operation: Operation, base_url: str, session: requests.Session, tally: Tally) -> None:
    """Without a token, every request (valid or not) is a 401."""

    @settings(max_examples=5, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case: Case) -> None:
        response = case.call(base_url=base_url, session=session, timeout=10, allow_redirects=False)
        tally.requests += 1
        if response.status_code != 401 or response.json().get("code") != "unauthorized":
            tally.fail(case, f"{response.status_code} without a token: {response.text[:200]}")

    run()


def post(session: requests.Session, url: str, body: dict[str, Any] | None = None) -> Any:
    response = session.post(url, json=body, timeout=10)
    assert response.status_code == 200, (url, response.status_code, response.text)
    return response.json()


def test_schemathesis_fuzz_with_auth_on(node_cluster: Cluster) -> None:
    node = node_cluster["n1"]
    api = node.url + "/api"
    with requests.Session() as setup:
        setup.trust_env = False
        post(setup, api + "/auth/users", {"name": "root", "password": "root-password"})
        post(setup, api + "/auth/users", {"name": "fuzzer", "password": "fuzzer-password"})
        post(setup, api + "/auth/roles", {"name": "everything"})
        post(
            setup,
            api + "/auth/roles/everything/permissions",
            {"access": "readwrite", "key": "", "prefix": True},
        )
        setup.put(api + "/auth/users/fuzzer/roles/everything", timeout=10).raise_for_status()
        post(setup, api + "/auth/enable")
        token = post(setup, api + "/auth/token", {"name": "fuzzer", "password": "fuzzer-password"})["token"]
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_url(node.url + "/openapi.json", timeout=10)
    operations: list[Operation] = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    tally = Tally()
    started = time.monotonic()
    with requests.Session() as session, requests.Session() as anonymous:
        session.trust_env = False
        anonymous.trust_env = False
        session.headers.update(headers)
        for operation in operations:
            if operation.path == "/api/events":
                fuzz_events(operation, node.url, tally, headers)
                continue
            if operation.path == "/api/watch":
                fuzz_watch(operation, node.url, tally, headers, max_examples=EXAMPLES)
                continue
            examples = HASHING_EXAMPLES if operation.path in PASSWORD_HASHING else EXAMPLES
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                fuzz_operation(operation, mode, node.url, set(node_cluster.nodes), session, tally, examples)
            if operation.path not in OPEN:
                fuzz_anonymous(operation, node.url, anonymous, tally)
    print(f"\n{tally.requests} requests with auth on in {time.monotonic() - started:.1f} s")
    for (label, status), count in sorted(tally.by_status.items()):
        print(f"  {label:40} {status}: {count}")
    assert not tally.failures, f"{len(tally.failures)} failures:\n" + "\n".join(tally.failures[:15])
    assert tally.requests >= MIN_REQUESTS, tally.requests
    assert_serving_with(node_cluster, headers)
    assert not log_tracebacks(node_cluster), log_tracebacks(node_cluster)[:3]
