"""The client without I/O: what each call asks, and how one call makes
its way through the cluster's endpoints.

A :class:`Call` describes one request of the API (method, path, body,
the model of its answer, whether it may be retried). :func:`attempts` is
the way of one call, as a generator: it yields a :class:`Send` (the
driver answers with a :class:`Reply` or a :class:`Failure`) or a
:class:`Wait`, and returns the decoded answer or raises. The blocking and
the Trio client drive the same generator, so they behave alike.

The rules, for every call:

- endpoints are tried in turn, the leader first when the call wants it
  (writes, linearizable reads) and it is known, then the endpoint that
  answered last;
- a ``307`` is followed (at most ``MAX_REDIRECTS`` hops) and its target
  remembered as the leader; one past the last hop (nodes whose views of a
  leader change disagree) counts as a ``503 unavailable``: it was not
  served;
- an endpoint that cannot be reached, or answers ``503`` with certainly no
  effect (``no_leader``, ``unavailable``), sends the call on to the next
  one; after a round of those, the call waits (backing off from 0.1 s to
  1 s) and goes round again until its time is up; so does a round in
  which endpoints answered only with redirects to a leader that cannot be
  reached (it just failed, and the others have not yet elected another);
- a call that is safe to repeat and has had no answer from an endpoint
  within ``Settings.hedge_after`` (a paused node accepts connections and
  says nothing) is sent to the next endpoint too, and the first answer
  taken: the silent endpoint counts as failed for the round;
- when the connection breaks after the request went out, only a call
  that is safe to repeat goes on (a read, or a write carrying an
  ``Idempotency-Key``, which the cluster applies once however often it
  arrives); any other raises :class:`~._errors.Indeterminate`;
- an answer that is not a node's (another server at that address, a
  proxy's error page) counts as the endpoint not answering, but for a
  call not safe to repeat, which raises :class:`~._errors.Indeterminate`;
- a ``503 indeterminate`` is retried only with an ``Idempotency-Key``;
- a write that may have been applied by one attempt (either of the two
  above) and then runs out of time or endpoints raises
  :class:`~._errors.Indeterminate`, never an error that says it
  certainly had no effect;
- any other answer that is not a success raises its
  :class:`~._errors.ApiError`;
- when no endpoint could be reached at all in a round, the call raises
  :class:`~._errors.NoEndpointAnswered`, naming each endpoint and why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Sequence
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode, urlsplit

import msgspec

from .. import schema
from ._errors import (
    ApiError,
    ClientError,
    Indeterminate,
    NoEndpointAnswered,
    Unavailable,
    api_error,
    error_answer,
    indeterminate,
    is_node_answer,
)

T = TypeVar("T")
Code = schema.Code

#: Redirects one attempt follows (a leader change while it is under way
#: can take two).
MAX_REDIRECTS = 5
#: First pause after a round of "no leader yet" answers; it doubles up to
#: ``MAX_BACKOFF_S``.
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 1.0
#: The answers that certainly had no effect: retry, elsewhere or later.
RETRYABLE_CODES = frozenset({Code.NO_LEADER, Code.UNAVAILABLE})


@dataclasses.dataclass(frozen=True)
class Settings:
    """How a client talks to the cluster."""

    #: The time one call may take in all, retries included (seconds).
    timeout: float = 10.0
    #: The time one attempt may take to connect.
    connect_timeout: float = 2.0
    #: The time one attempt may wait for its answer (a node answers a write
    #: that does not commit within 5 s with 503 indeterminate).
    attempt_timeout: float = 7.0
    #: Seconds without an answer after which a call that is safe to repeat
    #: is sent to the next endpoint as well (a paused node accepts the
    #: connection and says nothing until its attempt runs out); None:
    #: never. A node answers in milliseconds, or holds a request at most
    #: while a new leader is elected, so a hedge costs the cluster a second
    #: request only when an endpoint is silent or very slow.
    hedge_after: float | None = 1.0
    #: Where the nodes serve their API (``API_PREFIX``).
    api_prefix: str = "/api"
    #: Sent as ``Authorization: Bearer`` on membership changes and
    #: leadership transfer.
    admin_token: str | None = None
    #: Go round the endpoints again (after a pause) while they answer "no
    #: leader yet"; False: one round, then raise (for callers that retry
    #: and count retries themselves).
    retry: bool = True

    def __post_init__(self) -> None:
        if self.hedge_after is not None and not self.hedge_after > 0:
            raise ValueError(
                f"hedge_after must be a number of seconds above 0, or None; got {self.hedge_after!r}"
            )


@dataclasses.dataclass(frozen=True)
class Call(Generic[T]):
    """One request of the API and the model of its answer."""

    method: str
    #: Below the API prefix (``/kv/x``), or from the root with ``root``.
    path: str
    model: type[T]
    params: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    #: Safe to send again after it may have been served (reads).
    repeatable: bool = False
    #: Served by the leader only (writes and linearizable reads).
    leader: bool = False
    #: A write that takes an ``Idempotency-Key``.
    write: bool = False
    #: Needs the admin token.
    admin: bool = False
    #: ``path`` is from the root, not below the API prefix.
    root: bool = False
    #: Statuses besides 2xx whose body is the answer (``/readyz``'s 503).
    also_ok: tuple[int, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def target(self, api_prefix: str) -> str:
        """The path and query below an endpoint's URL."""
        path = self.path if self.root else api_prefix.rstrip("/") + self.path
        return path + ("?" + urlencode(self.params) if self.params else "")


def json_body(value: Any) -> bytes:
    return msgspec.json.encode(value)


def kv_path(key: str) -> str:
    if not key:
        raise ValueError("the key is empty")
    return "/kv/" + schema.quote_path(key)


def normalize(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url.strip().rstrip("/")


class Endpoints:
    """The endpoints of a client and what it learned about them: the
    leader (from redirects) and the endpoint that answered last."""

    def __init__(self, urls: Sequence[str]) -> None:
        #: Empty for a client that is only a pool for :meth:`at` (every call
        #: of its own raises NoEndpointAnswered).
        self.urls = [normalize(url) for url in urls]
        self.leader: str | None = None
        #: The endpoint (or leader) that gave the last answer.
        self.last: str | None = None
        self._preferred = 0

    def order(self, leader_first: bool) -> list[str]:
        """The endpoints in the order to try them. What threads sharing a
        client change at any moment is read once: a second read of the
        leader could find None (a failed attempt forgets it), and of the
        preferred endpoint a new one (the order would leave some out)."""
        leader, preferred = self.leader, self._preferred
        ordered = self.urls[preferred:] + self.urls[:preferred]
        if leader_first and leader is not None:
            return [leader, *(url for url in ordered if url != leader)]
        return ordered

    def answered(self, base: str) -> None:
        self.last = base
        if base in self.urls:
            self._preferred = self.urls.index(base)

    def learn_leader(self, location: str, target: str) -> str:
        """The leader's base URL from a redirect's ``Location`` (the same
        request on the leader), remembered for the next calls."""
        without_query = location.split("?", 1)[0]
        path = target.split("?", 1)[0]
        if without_query.endswith(path) and len(without_query) > len(path):
            base = without_query[: -len(path)]
        else:
            parts = urlsplit(location)
            base = f"{parts.scheme}://{parts.netloc}"
        self.leader = base.rstrip("/")
        return self.leader

    def unreachable(self, base: str) -> None:
        if self.leader == base:
            self.leader = None


@dataclasses.dataclass(frozen=True)
class Send:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    #: Seconds this attempt may take to be answered.
    timeout: float
    #: The same request at another endpoint, sent as well once ``url`` has
    #: not answered within ``hedge_after`` seconds; the driver gives back
    #: the first answer (a failure only when both failed), ``url``'s
    #: marked ``hedge_sent`` when the hedge had gone out.
    hedge: str | None = None
    hedge_after: float = 0.0

    def sent_back(self, answer: Reply | Failure) -> bool:
        """Whether ``answer``, the hedge's, only redirects to ``url``,
        where this attempt still waits (a slow leader, its followers
        pointing at it): it serves nothing, and taking it would ask the
        slow node again from the start, once for each endpoint."""
        return (
            isinstance(answer, Reply) and answer.status == 307 and answer.headers.get("location") == self.url
        )

    def the_hedge(self) -> Send:
        """The hedge's own attempt: to ``hedge``, within what is left of
        this attempt's time once it is sent."""
        assert self.hedge is not None
        return Send(self.method, self.hedge, self.headers, self.body, self.timeout - self.hedge_after)


@dataclasses.dataclass(frozen=True)
class Wait:
    seconds: float


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes
    #: The answer is the hedge's (``Send.hedge``), not ``Send.url``'s.
    hedged: bool = False
    #: The answer is ``Send.url``'s, and the hedge had gone out: its
    #: request may have reached ``Send.hedge``, whose answer was dropped.
    hedge_sent: bool = False


@dataclasses.dataclass(frozen=True)
class Failure:
    """No answer: ``reason`` in a few words; ``sent`` whether the request
    may have reached the node (anything but a failure to connect)."""

    reason: str
    sent: bool
    #: The failure is the hedge's, and ``Send.url`` had not answered either.
    hedged: bool = False


Action = Send | Wait


def decode(model: type[T], body: bytes, url: str) -> T:
    try:
        return msgspec.json.decode(body, type=model)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise ClientError(f"{url} answered something that is not a {model.__name__}: {error}") from None


def from_a_node(reply: Reply, call: Call[Any]) -> bool:
    """Whether ``reply`` is one a node gives: a success, a redirect, or an
    error in the API's shape. Any other comes from another server at the
    endpoint's address (a wrong port, the monitor's) or from a proxy whose
    node is down: not the cluster saying no, so the call goes on to the
    next endpoint rather than failing on the first wrong one."""
    ok = 200 <= reply.status < 300 or reply.status == 307 or reply.status in call.also_ok
    return ok or is_node_answer(reply.body)


def attempts(
    call: Call[T],
    endpoints: Endpoints,
    settings: Settings,
    clock: Callable[[], float],
    token: str | None,
    authorization: str | None = None,
    deadline: float | None = None,
) -> Generator[Action, Reply | Failure | None, T]:
    """The way of one call (see the module's rules); ``token`` is the
    write's ``Idempotency-Key``, the same on every attempt (and named by
    the :class:`Indeterminate` it may end with, so that the caller can
    retry with it); ``authorization`` the user's (``Bearer <token>``),
    sent unless the call is an admin request and the client has the admin
    token; ``deadline`` (by ``clock``) when the call that this way is part
    of must end, ``settings.timeout`` from now without one."""
    try:
        return (yield from _attempts(call, endpoints, settings, clock, token, authorization, deadline))
    except Indeterminate as error:
        error.idempotency_key = token
        raise


def _attempts(
    call: Call[T],
    endpoints: Endpoints,
    settings: Settings,
    clock: Callable[[], float],
    token: str | None,
    authorization: str | None,
    deadline: float | None,
) -> Generator[Action, Reply | Failure | None, T]:
    if deadline is None:
        deadline = clock() + settings.timeout
    target = call.target(settings.api_prefix)
    headers = dict(call.headers)
    if call.body is not None:
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers[schema.IDEMPOTENCY_HEADER] = token
    if call.admin and settings.admin_token:
        headers["Authorization"] = f"Bearer {settings.admin_token}"
    elif authorization is not None:
        headers["Authorization"] = authorization
    repeatable = call.repeatable or token is not None
    backoff = FIRST_BACKOFF_S
    tried: list[tuple[str, str]] = []
    #: Why an earlier attempt of this write may have been applied.
    maybe_applied: str | None = None
    while True:
        unavailable: ApiError | None = None
        #: Some endpoint answered in this round: the cluster is there.
        answered = False
        #: Endpoints that failed in this round, a redirect's target too: a
        #: leader that timed out (paused) is not tried again directly while
        #: the round has other endpoints left; the next round may.
        failed: set[str] = set()
        #: Endpoints asked in this round, and those whose answer a hedge
        #: brought (not asked again in it).
        asked: set[str] = set()
        hedged: set[str] = set()
        order = endpoints.order(call.leader)
        for base in order:
            if base in failed or base in hedged:
                continue
            url, where, hops = base + target, base, 0
            while True:
                left = deadline - clock()
                if left <= 0:
                    raise _unless_applied(
                        unavailable or NoEndpointAnswered([*tried, (where, "out of time")]), maybe_applied
                    )
                timeout = min(left, settings.attempt_timeout)
                asked.add(base)
                hedge_after = settings.hedge_after if repeatable else None
                hedge = _hedge_for(order, asked | failed, hedge_after, timeout)
                send = Send(call.method, url, headers, call.body, timeout)
                if hedge is not None and hedge_after is not None:
                    send = dataclasses.replace(send, hedge=hedge + target, hedge_after=hedge_after)
                reply = yield send
                assert reply is not None
                if reply.hedged and hedge is not None:
                    # The endpoint said nothing for hedge_after seconds (a
                    # paused node): it failed for this round, and the
                    # answer is the next endpoint's.
                    endpoints.unreachable(base)
                    failed.add(base)
                    reason = f"no answer within {hedge_after:g} s"
                    if not call.repeatable:
                        maybe_applied = f"{where}: {reason} after the request went out"
                    tried.append((where, reason))
                    base, url, where, hops = hedge, hedge + target, hedge, 0
                    asked.add(base)
                    hedged.add(base)
                elif isinstance(reply, Reply) and reply.hedge_sent and not call.repeatable:
                    # The hedge's request went out and its answer was not
                    # waited for (or it failed): the write may be applied.
                    maybe_applied = f"{hedge}: the request went out (a hedge) and was not answered"
                if isinstance(reply, Failure):
                    endpoints.unreachable(base)
                    failed.add(base)
                    if reply.sent and not repeatable:
                        raise indeterminate(
                            f"{where}: the connection broke after the request went out ({reply.reason}); "
                            "it may or may not have taken effect",
                            where,
                        )
                    if reply.sent and not call.repeatable:
                        maybe_applied = (
                            f"{where}: the connection broke after the request went out ({reply.reason})"
                        )
                    tried.append((where, reply.reason))
                    break
                if not from_a_node(reply, call):
                    endpoints.unreachable(base)
                    failed.add(base)
                    reason = f"HTTP {reply.status} that is not a raft-trio node's answer"
                    if not repeatable:  # a proxy's 502 or 504 may come after the node took it
                        raise indeterminate(f"{where}: {reason}; it may or may not have taken effect", where)
                    if not call.repeatable:  # the same, for a write whose key makes a retry safe
                        maybe_applied = f"{where}: {reason}"
                    tried.append((where, reason))
                    break
                endpoints.answered(base)
                answered = True
                if reply.status == 307 and leaves_tls(url, reply.headers.get("location", "")):
                    # The request carries the user's or the admin's token
                    # (and the value): not sent in clear to wherever a
                    # node names. A TLS cluster whose leader says http is
                    # misconfigured; the next endpoint may do better.
                    tried.append(
                        (where, f"redirected to {reply.headers['location']} without TLS: not followed")
                    )
                    break
                if reply.status == 307 and "location" in reply.headers and hops < MAX_REDIRECTS:
                    hops += 1
                    url = reply.headers["location"]
                    base = endpoints.learn_leader(url, target)
                    where = f"{url} (the leader, by {where})"
                    continue
                if 200 <= reply.status < 300 or reply.status in call.also_ok:
                    return decode(call.model, reply.body, url)
                if reply.status == 307:
                    unavailable = _redirected_round(where, hops)
                    tried.append((where, f"307 after {hops} redirects"))
                    break
                answer = error_answer(reply.status, reply.body)
                error = api_error(reply.status, answer, base)
                again = answer.code in RETRYABLE_CODES or (answer.code == Code.INDETERMINATE and repeatable)
                if reply.status != 503 or not again:
                    raise error
                unavailable = error
                if answer.code == Code.INDETERMINATE and not call.repeatable:
                    maybe_applied = f"{where}: {error}"
                tried.append((where, f"{reply.status} {answer.code}"))
                break
        if not answered:
            raise _unless_applied(NoEndpointAnswered(tried), maybe_applied)
        if not settings.retry or clock() + backoff >= deadline:
            raise _unless_applied(unavailable or NoEndpointAnswered(tried), maybe_applied)
        yield Wait(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_S)
        tried = []


def _hedge_for(
    order: Sequence[str], asked: set[str], hedge_after: float | None, timeout: float
) -> str | None:
    """The endpoint an attempt is also sent to if it stays silent for
    ``hedge_after`` seconds: the next in ``order`` not yet asked in this
    round; None without one, or when the attempt would run out first."""
    if hedge_after is None or hedge_after >= timeout:
        return None
    return next((base for base in order if base not in asked), None)


def leaves_tls(url: str, location: str) -> bool:
    """Whether following ``location`` from ``url`` leaves TLS."""
    return urlsplit(url).scheme == "https" and urlsplit(location).scheme == "http"


def _unless_applied(error: ClientError, maybe_applied: str | None) -> ClientError:
    """What a call that gives up raises: ``error``, unless an earlier
    attempt may have applied the write (``maybe_applied`` says how). Then
    the fate of the write is unknown, whatever the last attempts answered:
    a "no leader" or an unreachable cluster afterwards does not undo it,
    and a caller told Unavailable would write again without the key."""
    if maybe_applied is None or isinstance(error, Indeterminate):
        return error
    return indeterminate(f"{maybe_applied}; it may or may not have taken effect, and then {error}")


def _redirected_round(where: str, hops: int) -> Unavailable:
    """The error for a call still redirected after its last hop: a 307 is
    never served, so like a "no leader" it is tried again later."""
    message = f"{where}: still redirected after {hops} redirects; the nodes disagree on who leads"
    return Unavailable(307, schema.UnavailableAnswer(message, Code.UNAVAILABLE, False), where)
