"""The way of one call through the endpoints (raft_trio.client._calls),
without I/O: scripted answers in, the client's next step out."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Generator
from types import FrameType
from typing import Any

import httpx
import msgspec
import pytest

from raft_trio import schema
from raft_trio.client import (
    CompareFailed,
    Indeterminate,
    KeyNotFound,
    MembershipConflict,
    NoEndpointAnswered,
    Unavailable,
    _api,
)
from raft_trio.client._calls import Call, Endpoints, Failure, Reply, Send, Settings, Wait, attempts

A, B, C = "http://a:9001", "http://b:9001", "http://c:9001"
KEY = schema.KeyAnswer("k", "v", 7, 7, 7, 1)


def ok(body: msgspec.Struct) -> Reply:
    return Reply(200, {}, msgspec.json.encode(body))


def err(status: int, code: str, *, headers: dict[str, str] | None = None, **extra: Any) -> Reply:
    body = {"error": f"an error {code}", "code": code, **extra}
    return Reply(status, headers or {}, msgspec.json.encode(body))


def redirect(to: str, path: str = "/api/kv/k") -> Reply:
    body = {"error": "not the leader", "code": "not_leader", "leader_id": "n2"}
    return Reply(307, {"location": to + path, "x-raft-leader": "n2"}, msgspec.json.encode(body))


class Script:
    """Drives ``attempts`` with answers chosen by URL; records each step."""

    def __init__(self, answer: Callable[[Send], Reply | Failure]) -> None:
        self.answer = answer
        self.now = 0.0
        self.steps: list[Any] = []

    def run(self, plan: Generator[Any, Any, Any]) -> Any:
        result = None
        while True:
            try:
                action = plan.send(result)
            except StopIteration as done:
                return done.value
            self.steps.append(action)
            if isinstance(action, Wait):
                self.now += action.seconds
                result = None
            else:
                self.now += 0.001
                result = self.answer(action)

    def urls(self) -> list[str]:
        return [step.url for step in self.steps if isinstance(step, Send)]

    def waits(self) -> list[float]:
        return [step.seconds for step in self.steps if isinstance(step, Wait)]


def run(
    call: Call[Any],
    answer: Callable[[Send], Reply | Failure],
    endpoints: Endpoints | None = None,
    token: str | None = None,
    timeout: float = 10.0,
) -> tuple[Any, Script]:
    script = Script(answer)
    endpoints = endpoints or Endpoints([A, B, C])
    plan = attempts(call, endpoints, Settings(timeout=timeout), lambda: script.now, token)
    return script.run(plan), script


def test_a_redirect_is_followed_and_the_leader_remembered() -> None:
    endpoints = Endpoints([A, B, C])

    def answer(send: Send) -> Reply:
        return ok(KEY) if send.url.startswith(B) else redirect(B)

    value, script = run(_api.get("k", stale=False), answer, endpoints)
    assert value == KEY
    assert script.urls() == [f"{A}/api/kv/k", f"{B}/api/kv/k"]
    assert endpoints.leader == B
    # The next call that wants the leader goes there first.
    _, script = run(_api.put("k", "v", None), answer, endpoints, token="t")
    assert script.urls() == [f"{B}/api/kv/k"]


def test_the_leader_is_learned_below_a_root_path_and_the_query_kept() -> None:
    endpoints = Endpoints(["http://proxy/raft"])
    location = "http://proxy/raft2/api/kv/a%20b?consistency=linearizable"
    assert endpoints.learn_leader(location, "/api/kv/a%20b?consistency=linearizable") == "http://proxy/raft2"
    assert endpoints.learn_leader("http://n2:9001/elsewhere", "/api/kv/k") == "http://n2:9001"


def test_an_unreachable_endpoint_sends_the_call_to_the_next() -> None:
    def answer(send: Send) -> Reply | Failure:
        return Failure("connection refused", sent=False) if send.url.startswith(A) else ok(KEY)

    value, script = run(_api.put("k", "v", None), answer)
    assert value == KEY and script.urls() == [f"{A}/api/kv/k", f"{B}/api/kv/k"]


def test_when_no_endpoint_answers_the_error_names_each_and_why() -> None:
    with pytest.raises(NoEndpointAnswered) as raised:
        run(_api.status(), lambda send: Failure("connection refused", sent=False))
    assert raised.value.tried == [
        (A, "connection refused"),
        (B, "connection refused"),
        (C, "connection refused"),
    ]
    assert str(raised.value) == (
        f"no cluster node answered; tried {A} (connection refused); {B} (connection refused); "
        f"{C} (connection refused)"
    )


def test_no_leader_yet_is_retried_round_after_round_with_back_off() -> None:
    answers = iter([err(503, "no_leader")] * 6 + [ok(KEY)])
    value, script = run(_api.get("k", stale=False), lambda send: next(answers))
    assert value == KEY
    assert script.waits() == [0.1, 0.2]
    assert len(script.urls()) == 7


def test_no_leader_until_the_time_is_up_raises_unavailable() -> None:
    with pytest.raises(Unavailable) as raised:
        run(_api.get("k", stale=False), lambda send: err(503, "no_leader"), timeout=2.0)
    assert raised.value.code == "no_leader"


def test_a_write_that_may_have_been_served_is_retried_only_with_its_key() -> None:
    first = [True]

    def answer(send: Send) -> Reply | Failure:
        if first[0]:
            first[0] = False
            return Failure("connection lost", sent=True)
        return ok(KEY)

    value, script = run(_api.put("k", "v", None), answer, token="key-1")
    assert value == KEY
    assert [step.headers["Idempotency-Key"] for step in script.steps] == ["key-1", "key-1"]
    first[0] = True
    with pytest.raises(Indeterminate):
        run(_api.add_member("n4", "http://d:9001"), answer)


def test_an_indeterminate_answer_is_retried_with_the_same_key_only() -> None:
    answers = iter([err(503, "indeterminate", indeterminate=True), ok(KEY)])
    value, _ = run(_api.put("k", "v", None), lambda send: next(answers), token="key-2")
    assert value == KEY
    with pytest.raises(Indeterminate) as raised:
        run(_api.remove_member("n3"), lambda send: err(503, "indeterminate", indeterminate=True))
    assert raised.value.status == 503


def test_errors_are_raised_by_their_code_with_the_answer() -> None:
    with pytest.raises(KeyNotFound) as missing:
        run(_api.get("k", stale=True), lambda send: err(404, "key_not_found"))
    assert (missing.value.status, missing.value.code, missing.value.url) == (404, "key_not_found", A)
    with pytest.raises(CompareFailed) as failed:
        run(
            _api.put("k", "v", None, "x"),
            lambda send: err(409, "compare_failed", current="y", index=9),
            token="t",
        )
    assert (failed.value.current, failed.value.index) == ("y", 9)
    with pytest.raises(MembershipConflict) as conflict:
        run(_api.add_member("n2", "http://b:9001"), lambda send: err(409, "already_member"))
    assert conflict.value.code == "already_member"


def test_readiness_takes_its_503_as_an_answer() -> None:
    doc = schema.Readiness(False, "no leader is known", "n1", "follower", 3, None, 0, None)
    value, _ = run(_api.readiness(), lambda send: Reply(503, {}, msgspec.json.encode(doc)))
    assert value == doc


def test_admin_calls_carry_the_token_and_others_do_not() -> None:
    health = schema.Health(True)
    script = Script(lambda send: ok(health if send.url.endswith("/healthz") else schema.TransferAnswer("n2")))
    settings = Settings(admin_token="s3cret-token-of-the-admin")
    script.run(attempts(_api.transfer_leadership("n2"), Endpoints([A]), settings, lambda: 0.0, None))
    script.run(attempts(_api.health(), Endpoints([A]), settings, lambda: 0.0, None))
    sent = [step.headers.get("Authorization") for step in script.steps]
    assert sent == ["Bearer s3cret-token-of-the-admin", None]


ODD_NAMES = ["..", ".", "a/../b", "a/./b", "../x", "x/..", "100%", "q?x=1#h", "a b/ü"]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_a_name_reaches_the_node_as_written_even_with_dot_segments(name: str) -> None:
    """httpx, as RFC 3986 says, removes ``.`` and ``..`` segments from a
    path: ``kv put a/../b`` wrote the key ``b``, and ``kv get ..`` asked
    for ``GET /api``. The path the node receives must name the key."""
    calls: dict[str, Call[Any]] = {
        "/api/kv/" + name: _api.get(name, stale=False),
        "/api/auth/users/" + name: _api.user(name),
        "/api/auth/roles/" + name: _api.role(name),
        "/api/leases/" + name: _api.lease_info(name),
        "/api/members/" + name: _api.remove_member(name),
    }
    for path, call in calls.items():
        assert httpx.URL(A + call.target("/api")).path == path


#: What another server at an endpoint's address answers: a web server,
#: the monitor's port, a proxy whose node is down.
NOT_A_NODE = Reply(404, {"content-type": "text/html"}, b"<html><h1>Not Found</h1></html>")


def test_an_endpoint_that_is_not_a_node_sends_the_call_to_the_next() -> None:
    """A wrong port in the list (the monitor's, another service's) must not
    stop the call: that server's 404 is not the cluster saying no."""

    def answer(send: Send) -> Reply:
        return NOT_A_NODE if send.url.startswith(A) else ok(KEY)

    value, script = run(_api.put("k", "v", None), answer, token="t")
    assert value == KEY and script.urls() == [f"{A}/api/kv/k", f"{B}/api/kv/k"]
    value, _ = run(_api.get("k", stale=True), answer)
    assert value == KEY


def test_when_no_endpoint_is_a_node_the_error_says_so_for_each() -> None:
    with pytest.raises(NoEndpointAnswered) as raised:
        run(_api.status(), lambda send: Reply(502, {}, b"Bad Gateway"))
    reason = "HTTP 502 that is not a raft-trio node's answer"
    assert raised.value.tried == [(A, reason), (B, reason), (C, reason)]


def test_a_write_without_a_key_answered_by_no_node_may_have_been_served() -> None:
    """A proxy's 502 or 504 may come after the node took the request."""
    with pytest.raises(Indeterminate):
        run(_api.add_member("n4", "http://d:9001"), lambda send: NOT_A_NODE)


def test_a_leader_that_died_is_waited_for_while_the_followers_still_point_at_it() -> None:
    """A leader crashes: for an election timeout the followers still
    redirect to it. The followers did answer, so the call waits for the
    new leader as it does for ``no_leader``; it does not give up at once
    as if the whole cluster were down."""
    endpoints = Endpoints([A, B, C])
    endpoints.leader = A

    def answer(send: Send) -> Reply | Failure:
        if script.now < 0.5:  # until B wins the election
            return Failure("connection refused", sent=False) if send.url.startswith(A) else redirect(A)
        return Failure("connection refused", sent=False) if send.url.startswith(A) else ok(KEY)

    script = Script(answer)
    plan = attempts(_api.put("k", "v", None), endpoints, Settings(timeout=10.0), lambda: script.now, "t")
    assert script.run(plan) == KEY
    assert script.waits() and script.urls()[-1].startswith((B, C))


def test_a_write_that_may_have_been_applied_never_ends_as_certainly_not() -> None:
    """Once an attempt of a write may have been applied (503
    indeterminate, or the connection broke after it went out), the call
    that then runs out of time or endpoints raises Indeterminate, never
    Unavailable ("certainly no effect") or NoEndpointAnswered: the caller
    must not take it for a write that did not happen."""
    first = [err(503, "indeterminate", indeterminate=True)]

    def no_leader_after(send: Send) -> Reply:
        return first.pop() if first else err(503, "no_leader")

    with pytest.raises(Indeterminate):
        run(_api.put("k", "v", None), no_leader_after, token="key-3", timeout=2.0)

    lost = [Failure("timed out", sent=True)]

    def down_after(send: Send) -> Failure:
        return lost.pop() if lost else Failure("connection refused", sent=False)

    with pytest.raises(Indeterminate):
        run(_api.put("k", "v", None), down_after, token="key-4")
    # A read stays a read: nothing it did can have taken effect.
    lost.append(Failure("timed out", sent=True))
    with pytest.raises(NoEndpointAnswered):
        run(_api.get("k", stale=False), down_after)


def test_redirects_that_go_round_in_circles_are_waited_out() -> None:
    """Two nodes with stale views of a leader change send the call back
    and forth. A 307 is never served, so once the hops are used up the
    call goes on as after a "no leader", instead of raising the 307 as
    an error of its own."""

    def answer(send: Send) -> Reply:
        if script.now < 0.5:  # until the election settles
            return redirect(A) if send.url.startswith(B) else redirect(B)
        return ok(KEY) if send.url.startswith(B) else redirect(B)

    script = Script(answer)
    plan = attempts(_api.put("k", "v", None), Endpoints([A, B]), Settings(), lambda: script.now, "t")
    assert script.run(plan) == KEY
    assert script.waits()


def test_the_leader_forgotten_by_another_thread_mid_order_is_not_tried_as_none() -> None:
    """``Client`` may be shared by threads, and one thread's failed
    attempt forgets the leader while another orders the endpoints. A
    thread switch between reading the leader and using it must not put
    None among the URLs to try (``None + path``: a TypeError). The
    switch is made deterministic with a trace function that plays the
    other thread, forgetting the leader, just before ``order`` builds
    the list it returns with the leader first."""
    endpoints = Endpoints([A, B, C])
    endpoints.leader = B
    lines, first = inspect.getsourcelines(Endpoints.order)
    switch_at = first + next(n for n, line in enumerate(lines) if "return [" in line)

    def other_thread(frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code is Endpoints.order.__code__:
            if event == "line" and frame.f_lineno == switch_at:
                endpoints.leader = None
            return other_thread
        return None

    sys.settrace(other_thread)
    try:
        ordered = endpoints.order(leader_first=True)
    finally:
        sys.settrace(None)
    assert None not in ordered and sorted(ordered) == [A, B, C]


def test_a_redirect_from_https_to_http_is_not_followed() -> None:
    """A request carries the user's or the admin's token and the value:
    a node naming a leader without TLS does not get it sent in clear (a
    review's finding); the call goes on at the next endpoint."""
    secure = ["https://a:9001", "https://b:9001"]

    def answer(send: Send) -> Reply:
        if send.url.startswith("https://a"):
            return redirect("http://b:9001")
        return ok(KEY) if send.url.startswith("https://b") else err(500, "internal")

    value, script = run(_api.get("k", stale=False), answer, Endpoints(secure))
    assert value == KEY
    assert script.urls() == ["https://a:9001/api/kv/k", "https://b:9001/api/kv/k"]

    with pytest.raises(NoEndpointAnswered) as raised:
        run(_api.get("k", stale=False), lambda send: redirect("http://b:9001"), Endpoints(secure[:1]))
    assert "without TLS: not followed" in str(raised.value)


def test_an_indeterminate_write_names_the_key_to_retry_it_with() -> None:
    """docs/client.md: an Indeterminate write is retried safely only with
    the same Idempotency-Key, which the client made when the caller gave
    none; the error names it (a review found it could not be had)."""

    def answer(send: Send) -> Reply:
        return err(503, "indeterminate", indeterminate=True)

    with pytest.raises(Indeterminate) as raised:
        run(_api.put("k", "v", None), answer, token="the-key-of-this-write", timeout=1.0)
    assert raised.value.idempotency_key == "the-key-of-this-write"
    with pytest.raises(Indeterminate) as raised:
        run(_api.add_member("n4", "http://d:9001"), lambda send: NOT_A_NODE)
    assert raised.value.idempotency_key is None


def test_an_endpoint_that_timed_out_is_not_tried_again_in_the_same_round() -> None:
    """The leader is paused: A still redirects to it (it went quiet a
    moment ago), the redirected attempt times out, and the call goes on to
    C, the next leader, instead of trying B a second time directly and
    running out of time there (`raft-trio kv get` right after `kill
    -STOP` of the leader failed so)."""

    def answer(send: Send) -> Reply | Failure:
        if send.url.startswith(B):
            script.now += send.timeout
            return Failure("timed out", sent=True)
        return redirect(B) if send.url.startswith(A) else ok(KEY)

    script = Script(answer)
    plan = attempts(
        _api.get("k", stale=False), Endpoints([A, B, C]), Settings(timeout=10.0), lambda: script.now, None
    )
    assert script.run(plan) == KEY
    assert script.urls() == [f"{A}/api/kv/k", f"{B}/api/kv/k", f"{C}/api/kv/k"]
