"""The blocking client: :class:`Client`. Its twin, :class:`TrioClient`
(``_trio.py``), has the same methods, awaited."""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeVar

import httpx

from .. import schema
from ..security import Security
from . import _api, _http, suspend
from ._api import MemberStatus, RangeSpec
from ._auth import TokenKeeper
from ._calls import Call, Endpoints, Failure, Reply, Send, Settings, Wait, attempts, leaves_tls
from ._contention import LOCK_TTL_S, Leader, contenders, leader_of, prefix_of
from ._errors import (
    ApiError,
    ClientError,
    Compacted,
    LeaseNotFound,
    NoEndpointAnswered,
    StreamBroken,
    Unauthorized,
    api_error,
    error_answer,
)
from ._watch import WATCH_STALL_S, WatchCursor, retryable, why_refused
from ._workers import DaemonPool
from .sse import SseComment, SseDropped, SseEvent, SseParser, sse_lines

if TYPE_CHECKING:
    from ._held import HeldLock
    from ._trio import TrioClient

T = TypeVar("T")
#: Where hedged attempts run (see :meth:`Client._send`).
_POOL = DaemonPool()
SseItem = SseEvent | SseComment | SseDropped

#: Where a client looks without endpoints: ``raft-trio up``'s three nodes.
DEFAULT_ENDPOINTS = ("http://127.0.0.1:9001", "http://127.0.0.1:9002", "http://127.0.0.1:9003")


def _endpoint_list(endpoints: str | Sequence[str]) -> list[str]:
    items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    return [item.strip() for item in items if item.strip()]


class Client:
    """A blocking client of a raft-trio cluster.

    ``endpoints`` (a list, or one string of comma-separated URLs) are
    tried in turn; the client follows the leader's redirects and remembers
    the leader, retries what is safe to retry, and gives every write an
    ``Idempotency-Key`` so that a retry takes effect once. ``timeout`` is
    what one call may take in all, retries included (``retry=False``: one
    round of the endpoints, no waiting for a leader). ``ca`` is a CA bundle
    (PEM) for ``https`` endpoints; ``admin_token`` is sent on membership
    changes and leadership transfers (``security``, a
    :class:`raft_trio.security.Security`, gives both as its variables
    say: ``RAFT_TLS_CA``, ``RAFT_ADMIN_TOKEN``). Calls return values of
    :mod:`raft_trio.schema` and raise :class:`~raft_trio.client.ClientError`.

    Use it as a context manager, or call :meth:`close`. One client may be
    shared by threads."""

    def __init__(
        self,
        endpoints: str | Sequence[str] = DEFAULT_ENDPOINTS,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 2.0,
        ca: str | None = None,
        admin_token: str | None = None,
        api_prefix: str = "/api",
        retry: bool = True,
        hedge_after: float | None = Settings.hedge_after,
        user: str | None = None,
        password: str | None = None,
        cert: tuple[str, str] | None = None,
        authorization: Callable[[], str | None] | None = None,
        security: Security | None = None,
        keeper: TokenKeeper | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        if security is not None:
            ca = ca or security.tls_ca
            if admin_token is None and security.admin_token is not None:
                admin_token = security.admin_token.decode()
            if cert is None and security.tls_cert and security.tls_key:
                cert = (security.tls_cert, security.tls_key)
        if password is not None and user is None:
            raise ValueError("a password without a user name")
        self.endpoints = Endpoints(_endpoint_list(endpoints))
        self.settings = Settings(
            timeout=timeout,
            connect_timeout=connect_timeout,
            attempt_timeout=min(timeout, Settings.attempt_timeout),
            api_prefix=api_prefix,
            admin_token=admin_token,
            retry=retry,
            hedge_after=hedge_after,
        )
        self._ca = ca
        self._cert = cert
        self._keeper = (
            keeper
            if keeper is not None
            else (TokenKeeper(user, password) if user is not None and password is not None else None)
        )
        self._authorization = authorization
        self._owns_http = http is None
        self._http = (
            http if http is not None else httpx.Client(**_http.client_options(self.settings, ca, cert))
        )

    def at(self, endpoints: str | Sequence[str], *, timeout: float | None = None) -> Client:
        """A client of other endpoints (the one node at a URL, say),
        sharing this one's connections and settings (it still follows
        redirects)."""
        return Client(
            endpoints,
            timeout=self.settings.timeout if timeout is None else timeout,
            connect_timeout=self.settings.connect_timeout,
            ca=self._ca,
            admin_token=self.settings.admin_token,
            api_prefix=self.settings.api_prefix,
            retry=self.settings.retry,
            hedge_after=self.settings.hedge_after,
            cert=self._cert,
            authorization=self._authorization,
            keeper=self._keeper,
            http=self._http,
        )

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- keys -----------------------------------------------------------------

    def get(self, key: str, *, stale: bool = False) -> schema.KeyAnswer:
        """The key's value and revisions; linearizable, or this node's
        state with ``stale``. Raises :class:`KeyNotFound`."""
        return self._run(_api.get(key, stale))

    def put(
        self, key: str, value: str, *, lease: str | None = None, idempotency_key: str | None = None
    ) -> schema.KeyAnswer:
        """Write a key (attached to ``lease`` if given), once committed."""
        return self._write(_api.put(key, value, lease), idempotency_key)

    def compare_and_set(
        self,
        key: str,
        expected: str | None,
        value: str,
        *,
        lease: str | None = None,
        idempotency_key: str | None = None,
    ) -> schema.KeyAnswer:
        """Write ``value`` if the key holds ``expected`` (None: if it is
        absent). Raises :class:`CompareFailed` (with what it holds)."""
        return self._write(_api.put(key, value, lease, expected), idempotency_key)

    def delete(self, key: str, *, idempotency_key: str | None = None) -> schema.DeleteAnswer:
        return self._write(_api.delete(key), idempotency_key)

    def range(
        self,
        prefix: str | None = None,
        *,
        start: str | None = None,
        end: str | None = None,
        limit: int | None = None,
        after: str | None = None,
        keys_only: bool = False,
        count_only: bool = False,
        stale: bool = False,
    ) -> schema.RangeAnswer:
        """One page of keys in key order (see :meth:`iter_range` for all)."""
        spec = RangeSpec(prefix, start, end, limit, keys_only, count_only, stale)
        return self._run(spec.call(after))

    def iter_range(
        self,
        prefix: str | None = None,
        *,
        start: str | None = None,
        end: str | None = None,
        page_size: int | None = None,
        keys_only: bool = False,
        stale: bool = False,
    ) -> Iterator[schema.RangeItem]:
        """Every matching key, page after page (each page is read on its
        own: keys written meanwhile may or may not be seen)."""
        spec = RangeSpec(prefix, start, end, page_size, keys_only, False, stale)
        after: str | None = None
        while True:
            page = self._run(spec.call(after))
            yield from page.kvs
            if not page.more or not page.kvs:
                return
            after = page.kvs[-1].key

    def txn(
        self,
        compare: Iterable[schema.Compare] = (),
        success: Iterable[schema.Op] = (),
        failure: Iterable[schema.Op] = (),
        *,
        idempotency_key: str | None = None,
    ) -> schema.TxnAnswer:
        """If every compare holds run ``success``, else ``failure``; all at
        one revision."""
        return self._write(_api.txn(compare, success, failure), idempotency_key)

    # -- leases ---------------------------------------------------------------

    def grant_lease(self, ttl: int, *, idempotency_key: str | None = None) -> schema.LeaseAnswer:
        return self._write(_api.grant_lease(ttl), idempotency_key)

    def keep_alive(self, lease: str) -> schema.LeaseAnswer:
        """Extend the lease to its full TTL. Raises :class:`LeaseNotFound`
        once it expired or was revoked."""
        return self._run(_api.keep_alive(lease))

    def lease_info(self, lease: str) -> schema.LeaseInfoAnswer:
        return self._run(_api.lease_info(lease))

    def revoke_lease(self, lease: str, *, idempotency_key: str | None = None) -> schema.LeaseRevokedAnswer:
        return self._write(_api.revoke_lease(lease), idempotency_key)

    @contextlib.contextmanager
    def lease(self, ttl: int) -> Iterator[schema.LeaseAnswer]:
        """A lease kept alive while the block runs (a keep-alive every
        third of its TTL, from a thread), revoked at its end::

            with client.lease(10) as lease:
                client.put("lock/me", "x", lease=lease.id)

        If the lease was lost meanwhile (refused, revoked, or no keep-alive
        answered within its TTL, the time the machine was suspended
        included), :class:`LeaseNotFound` is raised at the end of the block
        (a blocking block cannot be cancelled; the Trio client's is)."""
        sent = suspend.suspend_aware_clock()
        granted = self.grant_lease(ttl)
        stop = threading.Event()
        lost: list[LeaseNotFound] = []
        #: The lease certainly lives until its TTL has passed since the
        #: last answered keep-alive (or the grant) was sent.
        deadline = [sent + granted.ttl]

        def keep() -> None:
            while not stop.wait(granted.ttl / 3):
                try:
                    sent = suspend.suspend_aware_clock()
                    answer = self.keep_alive(granted.id)
                except LeaseNotFound as error:
                    lost.append(error)
                    return
                except ClientError:
                    continue  # tried again a third of the TTL later
                deadline[0] = sent + answer.ttl

        keeper = threading.Thread(target=keep, name=f"lease {granted.id}", daemon=True)
        keeper.start()
        try:
            yield granted
        finally:
            stop.set()
            keeper.join()
            if not lost:
                lost.extend(_lease_lost(granted, deadline[0], self.revoke_lease))
        if lost:
            raise lost[0]

    # -- locks and elections ------------------------------------------------------

    @contextlib.contextmanager
    def lock(
        self, name: str, *, ttl: int = LOCK_TTL_S, margin: float = 0.0, value: str = ""
    ) -> Iterator[HeldLock]:
        """Wait for the lock ``name`` and hold it while the block runs, as
        :meth:`TrioClient.lock` does (the same code, in a thread with a
        Trio run of its own)::

            with client.lock("jobs/nightly") as held:
                storage.write(data, fencing_token=held.token)

        A blocking block cannot be cancelled: if the lock is lost while it
        runs, ``held.lost`` (a ``threading.Event``) is set at once and
        :class:`LockLost` raised when the block ends. Check ``held.lost``
        between steps, and give ``held.token`` to whatever the block
        writes to."""
        from ._held import hold_in_thread

        def make_client() -> TrioClient:
            from ._trio import TrioClient

            keeper = self._keeper
            return TrioClient(
                self.endpoints.urls,
                timeout=self.settings.timeout,
                connect_timeout=self.settings.connect_timeout,
                ca=self._ca,
                admin_token=self.settings.admin_token,
                api_prefix=self.settings.api_prefix,
                retry=self.settings.retry,
                cert=self._cert,
                authorization=self._authorization,
                # Its own token: the thread logs in for itself.
                keeper=TokenKeeper(keeper.user, keeper.password) if keeper is not None else None,
            )

        with hold_in_thread(make_client, name, ttl=ttl, margin=margin, value=value) as held:
            yield held

    def leader(self, name: str) -> Leader | None:
        """Who holds the lock, or leads the election, ``name`` now (None:
        nobody)."""
        prefix = prefix_of(name)
        return leader_of(name, contenders(prefix, self.iter_range(prefix=prefix)))

    # -- the cluster ------------------------------------------------------------

    def status(self) -> schema.Status:
        """The ``/api/status`` of the first endpoint that answers."""
        return self._run(_api.status())

    def members(self) -> list[schema.Member]:
        return self._run(_api.members()).members

    def member_statuses(self, *, timeout: float = 3.0) -> list[MemberStatus]:
        """Every member, with its own status, asked at once (the members
        from the first endpoint that answers): a paused member costs the
        whole ``timeout``, once, not once for each."""
        members = self.members()
        answers: queue.SimpleQueue[MemberStatus | Exception] = queue.SimpleQueue()

        def ask(member: schema.Member) -> Callable[[], None]:
            def job() -> None:
                try:
                    answers.put(MemberStatus(member, self.at(member.url, timeout=timeout).status()))
                except ClientError as error:
                    answers.put(MemberStatus(member, None, _why(error)))
                except Exception as error:
                    # Not a member failing (the client closed): raised, as the twin does.
                    answers.put(error)

            return job

        for member in members:
            _POOL.submit(ask(member))
        found: dict[str, MemberStatus] = {}
        for answer in [answers.get() for _ in members]:
            if isinstance(answer, Exception):
                raise answer
            found[answer.member.id] = answer
        return [found[member.id] for member in members]

    def add_member(self, member_id: str, url: str) -> schema.MemberChangeAnswer:
        """Add a learner (promoted once caught up). Raises
        :class:`MembershipConflict` with code ``already_member`` if it is."""
        return self._run(_api.add_member(member_id, url))

    def remove_member(self, member_id: str) -> schema.MemberChangeAnswer:
        return self._run(_api.remove_member(member_id))

    def transfer_leadership(self, to: str | None = None) -> schema.TransferAnswer:
        return self._run(_api.transfer_leadership(to))

    def health(self) -> schema.Health:
        return self._run(_api.health())

    def readiness(self) -> schema.Readiness:
        return self._run(_api.readiness())

    # -- auth -------------------------------------------------------------------------
    def auth_status(self) -> schema.AuthStatus:
        """Whether auth is on, and who this client is to the cluster."""
        return self._run(_api.auth_status())

    def enable_auth(self) -> schema.AuthChangeAnswer:
        """Turn auth on (needs a user ``root``; raises :class:`AuthConflict` ``root_missing``)."""
        return self._run(_api.auth_switch(True))

    def disable_auth(self) -> schema.AuthChangeAnswer:
        return self._run(_api.auth_switch(False))

    def users(self) -> list[schema.UserAnswer]:
        return (self._run(_api.users())).users

    def user(self, name: str) -> schema.UserAnswer:
        return self._run(_api.user(name))

    def add_user(self, name: str, password: str | None) -> schema.AuthChangeAnswer:
        """Add a user (``password`` None: it proves itself with a client certificate only)."""
        return self._run(_api.add_user(name, password))

    def delete_user(self, name: str) -> schema.AuthChangeAnswer:
        return self._run(_api.delete_user(name))

    def set_password(self, name: str, password: str | None) -> schema.AuthChangeAnswer:
        """A new password; the user's earlier tokens stop working."""
        return self._run(_api.set_password(name, password))

    def grant_role(self, user: str, role: str) -> schema.AuthChangeAnswer:
        return self._run(_api.user_role(user, role, grant=True))

    def revoke_role(self, user: str, role: str) -> schema.AuthChangeAnswer:
        return self._run(_api.user_role(user, role, grant=False))

    def roles(self) -> list[schema.RoleAnswer]:
        return (self._run(_api.roles())).roles

    def role(self, name: str) -> schema.RoleAnswer:
        return self._run(_api.role(name))

    def add_role(self, name: str) -> schema.AuthChangeAnswer:
        return self._run(_api.add_role(name))

    def delete_role(self, name: str) -> schema.AuthChangeAnswer:
        return self._run(_api.delete_role(name))

    def grant_permission(
        self, role: str, access: schema.Access, key: str, *, prefix: bool = False, end: str | None = None
    ) -> schema.AuthChangeAnswer:
        """Give ``role`` read, write or readwrite on ``key``, the prefix ``key`` (``prefix``), or the range ``[key, end)``."""
        return self._run(_api.grant_permission(role, schema.Permission(access, key, prefix, end)))

    def revoke_permission(
        self, role: str, key: str, *, prefix: bool = False, end: str | None = None
    ) -> schema.AuthChangeAnswer:
        return self._run(_api.revoke_permission(role, schema.RevokeRequest(key, prefix, end)))

    # -- streams ----------------------------------------------------------------

    @contextlib.contextmanager
    def open_sse(
        self, path: str, *, max_event_bytes: int | None = None, stall: float | None = None
    ) -> Iterator[Iterator[SseItem]]:
        """The server-sent events of ``path`` (below the API prefix) from
        the first endpoint that answers, parsed (comments included)."""
        tried: list[tuple[str, str]] = []
        read = stall if stall is not None else self.settings.attempt_timeout
        timeout = httpx.Timeout(read, connect=self.settings.connect_timeout)
        headers = self._stream_headers({"Accept": "text/event-stream", "Cache-Control": "no-cache"})
        order = self.endpoints.order(False)
        for base in order:
            url = base + self.settings.api_prefix.rstrip("/") + path
            try:
                stream = self._streamed(url, headers, timeout, base != order[-1])
                response = stream.__enter__()
            except _http.REQUEST_ERRORS as error:
                tried.append((base, _http.describe(error)))
                continue
            try:
                if response.status_code != 200:
                    self._stream_refused(response.status_code)
                    raise api_error(
                        response.status_code, error_answer(response.status_code, response.read()), base
                    )
                self.endpoints.answered(base)
                parser = SseParser(max_event_bytes) if max_event_bytes else SseParser()
                yield _items(sse_lines(response.iter_text()), parser)
            finally:
                stream.__exit__(None, None, None)
            return
        raise NoEndpointAnswered(tried)

    @contextlib.contextmanager
    def snapshot(self, *, chunk_bytes: int = 1 << 16) -> Iterator[Iterator[bytes]]:
        """A backup of the state machine (``GET /snapshot``), streamed from
        the leader as the raw bytes of the backup file; sends the admin
        token. The bytes are not checked here: ``raft-trio snapshot save``
        checks the whole file before it keeps it. A stream that breaks off
        raises :class:`StreamBroken`::

            with client.snapshot() as chunks:
                for chunk in chunks: ...
        """
        tried: list[tuple[str, str]] = []
        headers = (
            {"Authorization": f"Bearer {self.settings.admin_token}"}
            if self.settings.admin_token
            else self._stream_headers({})
        )
        timeout = httpx.Timeout(self.settings.attempt_timeout, connect=self.settings.connect_timeout)
        path = self.settings.api_prefix.rstrip("/") + "/snapshot"
        bases = self.endpoints.order(True)
        #: Each node is asked once: two that name each other the leader
        #: (a leader change under way) would send the download back and
        #: forth for ever.
        asked: set[str] = set()
        while bases:
            base = bases.pop(0)
            asked.add(base)
            try:
                stream = self._http.stream("GET", base + path, headers=headers, timeout=timeout)
                response = stream.__enter__()
            except _http.REQUEST_ERRORS as error:
                self.endpoints.unreachable(base)
                tried.append((base, _http.describe(error)))
                continue
            try:
                if response.status_code == 307 and (location := response.headers.get("location")):
                    if leaves_tls(base, location):  # the admin token is not sent in clear
                        tried.append((base, f"redirected to {location} without TLS: not followed"))
                        continue
                    leader = self.endpoints.learn_leader(location, path)
                    if leader not in bases and leader not in asked:
                        bases.insert(0, leader)
                    tried.append((base, f"not the leader; the leader is at {leader}"))
                    continue
                if response.status_code != 200:
                    self._stream_refused(response.status_code)
                    answer = error_answer(response.status_code, response.read())
                    refusal = api_error(response.status_code, answer, base)
                    if not retryable(refusal):
                        raise refusal
                    tried.append((base, why_refused(refusal)))
                    continue
                self.endpoints.answered(base)
                yield _chunks(response, base, chunk_bytes)
                return
            finally:
                stream.__exit__(None, None, None)
        raise NoEndpointAnswered(tried)

    @contextlib.contextmanager
    def events(self) -> Iterator[Iterator[schema.NodeEvent]]:
        """The events of the first endpoint that answers (``status``
        first), until that node's stream ends::

            with client.events() as events:
                for event in events: ...
        """
        with self.open_sse("/events") as items:
            yield (
                event
                for item in items
                if isinstance(item, SseEvent) and (event := _api.node_event(item.name, item.data))
            )

    @contextlib.contextmanager
    def watch(
        self,
        key: str | None = None,
        *,
        prefix: str | None = None,
        start_revision: int | None = None,
        prev_value: bool = False,
    ) -> Iterator[Iterator[schema.WatchEvent]]:
        """Every change to ``key`` or under ``prefix`` (neither: every
        key) from ``start_revision`` (default: the next change) on, in
        revision order::

            with client.watch(prefix="jobs/") as changes:
                for change in changes: ...

        When an endpoint fails, the watch goes on at another one from
        where it stood: no change is lost or repeated. Raises
        :class:`Compacted` when no endpoint that answers holds the
        revisions it needs any more (one that does not is asked the next
        endpoint), and :class:`NoEndpointAnswered` after ``timeout``
        seconds without any endpoint."""
        changes = self._watch(WatchCursor(key, prefix, start_revision, prev_value))
        try:
            yield changes
        finally:
            changes.close()

    def _watch(self, cursor: WatchCursor) -> Generator[schema.WatchEvent, None, None]:
        timeout = httpx.Timeout(WATCH_STALL_S, connect=self.settings.connect_timeout)
        tried: list[tuple[str, str]] = []
        failing_since: float | None = None
        backoff = 0.1
        while True:
            tried = []  # what the last round found: each endpoint once when the watch gives up
            order = self.endpoints.order(False)
            for base in order:
                url = base + cursor.target(self.settings.api_prefix)
                try:
                    headers = self._stream_headers(cursor.headers())
                    with self._streamed(url, headers, timeout, base != order[-1]) as response:
                        if response.status_code != 200:
                            self._stream_refused(response.status_code)
                            error = cursor.refused(response.status_code, response.read(), base)
                            if not cursor.may_retry(error):
                                raise error
                            tried.append((base, why_refused(error)))
                            continue
                        self.endpoints.answered(base)
                        cursor.opened(response.headers)
                        parser = SseParser()
                        try:
                            for line in sse_lines(response.iter_text()):
                                item = parser.feed(line)
                                if cursor.carries(item):
                                    failing_since, backoff, tried = None, 0.1, []
                                    cursor.served()
                                if (event := cursor.accept(item)) is not None:
                                    yield event
                        except Compacted as error:  # the node dropped the history mid-stream
                            if not cursor.may_retry(error):
                                raise
                            tried.append((base, f"410 {error.code}"))
                            continue
                        tried.append((base, "stream ended"))
                except _http.REQUEST_ERRORS as error:
                    tried.append((base, _http.describe(error)))
            cursor.round_over()
            now = time.monotonic()
            failing_since = now if failing_since is None else failing_since
            if now - failing_since >= self.settings.timeout:
                raise NoEndpointAnswered(tried)
            time.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    @contextlib.contextmanager
    def _streamed(
        self, url: str, headers: dict[str, str], timeout: httpx.Timeout, elsewhere: bool
    ) -> Iterator[httpx.Response]:
        """A streamed GET whose head came within ``hedge_after`` seconds
        (raises ``httpx.ReadTimeout`` otherwise) when the stream has
        ``elsewhere`` to go, another endpoint of the round. A node sends a
        stream's head at once; a paused one accepts the connection and
        says nothing, where the stream's own read timeout (a watch's 15 s)
        would keep a watch from starting elsewhere. The last endpoint of a
        round is waited for as before: a slow link (a TLS handshake across
        regions) that brings every head after the bound must not keep the
        stream from opening anywhere. The request is opened on the pool's
        daemon thread, since a blocking one cannot be cancelled; one whose
        head comes too late is closed there."""
        head_s = self.settings.hedge_after
        if not elsewhere or head_s is None or timeout.read is None or head_s >= timeout.read:
            with self._http.stream("GET", url, headers=headers, timeout=timeout) as response:
                yield response
            return
        opened: queue.SimpleQueue[httpx.Response | Exception] = queue.SimpleQueue()
        lock = threading.Lock()
        abandoned = False

        def job() -> None:
            result: httpx.Response | Exception
            try:
                request = self._http.build_request("GET", url, headers=headers, timeout=timeout)
                result = self._http.send(request, stream=True)
            except Exception as error:  # raised in the caller, as a direct call would
                result = error
            with lock:
                if not abandoned:
                    opened.put(result)
                    return
            if isinstance(result, httpx.Response):
                result.close()

        def abandon() -> httpx.Response | Exception | None:
            """Leave the request to its thread (which closes what comes
            later); what came already, if anything."""
            nonlocal abandoned
            with lock:
                abandoned = True
                return None if opened.empty() else opened.get()

        _POOL.submit(job)
        try:
            result = opened.get(timeout=head_s)
        except queue.Empty:
            if (came := abandon()) is None:
                raise httpx.ReadTimeout(f"no answer within {head_s:g} s") from None
            result = came
        except BaseException:  # Ctrl-C while the head was awaited: nothing left open
            if isinstance(came := abandon(), httpx.Response):
                came.close()
            raise
        if isinstance(result, Exception):
            raise result
        try:
            yield result
        finally:
            result.close()

    # -- the way of a call ------------------------------------------------------------

    def _write(self, call: Call[T], idempotency_key: str | None) -> T:
        return self._run(call, idempotency_key or _api.new_idempotency_key())

    def _run(self, call: Call[T], token: str | None = None) -> T:
        # One budget for the whole call: the login, the call, and the
        # login and the call again after a 401.
        deadline = time.monotonic() + self.settings.timeout
        header = self._auth_header(deadline)
        try:
            return self._drive(call, token, header, deadline)
        except Unauthorized:
            if (
                self._keeper is None
                or (call.admin and self.settings.admin_token)
                or time.monotonic() >= deadline
            ):
                raise
            # The token went stale (a new password, a restarted cluster), or
            # auth was turned on: log in again, once, if time is left. A 401
            # changed nothing, so a write may go again.
            self._keeper.forget()
            return self._drive(call, token, self._auth_header(deadline), deadline)

    def _auth_header(self, deadline: float | None = None) -> str | None:
        """``Authorization`` for the next call: the user's token (logging
        in first when none is held or it is about to expire; none while
        the cluster has auth off), or the caller-given credential, or none."""
        keeper = self._keeper
        if keeper is None:
            return self._authorization() if self._authorization is not None else None
        if keeper.due(time.monotonic()):
            try:
                answer = self._drive(keeper.login_call(), None, None, deadline)
            except ApiError as error:
                if error.code != schema.Code.AUTH_NOT_ENABLED:
                    raise
                keeper.off()
                return None
            keeper.store(answer, time.monotonic())
        return keeper.header()

    def _stream_refused(self, status: int) -> None:
        """A stream answered ``status``: after a 401 the next attempt logs
        in again (auth was turned on, or the token went stale)."""
        if status == 401 and self._keeper is not None:
            self._keeper.forget()

    def _stream_headers(self, headers: dict[str, str]) -> dict[str, str]:
        header = self._auth_header()
        return {**headers, "Authorization": header} if header is not None else headers

    def _drive(
        self, call: Call[T], token: str | None, authorization: str | None, deadline: float | None = None
    ) -> T:
        plan = attempts(call, self.endpoints, self.settings, time.monotonic, token, authorization, deadline)
        result: Reply | Failure | None = None
        while True:
            try:
                action = plan.send(result)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            if isinstance(action, Wait):
                time.sleep(action.seconds)
                result = None
            else:
                result = self._send(action)

    def _send(self, action: Send) -> Reply | Failure:
        """One attempt, and its hedge if ``action`` has one and its URL
        stays silent for ``action.hedge_after`` seconds: the first answer
        is taken. Both run on the pool's daemon threads: the one not
        taken cannot be cancelled and runs out by its own timeout."""
        if action.hedge is None:
            return self._attempt(action)
        results: queue.SimpleQueue[Reply | Failure | Exception] = queue.SimpleQueue()

        def attempt(one: Send, hedged: bool) -> Callable[[], None]:
            def job() -> None:
                try:
                    result = self._attempt(one)
                except Exception as error:  # not a node failing (the client closed): the caller raises it
                    results.put(error)
                    return
                results.put(dataclasses.replace(result, hedged=True) if hedged else result)

            return job

        def next_answer(timeout: float | None = None) -> Reply | Failure:
            answer = results.get(timeout=timeout)
            if isinstance(answer, Exception):
                raise answer  # as from a call without a hedge
            return answer

        _POOL.submit(attempt(action, False))
        try:
            return next_answer(action.hedge_after)
        except queue.Empty:
            pass
        _POOL.submit(attempt(action.the_hedge(), True))
        answers = [next_answer()]
        if isinstance(answers[0], Failure) or (answers[0].hedged and action.sent_back(answers[0])):
            answers.append(next_answer())
        if any(answer.hedged and action.sent_back(answer) for answer in answers):
            # The hedge only redirected to where the first attempt waits:
            # it served nothing, and the first attempt's answer stands.
            return next(answer for answer in answers if not answer.hedged)
        replies = [answer for answer in answers if isinstance(answer, Reply)]
        if not replies:  # both failed: the hedge's failure stands for both
            return next(answer for answer in answers if answer.hedged)
        reply = replies[0]
        if reply.hedged or any(isinstance(answer, Failure) and not answer.sent for answer in answers):
            return reply
        # The hedge went out: what it may have done is not forgotten.
        return dataclasses.replace(reply, hedge_sent=True)

    def _attempt(self, action: Send) -> Reply | Failure:
        try:
            response = self._http.request(
                action.method,
                action.url,
                content=action.body,
                headers=action.headers,
                timeout=_http.timeout(action, self.settings),
            )
        except _http.REQUEST_ERRORS as error:
            return _http.failure(error)
        return _http.reply(response)


def _chunks(response: httpx.Response, base: str, size: int) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes(size)
    except _http.REQUEST_ERRORS as error:
        raise StreamBroken(f"the stream from {base} broke off: {_http.describe(error)}") from error


def _items(lines: Iterator[str], parser: SseParser) -> Iterator[SseItem]:
    for line in lines:
        if (item := parser.feed(line)) is not None:
            yield item


def _why(error: ClientError) -> str:
    if isinstance(error, NoEndpointAnswered):
        return error.tried[-1][1] if error.tried else "unreachable"
    if isinstance(error, ApiError) and error.status is not None:
        return f"http {error.status}"
    return str(error)


def _lease_lost(
    lease: schema.LeaseAnswer, deadline: float, revoke: Callable[[str], object]
) -> list[LeaseNotFound]:
    """Release a lease at the end of its block (revoke it, in case it
    lives); why it was lost before that, if it was: no keep-alive answered
    before ``deadline`` (it may have run out, and what stood on it be
    someone else's), or the revoke found it gone already."""
    lost: list[LeaseNotFound] = []
    overdue = suspend.suspend_aware_clock() - deadline
    if overdue >= 0:
        silent = overdue + lease.ttl
        reason = (
            f"lease {lease.id}: no keep-alive was answered for {silent:.1f} s: the lease may have run out"
        )
        lost.append(LeaseNotFound(None, schema.ErrorAnswer(reason, schema.Code.LEASE_NOT_FOUND)))
    try:
        revoke(lease.id)
    except LeaseNotFound as error:
        lost.append(error)
    except ClientError:
        pass  # nobody to ask: it runs out by itself
    return lost
