"""Schemathesis against a live node: every operation of its /openapi.json,
schema-valid (positive) and schema-invalid (negative) requests.

What is checked on every answer (the contract's rules, not schemathesis's
defaults; see ``EXCLUDED_CHECKS``):

- no 5xx except a 503 with a JSON ``error`` and a boolean ``indeterminate``
  (with ``Retry-After`` when it certainly had no effect);
- every 4xx carries a JSON ``error`` string;
- a 3xx is only the contract's 307 with ``Location`` and ``X-Raft-Leader``;
- no request takes longer than ``REQUEST_TIMEOUT_S``;
- a write to ``/api/kv/{key}`` that was not answered 200 left the key as it
  was (read with ``?consistency=stale`` just before and after);

and, after the run: a sentinel key written before still holds its value,
/healthz answers 200, the node runs, is still the leader and logged no
traceback.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance, status_code_conformance

from ..integration.cluster import Cluster, kv_path
from ._support import assert_serving, log_tracebacks

Operation = schemathesis.APIOperation[Any, Any, Any, Any]
Case = schemathesis.Case[Operation]

pytestmark = pytest.mark.integration

#: Examples per operation and generation mode. Nine operations with
#: parameters or bodies are fuzzed in two modes; the ones without any
#: (/healthz, /api/status, /api/members) yield a single distinct example.
#: The default run takes MAX_EXAMPLES; ``-m soak`` runs LONG_EXAMPLES.
MAX_EXAMPLES = 50
LONG_EXAMPLES = 300
#: Operations that hash a password on purpose (scrypt, about a quarter of
#: a second of CPU each, also for a name that does not exist) get fewer
#: examples here (a tenth, at least 5); test_fuzz_auth.py fuzzes them
#: with auth on.
PASSWORD_HASHING = ("/api/auth/token", "/api/auth/users", "/api/auth/users/{name}/password")


def hashing_examples(max_examples: int) -> int:
    return max(5, max_examples // 10)


#: Requests a run must at least have sent, per example asked for.
MIN_REQUESTS_PER_EXAMPLE = 8
REQUEST_TIMEOUT_S = 10.0
#: Schemathesis's own checks that the contract contradicts:
#: - status_code_conformance (ST103): the generated document lists only the
#:   answers its models describe; the contract's 400 (bad input), 404
#:   (missing key, unknown route), 409 (unknown member, failed compare),
#:   307 and 503 on every write are checked here instead;
#: - positive_data_acceptance (ST202): the schema cannot express the
#:   contract's rules beyond types (keys of 1 to 1024 bytes, ``consistency``
#:   one of two words, a member needs an http(s) url, a transfer needs
#:   another voter, a missing body), so schema-valid requests are rightly 400;
#: - not_a_server_error: the contract's 503s are answers, not crashes; the
#:   503 rule is checked here instead.
EXCLUDED_CHECKS = [status_code_conformance, positive_data_acceptance, not_a_server_error]


@dataclasses.dataclass
class Tally:
    requests: int = 0
    by_status: dict[tuple[str, int], int] = dataclasses.field(default_factory=dict)
    failures: list[str] = dataclasses.field(default_factory=list)

    def fail(self, case: Case, what: str) -> None:
        if len(self.failures) < 50:
            self.failures.append(f"{case.operation.label}: {what}\n    {case.as_curl_command()[:600]}")


def contract_problem(status: int, body: Any, headers: Mapping[str, Any]) -> str | None:
    """What breaks the contract's rules in an answer, or None."""
    error = body.get("error") if isinstance(body, dict) else None
    if status >= 500:
        if status != 503:
            return f"{status}: {body!r}"
        if not isinstance(error, str) or not isinstance(body.get("indeterminate"), bool):
            return f"503 without error/indeterminate: {body!r}"
        if body["indeterminate"] is False and "retry-after" not in {k.lower() for k in headers}:
            return "503 (no effect) without Retry-After"
    elif status >= 400:
        if not isinstance(error, str):
            return f"{status} without a JSON error: {body!r}"
    elif status >= 300:
        names = {k.lower() for k in headers}
        if status != 307 or not {"location", "x-raft-leader"} <= names:
            return f"unexpected redirect {status} {headers}"
    return None


def stale_read(session: requests.Session, url: str) -> tuple[int, Any]:
    r = session.get(url, params={"consistency": "stale"}, timeout=REQUEST_TIMEOUT_S, allow_redirects=False)
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, r.text


def fuzz_operation(
    operation: Operation,
    mode: GenerationMode,
    base_url: str,
    member_ids: set[str],
    session: requests.Session,
    tally: Tally,
    max_examples: int = MAX_EXAMPLES,
) -> None:
    is_kv_write = operation.path == "/api/kv/{key}" and operation.method.upper() in ("PUT", "DELETE")

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        # Removing the node itself would end the cluster, not test its input;
        # nor would a user root, which would let auth be turned on mid-run.
        assume((case.path_parameters or {}).get("member_id") not in member_ids)
        assume(
            not (
                operation.path == "/api/auth/users"
                and isinstance(case.body, dict)
                and case.body.get("name") == "root"
            )
        )
        target = case.as_transport_kwargs(base_url=base_url)["url"]
        before = stale_read(session, target) if is_kv_write else None
        started = time.monotonic()
        try:
            response = case.call(
                base_url=base_url, session=session, timeout=REQUEST_TIMEOUT_S, allow_redirects=False
            )
        except requests.RequestException as exc:
            tally.fail(case, f"no answer within {REQUEST_TIMEOUT_S} s: {type(exc).__name__}: {exc}")
            return
        elapsed = time.monotonic() - started
        tally.requests += 1
        key = (operation.label, response.status_code)
        tally.by_status[key] = tally.by_status.get(key, 0) + 1
        try:
            body: Any = response.json()
        except Exception:
            # Not JSON: /api/snapshot answers a binary backup, so decode leniently.
            body = response.content[:300].decode("utf-8", "replace")
        if (problem := contract_problem(response.status_code, body, dict(response.headers))) is not None:
            tally.fail(case, problem)
        if elapsed > REQUEST_TIMEOUT_S / 2:
            tally.fail(case, f"answered after {elapsed:.1f} s")
        if before is not None and response.status_code != 200:
            after = stale_read(session, target)
            if after != before:
                tally.fail(
                    case, f"rejected ({response.status_code}) write changed the key: {before} -> {after}"
                )
        try:
            case.validate_response(response, excluded_checks=EXCLUDED_CHECKS)
        except BaseException as exc:  # schemathesis raises a BaseExceptionGroup of failures
            if not isinstance(exc, Exception | BaseExceptionGroup):
                raise
            tally.fail(case, f"schemathesis: {exc}"[:1500])

    try:
        run()
    except Unsatisfiable:
        # Negative mode has nothing to negate in an operation without
        # parameters or body, or whose only input is a free-form string.
        if mode is GenerationMode.POSITIVE:
            raise


def fuzz_events(
    operation: Operation, base_url: str, tally: Tally, headers: dict[str, str] | None = None
) -> None:
    """/api/events streams forever: send its generated request, read the
    opening ``status`` event and hang up."""

    @settings(max_examples=5, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case: Case) -> None:
        kwargs = case.as_transport_kwargs(base_url=base_url)
        with (
            httpx.Client(timeout=REQUEST_TIMEOUT_S, trust_env=False) as client,
            client.stream(
                kwargs["method"], kwargs["url"], headers={**(kwargs.get("headers") or {}), **(headers or {})}
            ) as response,
        ):
            tally.requests += 1
            content_type = response.headers.get("content-type", "")
            if response.status_code != 200 or not content_type.startswith("text/event-stream"):
                tally.fail(case, f"events: {response.status_code} {content_type}")
                return
            for line in response.iter_lines():
                if line.startswith("event:"):
                    if line != "event: status":
                        tally.fail(case, f"events opened with {line!r}")
                    return

    run()


def fuzz_watch(
    operation: Operation,
    base_url: str,
    tally: Tally,
    headers: dict[str, str] | None = None,
    max_examples: int = MAX_EXAMPLES // 2,
) -> None:
    """/api/watch streams until the client hangs up: a 200 must be an event
    stream that opens with its comment (then the fuzzer hangs up); any
    other answer must keep the contract's error rules."""
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Case) -> None:
            kwargs = case.as_transport_kwargs(base_url=base_url)
            with (
                httpx.Client(timeout=REQUEST_TIMEOUT_S, trust_env=False) as client,
                client.stream(
                    kwargs["method"],
                    kwargs["url"],
                    params=kwargs.get("params"),
                    headers={**(kwargs.get("headers") or {}), **(headers or {})},
                ) as response,
            ):
                tally.requests += 1
                key = (operation.label, response.status_code)
                tally.by_status[key] = tally.by_status.get(key, 0) + 1
                if response.status_code == 200:
                    if not response.headers.get("content-type", "").startswith("text/event-stream"):
                        tally.fail(case, f"watch: 200 with {response.headers.get('content-type')}")
                        return
                    first = next(iter(response.iter_lines()), "")
                    if not first.startswith(": watching"):
                        tally.fail(case, f"watch opened with {first!r}")
                    return
                response.read()
                try:
                    body: Any = response.json()
                except ValueError:
                    body = response.text[:300]
                if (
                    problem := contract_problem(response.status_code, body, dict(response.headers))
                ) is not None:
                    tally.fail(case, problem)

        try:
            run()
        except Unsatisfiable:
            if mode is GenerationMode.POSITIVE:
                raise


@pytest.mark.parametrize(
    "max_examples",
    [pytest.param(MAX_EXAMPLES, id="short"), pytest.param(LONG_EXAMPLES, id="long", marks=pytest.mark.soak)],
)
def test_schemathesis_fuzz(node_cluster: Cluster, max_examples: int) -> None:
    node = node_cluster["n1"]
    sentinel_key = "hostile/sentinel-" + secrets.token_hex(20)
    sentinel_value = "sentinel " + secrets.token_hex(8)
    node_cluster.write(sentinel_key, sentinel_value)

    schema = schemathesis.openapi.from_url(node.url + "/openapi.json", timeout=10)
    tally = Tally()
    started = time.monotonic()
    operations: list[Operation] = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    labels = sorted(op.label for op in operations)
    assert "PUT /api/kv/{key}" in labels and "GET /healthz" in labels, labels
    with requests.Session() as session:
        session.trust_env = False
        for operation in operations:
            if operation.path == "/api/events":
                fuzz_events(operation, node.url, tally)
                continue
            if operation.path == "/api/watch":
                fuzz_watch(operation, node.url, tally, max_examples=max_examples // 2)
                continue
            examples = hashing_examples(max_examples) if operation.path in PASSWORD_HASHING else max_examples
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                fuzz_operation(operation, mode, node.url, set(node_cluster.nodes), session, tally, examples)
    elapsed = time.monotonic() - started

    print(f"\n{tally.requests} requests over {len(operations)} operations in {elapsed:.1f} s")
    for (label, status), count in sorted(tally.by_status.items()):
        print(f"  {label:40} {status}: {count}")
    assert not tally.failures, f"{len(tally.failures)} failures:\n" + "\n".join(tally.failures[:15])
    assert tally.requests >= MIN_REQUESTS_PER_EXAMPLE * max_examples, tally.requests

    r = node_cluster.http.get(node.url + kv_path(sentinel_key))
    assert r.status_code == 200 and r.json()["value"] == sentinel_value, r.text
    assert_serving(node_cluster)
    assert not log_tracebacks(node_cluster), log_tracebacks(node_cluster)[:3]
