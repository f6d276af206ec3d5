"""The Jepsen-style run with auth on (issue 20): its users, the clients'
logins, and an intruder that keeps trying what auth must refuse.

- :func:`turn_on`: through the client library, as an operator would: a
  user ``root``, a user ``jepsen`` with readwrite on the workload's keys
  (the prefix ``k``), a user ``reader`` with read only, then ``auth
  enable``.
- :class:`TokenAuth`: an ``httpx.Auth`` that logs in (``POST
  /api/auth/token``) and sends ``Authorization: Bearer``; after a 401 (the
  token expired: the run's tokens last a few seconds, so clients log in
  again under faults) it logs in again and repeats the request once. A 401
  comes from the gate, before anything was done, so the repeat is safe.
- :class:`Intruder`: all through the run, anonymous writes and watches,
  writes and a watch of every key by ``reader``, and writes outside its
  grant by ``jepsen``, each with a value of its own; each must be refused
  (401, 403) or not served at all (a node paused, down or redirecting),
  and none of its values may ever show up: not in a read, not in the watch
  stream, not in the final state.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import random
import threading
from collections.abc import Generator, Iterable

import httpx

from raft_trio.client import Client as LibraryClient

from ..integration.cluster import kv_path, wait_until

#: Every key of the workload starts with it (harness.KEYS).
WORKLOAD_PREFIX = "k"
#: A key no role of the run grants: writes to it must all be refused.
OUTSIDE_KEY = "x0"
ROOT = ("root", "jepsen-root-password")
WORKLOAD = ("jepsen", "jepsen-workload-password")
READER = ("reader", "jepsen-reader-password")
#: Seconds a token lasts (RAFT_AUTH_TOKEN_TTL): short, so that every
#: client's token expires mid-run and it logs in again, faults or not.
TOKEN_TTL_S = 6
#: Values the intruder tries to write start with this.
INTRUDER_MARK = "intruder-"
LOGIN_TIMEOUT = httpx.Timeout(3.0, connect=0.5)
ATTEMPT_TIMEOUT = httpx.Timeout(1.5, connect=0.5)

#: What an attempt of the intruder may end in besides its refusal: the
#: node redirected (307, to a leader it would not follow), could not
#: decide (503: out of touch, no leader), did not answer in time, or its
#: connection broke before an answer (the nemesis killed the node while
#: the request or its answer was on the way: ReadError, WriteError). None
#: of these says whether a write took effect; that its value is nowhere
#: is checked apart (reads, the watch stream, the final state).
NOT_SERVED = frozenset(
    {
        "307",
        "503",
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
    }
)
#: A watch opened by a node that had not yet applied ``auth enable`` (it
#: restarted and had not heard from the leader yet): it must deliver no
#: change; it ends with a ``permission_denied`` error at its next chunk
#: after the node applied the switch.
OPENED_EMPTY = frozenset(
    {"200, then cut off", "200, then the stream ended", "200, nothing within the timeout"}
)


class TokenAuth(httpx.Auth):
    """One user's token, shared by the threads acting as that user: one
    login answers the 401s of every request sent with the same stale
    token. Without a token (no node would log it in) the request goes
    without one, and its 401 is what the caller sees."""

    def __init__(self, user: str, password: str, urls: Iterable[str]) -> None:
        self.user = user
        self.password = password
        self.urls = list(urls)
        self.token: str | None = None
        #: Logins that issued a token: the first, then one per expiry (or
        #: per node that did not know the user yet).
        self.logins = 0
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=LOGIN_TIMEOUT, trust_env=False)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        origin = f"{request.url.scheme}://{request.url.netloc.decode()}"
        token = self.token if self.token is not None else self._log_in(None, origin)
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            fresh = self._log_in(token, origin)
            if fresh is not None and fresh != token:
                request.headers["Authorization"] = f"Bearer {fresh}"
                yield request

    def _log_in(self, stale: str | None, first: str) -> str | None:
        """A token other than ``stale``: another thread's if one logged in
        meanwhile, else a new login, first at ``first`` (the node that
        refused: it is up), then at the others."""
        with self._lock:
            if self.token is not None and self.token != stale:
                return self.token
            for url in [first, *(u for u in self.urls if u != first)]:
                try:
                    r = self._http.post(
                        url + "/api/auth/token", json={"name": self.user, "password": self.password}
                    )
                except httpx.HTTPError:
                    continue
                if r.status_code == 200:
                    self.token = str(r.json()["token"])
                    self.logins += 1
                    return self.token
            return None

    def close(self) -> None:
        self._http.close()


@dataclasses.dataclass
class RunUsers:
    """The credentials of a run with auth on."""

    root: TokenAuth
    workload: TokenAuth
    reader: TokenAuth

    def close(self) -> None:
        for auth in (self.root, self.workload, self.reader):
            auth.close()


def turn_on(urls: list[str]) -> RunUsers:
    """Make the run's users and roles and enable auth (as ``raft-trio user
    add`` and the rest do, through the client library), then check that it
    is on: anonymous requests are refused on every node."""
    with LibraryClient(urls) as admin:
        admin.add_user(*ROOT)
        admin.add_role("workload")
        admin.grant_permission("workload", "readwrite", WORKLOAD_PREFIX, prefix=True)
        admin.add_user(*WORKLOAD)
        admin.grant_role(WORKLOAD[0], "workload")
        admin.add_role("reader")
        admin.grant_permission("reader", "read", WORKLOAD_PREFIX, prefix=True)
        admin.add_user(*READER)
        admin.grant_role(READER[0], "reader")
        admin.enable_auth()
    with LibraryClient(urls, user=ROOT[0], password=ROOT[1]) as root:
        status = root.auth_status()
        assert status.enabled and status.user == ROOT[0], status
    with httpx.Client(timeout=ATTEMPT_TIMEOUT, trust_env=False) as anonymous:

        def refused_everywhere() -> tuple[bool, dict[str, int]]:
            # A follower that has not applied the switch yet may still
            # answer otherwise (a 403 after its read barrier): wait for it.
            statuses = {url: anonymous.get(url + kv_path("k0")).status_code for url in urls}
            return all(status == 401 for status in statuses.values()), statuses

        wait_until(refused_everywhere, 10.0, "every node to refuse an anonymous read (401)")
    return RunUsers(TokenAuth(*ROOT, urls), TokenAuth(*WORKLOAD, urls), TokenAuth(*READER, urls))


# -- the intruder -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Attempt:
    who: str  # "anonymous", "reader", "jepsen"
    what: str  # "put k1", "watch every key", ...
    node: str
    outcome: str  # an HTTP status, an exception's name, or what an open watch did
    #: The refusal this attempt must get (the gate's answer).
    expected: str


class Intruder(threading.Thread):
    """Every ~0.2 s, one of: an anonymous write or watch, a write or a
    watch of every key by ``reader`` (read on ``k`` only), a write to a
    key outside its grant by ``jepsen``; at a random node, never following
    redirects. Every value it writes is new and starts with
    :data:`INTRUDER_MARK`."""

    def __init__(
        self, urls: dict[str, str], users: RunUsers, keys: tuple[str, ...], stop: threading.Event, seed: int
    ) -> None:
        super().__init__(daemon=True, name="intruder")
        self.urls = urls
        self.users = users
        self.keys = keys
        self.stop_event = stop
        self.rng = random.Random(seed)
        self.seq = itertools.count()
        self.attempts: list[Attempt] = []
        #: (key, value) of every write it tried.
        self.written: list[tuple[str, str]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        anonymous = httpx.Client(timeout=ATTEMPT_TIMEOUT, trust_env=False)
        reader = httpx.Client(timeout=ATTEMPT_TIMEOUT, trust_env=False, auth=self.users.reader)
        workload = httpx.Client(timeout=ATTEMPT_TIMEOUT, trust_env=False, auth=self.users.workload)
        try:
            while not self.stop_event.wait(self.rng.uniform(0.1, 0.3)):
                node = self.rng.choice(sorted(self.urls))
                base = self.urls[node]
                move = self.rng.randrange(5)
                if move == 0:
                    self._put(anonymous, "anonymous", "401", node, base, self.rng.choice(self.keys))
                elif move == 1:
                    self._put(reader, "reader", "403", node, base, self.rng.choice(self.keys))
                elif move == 2:
                    self._put(workload, "jepsen", "403", node, base, OUTSIDE_KEY)
                elif move == 3:
                    self._watch(anonymous, "anonymous", "401", node, base, {"prefix": WORKLOAD_PREFIX})
                else:
                    self._watch(reader, "reader", "403", node, base, {})
        except BaseException as error:  # reported by the test
            self.error = error
        finally:
            for http in (anonymous, reader, workload):
                http.close()

    def _put(self, http: httpx.Client, who: str, expected: str, node: str, base: str, key: str) -> None:
        value = f"{INTRUDER_MARK}{who}-{next(self.seq)}"
        self.written.append((key, value))
        try:
            outcome = str(http.put(base + kv_path(key), json={"value": value}).status_code)
        except httpx.HTTPError as error:
            outcome = type(error).__name__
        self.attempts.append(Attempt(who, f"put {key}", node, outcome, expected))

    def _watch(
        self, http: httpx.Client, who: str, expected: str, node: str, base: str, params: dict[str, str]
    ) -> None:
        """From revision 1: a watch let through would deliver the run's
        first changes at once."""
        what = "watch " + (f"prefix {params['prefix']!r}" if params else "every key")
        try:
            with http.stream("GET", base + "/api/watch", params={**params, "start_revision": "1"}) as r:
                outcome = str(r.status_code)
                if r.status_code == 200:
                    outcome = _first_event(r)
        except httpx.HTTPError as error:
            outcome = type(error).__name__
        self.attempts.append(Attempt(who, what, node, outcome, expected))

    def outcomes(self) -> collections.Counter[tuple[str, str, str]]:
        """(who, what it tried, outcome) -> count."""
        return collections.Counter((a.who, a.what.split()[0], a.outcome) for a in self.attempts)

    def breaches(self) -> list[Attempt]:
        """Attempts neither refused as expected nor left unserved (a 403
        where a 401 was expected is a refusal too: an anonymous write that
        reached a new leader before it applied ``auth enable`` is refused
        when it applies)."""
        return [
            a
            for a in self.attempts
            if a.outcome not in {"401", "403"} and a.outcome not in NOT_SERVED | OPENED_EMPTY
        ]


def _first_event(response: httpx.Response) -> str:
    """What a watch that opened sent first: a change is a breach; an
    ``error`` event (the node learnt auth was on and ended the stream), an
    end or silence delivered nothing (:data:`OPENED_EMPTY`)."""
    name = "message"
    with contextlib.suppress(httpx.ReadTimeout):
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.partition(":")[2].strip()
            elif line == "" and name != "message":
                return "200, then cut off" if name == "error" else f"200, delivered a {name!r} event"
        return "200, then the stream ended"
    return "200, nothing within the timeout"
