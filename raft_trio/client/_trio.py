"""The Trio client: :class:`TrioClient`, the blocking :class:`Client`'s
twin (same methods, awaited; same rules, from the same
:func:`~._calls.attempts`)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from types import TracebackType
from typing import Self, TypeVar

import httpx
import trio

from .. import schema
from ..security import Security
from . import _api, _http, _locks
from ._api import MemberStatus, RangeSpec
from ._auth import TokenKeeper
from ._calls import Call, Endpoints, Failure, Reply, Send, Settings, Wait, attempts
from ._contention import LOCK_TTL_S, Leader
from ._errors import (
    ApiError,
    ClientError,
    Compacted,
    LeaseNotFound,
    NoEndpointAnswered,
    Unauthorized,
    api_error,
    error_answer,
)
from ._locks import Holding, Leadership
from ._session import Session, sending
from ._sync import DEFAULT_ENDPOINTS, SseItem, _endpoint_list, _why
from ._watch import WATCH_STALL_S, WatchCursor, why_refused
from .sse import SseEvent, SseParser, asse_lines

T = TypeVar("T")
Code = schema.Code


class TrioClient:
    """A Trio client of a raft-trio cluster: :class:`Client`'s methods,
    awaited, and the same rules. ``async with TrioClient(...) as client``,
    or :meth:`aclose`."""

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
        http: httpx.AsyncClient | None = None,
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
            http if http is not None else httpx.AsyncClient(**_http.client_options(self.settings, ca, cert))
        )

    def at(self, endpoints: str | Sequence[str], *, timeout: float | None = None) -> TrioClient:
        """A client of other endpoints (the one node at a URL, say),
        sharing this one's connections and settings (it still follows
        redirects)."""
        return TrioClient(
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

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- keys -----------------------------------------------------------------

    async def get(self, key: str, *, stale: bool = False) -> schema.KeyAnswer:
        return await self._run(_api.get(key, stale))

    async def put(
        self, key: str, value: str, *, lease: str | None = None, idempotency_key: str | None = None
    ) -> schema.KeyAnswer:
        return await self._write(_api.put(key, value, lease), idempotency_key)

    async def compare_and_set(
        self,
        key: str,
        expected: str | None,
        value: str,
        *,
        lease: str | None = None,
        idempotency_key: str | None = None,
    ) -> schema.KeyAnswer:
        return await self._write(_api.put(key, value, lease, expected), idempotency_key)

    async def delete(self, key: str, *, idempotency_key: str | None = None) -> schema.DeleteAnswer:
        return await self._write(_api.delete(key), idempotency_key)

    async def range(
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
        spec = RangeSpec(prefix, start, end, limit, keys_only, count_only, stale)
        return await self._run(spec.call(after))

    async def iter_range(
        self,
        prefix: str | None = None,
        *,
        start: str | None = None,
        end: str | None = None,
        page_size: int | None = None,
        keys_only: bool = False,
        stale: bool = False,
    ) -> AsyncIterator[schema.RangeItem]:
        spec = RangeSpec(prefix, start, end, page_size, keys_only, False, stale)
        after: str | None = None
        while True:
            page = await self._run(spec.call(after))
            for item in page.kvs:
                yield item
            if not page.more or not page.kvs:
                return
            after = page.kvs[-1].key

    async def txn(
        self,
        compare: Iterable[schema.Compare] = (),
        success: Iterable[schema.Op] = (),
        failure: Iterable[schema.Op] = (),
        *,
        idempotency_key: str | None = None,
    ) -> schema.TxnAnswer:
        return await self._write(_api.txn(compare, success, failure), idempotency_key)

    # -- leases ---------------------------------------------------------------

    async def grant_lease(self, ttl: int, *, idempotency_key: str | None = None) -> schema.LeaseAnswer:
        return await self._write(_api.grant_lease(ttl), idempotency_key)

    async def keep_alive(self, lease: str) -> schema.LeaseAnswer:
        return await self._run(_api.keep_alive(lease))

    async def lease_info(self, lease: str) -> schema.LeaseInfoAnswer:
        return await self._run(_api.lease_info(lease))

    async def revoke_lease(
        self, lease: str, *, idempotency_key: str | None = None
    ) -> schema.LeaseRevokedAnswer:
        return await self._write(_api.revoke_lease(lease), idempotency_key)

    @contextlib.asynccontextmanager
    async def lease(self, ttl: int) -> AsyncIterator[schema.LeaseAnswer]:
        """A lease kept alive while the block runs (a keep-alive every
        third of its TTL), revoked at its end::

            async with client.lease(10) as lease:
                await client.put("lock/me", "x", lease=lease.id)

        If the lease is lost (refused as expired, or no keep-alive answered
        before the TTL counted from the last answered one ran out), the
        block is cancelled and :class:`LeaseNotFound` raised; a block that
        ended before that was noticed (the release finds the lease gone)
        raises it too."""
        sent, slept = sending()
        granted = await self.grant_lease(ttl)
        session = Session.granted(granted, sent, slept_at_sent=slept)
        lost: str | None = None
        try:
            with _locks.single_error():
                async with trio.open_nursery() as nursery:

                    async def keep() -> None:
                        nonlocal lost
                        lost = await session.keep(self.keep_alive)
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(keep)
                    yield granted
                    nursery.cancel_scope.cancel()
        finally:
            if lost is None:
                with trio.CancelScope(shield=True), contextlib.suppress(ClientError):
                    try:
                        await self.revoke_lease(granted.id)
                    except LeaseNotFound:
                        # Revoked by someone else (or run out) before the
                        # keep-alives noticed: the block did not hold it
                        # throughout.
                        lost = "it expired or was revoked before the block ended"
        if lost is not None:
            raise LeaseNotFound(None, schema.ErrorAnswer(f"lease {granted.id}: {lost}", Code.LEASE_NOT_FOUND))

    # -- locks and elections ----------------------------------------------------

    @contextlib.asynccontextmanager
    async def lock(
        self, name: str, *, ttl: int = LOCK_TTL_S, margin: float = 0.0, value: str = ""
    ) -> AsyncIterator[int]:
        """Wait for the lock ``name`` and hold it while the block runs; the
        fencing token (the revision at which it was acquired; every later
        holder's is larger) is what it gives::

            async with client.lock("jobs/nightly") as token:
                await storage.write(data, fencing_token=token)

        The lock stands on a lease of ``ttl`` seconds, kept alive in the
        background. It is lost when the lease is refused (expired or
        revoked), when no keep-alive was answered ``margin`` seconds before
        the lease could run out, or when its key is deleted: then the block
        is cancelled and :class:`LockLost` raised. Leaving the block
        releases it. ``value`` is stored in the holder's key (who holds
        it, for people reading the keys). Waiters queue in order, each
        woken by its predecessor's release only (docs/coordination.md)."""
        async with self.hold(name, ttl=ttl, margin=margin, value=value) as holding:
            yield holding.token

    @contextlib.asynccontextmanager
    async def hold(
        self, name: str, *, ttl: int = LOCK_TTL_S, margin: float = 0.0, value: str = ""
    ) -> AsyncIterator[Holding]:
        """:meth:`lock`, giving the :class:`Holding`: besides its ``token``,
        ``session.safe_until`` says until when (on Trio's clock) nobody else
        can hold the lock, for one that must stop what it runs by then
        (``raft-trio lock`` ends its command by it)."""
        async with _locks.hold(self, name, value, ttl, margin) as holding:
            yield holding

    @contextlib.asynccontextmanager
    async def campaign(
        self, name: str, proposal: str, *, ttl: int = LOCK_TTL_S, margin: float = 0.0
    ) -> AsyncIterator[Leadership]:
        """Campaign in the election ``name`` with ``proposal``; the block
        runs once elected, and leaving it resigns. Lost leadership cancels
        the block and raises :class:`LockLost`, as :meth:`lock` does::

            async with client.campaign("scheduler", "host-a:8080") as leadership:
                ...  # leadership.token fences what the leader writes
        """
        async with _locks.hold(self, name, proposal, ttl, margin) as holding:
            yield Leadership(self, holding, proposal)

    async def leader(self, name: str) -> Leader | None:
        """Who holds the lock, or leads the election, ``name`` now (None:
        nobody)."""
        return await _locks.leader(self, name)

    @contextlib.asynccontextmanager
    async def observe(self, name: str) -> AsyncIterator[AsyncIterator[Leader | None]]:
        """The leader of ``name`` now, then every change of it (None while
        nobody leads)::

            async with client.observe("scheduler") as leaders:
                async for leader in leaders: ...
        """
        async with _locks.observe(self, name) as leaders:
            yield leaders

    # -- the cluster ------------------------------------------------------------

    async def status(self) -> schema.Status:
        return await self._run(_api.status())

    async def members(self) -> list[schema.Member]:
        return (await self._run(_api.members())).members

    async def member_statuses(self, *, timeout: float = 3.0) -> list[MemberStatus]:  # noqa: ASYNC109 (per member)
        """Every member, with its own status, asked at once."""
        members = await self.members()
        found: dict[str, MemberStatus] = {}

        async def ask(member: schema.Member) -> None:
            try:
                found[member.id] = MemberStatus(member, await self.at(member.url, timeout=timeout).status())
            except ClientError as error:
                found[member.id] = MemberStatus(member, None, _why(error))

        async with trio.open_nursery() as nursery:
            for member in members:
                nursery.start_soon(ask, member)
        return [found[member.id] for member in members]

    async def add_member(self, member_id: str, url: str) -> schema.MemberChangeAnswer:
        return await self._run(_api.add_member(member_id, url))

    async def remove_member(self, member_id: str) -> schema.MemberChangeAnswer:
        return await self._run(_api.remove_member(member_id))

    async def transfer_leadership(self, to: str | None = None) -> schema.TransferAnswer:
        return await self._run(_api.transfer_leadership(to))

    async def health(self) -> schema.Health:
        return await self._run(_api.health())

    async def readiness(self) -> schema.Readiness:
        return await self._run(_api.readiness())

    # -- auth -------------------------------------------------------------------------
    async def auth_status(self) -> schema.AuthStatus:
        """Whether auth is on, and who this client is to the cluster."""
        return await self._run(_api.auth_status())

    async def enable_auth(self) -> schema.AuthChangeAnswer:
        """Turn auth on (needs a user ``root``; raises :class:`AuthConflict` ``root_missing``)."""
        return await self._run(_api.auth_switch(True))

    async def disable_auth(self) -> schema.AuthChangeAnswer:
        return await self._run(_api.auth_switch(False))

    async def users(self) -> list[schema.UserAnswer]:
        return (await self._run(_api.users())).users

    async def user(self, name: str) -> schema.UserAnswer:
        return await self._run(_api.user(name))

    async def add_user(self, name: str, password: str | None) -> schema.AuthChangeAnswer:
        """Add a user (``password`` None: it proves itself with a client certificate only)."""
        return await self._run(_api.add_user(name, password))

    async def delete_user(self, name: str) -> schema.AuthChangeAnswer:
        return await self._run(_api.delete_user(name))

    async def set_password(self, name: str, password: str | None) -> schema.AuthChangeAnswer:
        """A new password; the user's earlier tokens stop working."""
        return await self._run(_api.set_password(name, password))

    async def grant_role(self, user: str, role: str) -> schema.AuthChangeAnswer:
        return await self._run(_api.user_role(user, role, grant=True))

    async def revoke_role(self, user: str, role: str) -> schema.AuthChangeAnswer:
        return await self._run(_api.user_role(user, role, grant=False))

    async def roles(self) -> list[schema.RoleAnswer]:
        return (await self._run(_api.roles())).roles

    async def role(self, name: str) -> schema.RoleAnswer:
        return await self._run(_api.role(name))

    async def add_role(self, name: str) -> schema.AuthChangeAnswer:
        return await self._run(_api.add_role(name))

    async def delete_role(self, name: str) -> schema.AuthChangeAnswer:
        return await self._run(_api.delete_role(name))

    async def grant_permission(
        self, role: str, access: schema.Access, key: str, *, prefix: bool = False, end: str | None = None
    ) -> schema.AuthChangeAnswer:
        """Give ``role`` read, write or readwrite on ``key``, the prefix ``key`` (``prefix``), or the range ``[key, end)``."""
        return await self._run(_api.grant_permission(role, schema.Permission(access, key, prefix, end)))

    async def revoke_permission(
        self, role: str, key: str, *, prefix: bool = False, end: str | None = None
    ) -> schema.AuthChangeAnswer:
        return await self._run(_api.revoke_permission(role, schema.RevokeRequest(key, prefix, end)))

    # -- streams ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def open_sse(
        self, path: str, *, max_event_bytes: int | None = None, stall: float | None = None
    ) -> AsyncIterator[AsyncIterator[SseItem]]:
        """The server-sent events of ``path`` (below the API prefix) from
        the first endpoint that answers, parsed (comments included)."""
        tried: list[tuple[str, str]] = []
        read = stall if stall is not None else self.settings.attempt_timeout
        timeout = httpx.Timeout(read, connect=self.settings.connect_timeout)
        headers = await self._stream_headers({"Accept": "text/event-stream", "Cache-Control": "no-cache"})
        order = self.endpoints.order(False)
        for base in order:
            url = base + self.settings.api_prefix.rstrip("/") + path
            try:
                stream = self._streamed(url, headers, timeout, base != order[-1])
                response = await stream.__aenter__()
            except _http.REQUEST_ERRORS as error:
                tried.append((base, _http.describe(error)))
                continue
            try:
                if response.status_code != 200:
                    self._stream_refused(response.status_code)
                    body = await response.aread()
                    raise api_error(response.status_code, error_answer(response.status_code, body), base)
                self.endpoints.answered(base)
                parser = SseParser(max_event_bytes) if max_event_bytes else SseParser()
                async with _lines_of(response) as lines:
                    items = _items(lines, parser)
                    try:
                        yield items
                    finally:
                        await items.aclose()
            finally:
                await stream.__aexit__(None, None, None)
            return
        raise NoEndpointAnswered(tried)

    @contextlib.asynccontextmanager
    async def events(self) -> AsyncIterator[AsyncIterator[schema.NodeEvent]]:
        """The events of the first endpoint that answers (``status``
        first), until that node's stream ends."""
        async with self.open_sse("/events") as items:
            events = _node_events(items)
            try:
                yield events
            finally:
                await events.aclose()

    @contextlib.asynccontextmanager
    async def watch(
        self,
        key: str | None = None,
        *,
        prefix: str | None = None,
        start_revision: int | None = None,
        prev_value: bool = False,
    ) -> AsyncIterator[AsyncIterator[schema.WatchEvent]]:
        """:meth:`Client.watch`, for Trio::

        async with client.watch(prefix="jobs/") as changes:
            async for change in changes: ...
        """
        changes = self._watch(WatchCursor(key, prefix, start_revision, prev_value))
        try:
            yield changes
        finally:
            await changes.aclose()

    async def _watch(self, cursor: WatchCursor) -> AsyncGenerator[schema.WatchEvent, None]:
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
                    headers = await self._stream_headers(cursor.headers())
                    async with self._streamed(url, headers, timeout, base != order[-1]) as response:
                        if response.status_code != 200:
                            self._stream_refused(response.status_code)
                            error = cursor.refused(response.status_code, await response.aread(), base)
                            if not cursor.may_retry(error):
                                raise error
                            tried.append((base, why_refused(error)))
                            continue
                        self.endpoints.answered(base)
                        cursor.opened(response.headers)
                        parser = SseParser()
                        try:
                            async with _lines_of(response) as lines:
                                async for line in lines:
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
            now = trio.current_time()
            failing_since = now if failing_since is None else failing_since
            if now - failing_since >= self.settings.timeout:
                raise NoEndpointAnswered(tried)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    @contextlib.asynccontextmanager
    async def _streamed(
        self, url: str, headers: dict[str, str], timeouts: httpx.Timeout, elsewhere: bool
    ) -> AsyncIterator[httpx.Response]:
        """A streamed GET whose head came within ``hedge_after`` seconds
        when the stream has ``elsewhere`` to go (raises
        ``httpx.ReadTimeout`` otherwise): the blocking twin's rules (see
        ``Client._streamed``), with the wait cancelled here."""
        head_s = self.settings.hedge_after
        async with contextlib.AsyncExitStack() as stack:
            response: httpx.Response | None = None
            with trio.move_on_after(head_s if elsewhere and head_s is not None else math.inf):
                response = await stack.enter_async_context(
                    self._http.stream("GET", url, headers=headers, timeout=timeouts)
                )
            if response is None:
                raise httpx.ReadTimeout(f"no answer within {head_s:g} s")
            yield response

    # -- the way of a call ------------------------------------------------------------

    async def _write(self, call: Call[T], idempotency_key: str | None) -> T:
        return await self._run(call, idempotency_key or _api.new_idempotency_key())

    async def _run(self, call: Call[T], token: str | None = None) -> T:
        # One budget for the whole call: the login, the call, and the
        # login and the call again after a 401.
        deadline = trio.current_time() + self.settings.timeout
        header = await self._auth_header(deadline)
        try:
            return await self._drive(call, token, header, deadline)
        except Unauthorized:
            if (
                self._keeper is None
                or (call.admin and self.settings.admin_token)
                or trio.current_time() >= deadline
            ):
                raise
            # The token went stale (a new password, a restarted cluster), or
            # auth was turned on: log in again, once, if time is left. A 401
            # changed nothing, so a write may go again.
            self._keeper.forget()
            return await self._drive(call, token, await self._auth_header(deadline), deadline)

    async def _auth_header(self, deadline: float | None = None) -> str | None:
        """``Authorization`` for the next call: the user's token (logging
        in first when none is held or it is about to expire; none while
        the cluster has auth off), or the caller-given credential, or none."""
        keeper = self._keeper
        if keeper is None:
            return self._authorization() if self._authorization is not None else None
        if keeper.due(trio.current_time()):
            try:
                answer = await self._drive(keeper.login_call(), None, None, deadline)
            except ApiError as error:
                if error.code != schema.Code.AUTH_NOT_ENABLED:
                    raise
                keeper.off()
                return None
            keeper.store(answer, trio.current_time())
        return keeper.header()

    def _stream_refused(self, status: int) -> None:
        """A stream answered ``status``: after a 401 the next attempt logs
        in again (auth was turned on, or the token went stale)."""
        if status == 401 and self._keeper is not None:
            self._keeper.forget()

    async def _stream_headers(self, headers: dict[str, str]) -> dict[str, str]:
        header = await self._auth_header()
        return {**headers, "Authorization": header} if header is not None else headers

    async def _drive(
        self, call: Call[T], token: str | None, authorization: str | None, deadline: float | None = None
    ) -> T:
        plan = attempts(
            call, self.endpoints, self.settings, trio.current_time, token, authorization, deadline
        )
        result: Reply | Failure | None = None
        while True:
            try:
                action = plan.send(result)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            if isinstance(action, Wait):
                await trio.sleep(action.seconds)
                result = None
            else:
                result = await self._send(action)

    async def _send(self, action: Send) -> Reply | Failure:
        """One attempt, and its hedge if ``action`` has one and its URL
        stays silent for ``action.hedge_after`` seconds: the first answer
        is taken and the other request cancelled (a failure waits for the
        other's answer). The attempt runs in this task and its answer
        ends the hedge's wait without a cancellation: an attempt answered
        in time costs a task that waits, 60-90 us of CPU (measured)."""
        if action.hedge is None:
            return await self._attempt(action)
        first = trio.CancelScope()
        answered = trio.Event()
        hedged: list[Reply | Failure] = []
        hedge_sent = False

        async def hedge_when_silent() -> None:
            nonlocal hedge_sent
            with trio.move_on_after(action.hedge_after):
                await answered.wait()
            if answered.is_set():  # the first attempt came in before this ran
                return
            hedge_sent = True
            answer = await self._attempt(action.the_hedge())
            if action.sent_back(answer):
                hedge_sent = False  # a redirect serves nothing: the first attempt goes on
                return
            hedged.append(answer)
            hedge_sent = not isinstance(answer, Failure) or answer.sent
            if isinstance(answer, Reply):
                first.cancel()

        result: Reply | Failure | None = None
        # What an attempt raises (not a node failing: the client closed)
        # comes out as itself, as from a call without a hedge.
        with _locks.single_error():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(hedge_when_silent)
                with first:
                    result = await self._attempt(action)
                answered.set()  # the hedge's wait ends without a cancellation
                if isinstance(result, Reply) and hedge_sent:
                    nursery.cancel_scope.cancel()  # the hedge in flight
        if isinstance(result, Reply):
            # The hedge went out: what it may have done is not forgotten.
            return dataclasses.replace(result, hedge_sent=True) if hedge_sent else result
        if result is not None and not hedged:
            return result
        return dataclasses.replace(hedged[0], hedged=True)

    async def _attempt(self, action: Send) -> Reply | Failure:
        """One request, answered within ``action.timeout`` as a whole:
        httpx's timeouts bound each read and write alone, so a node that
        sends its answer a byte at a time kept a call going far past its
        timeout."""
        with trio.move_on_after(action.timeout):
            try:
                response = await self._http.request(
                    action.method,
                    action.url,
                    content=action.body,
                    headers=action.headers,
                    timeout=_http.timeout(action, self.settings),
                )
            except _http.REQUEST_ERRORS as error:
                return _http.failure(error)
            return _http.reply(response)
        return Failure(f"no whole answer within {action.timeout:.1f} s", sent=True)


@contextlib.asynccontextmanager
async def _lines_of(response: httpx.Response) -> AsyncIterator[AsyncIterator[str]]:
    """The lines of a streamed answer. Leaving before its end closes the
    connection and then runs the body's generators to their end (they end
    at once, on the closed socket): httpcore does not close them, and Trio
    warns about every async generator left unfinished for the garbage
    collector."""
    lines = asse_lines(response.aiter_text())
    try:
        yield lines
    finally:
        with trio.CancelScope(shield=True):
            await response.aclose()
            with contextlib.suppress(
                *_http.REQUEST_ERRORS, trio.ClosedResourceError, trio.BrokenResourceError
            ):
                async for _ in lines:
                    pass


async def _items(lines: AsyncIterator[str], parser: SseParser) -> AsyncGenerator[SseItem, None]:
    async for line in lines:
        if (item := parser.feed(line)) is not None:
            yield item


async def _node_events(items: AsyncIterator[SseItem]) -> AsyncGenerator[schema.NodeEvent, None]:
    async for item in items:
        if isinstance(item, SseEvent) and (event := _api.node_event(item.name, item.data)):
            yield event
