"""The HTTP face of a node: the client API of the contract, the peer
endpoint, server-sent events, metrics and the OpenAPI docs, as one
Quart-Trio app.

Request and answer shapes come from :mod:`raft_trio.schema`: the handlers
decode requests into them, answer with them (through
:mod:`raft_trio.http.answers`, which the lean routes share), and
``/openapi.json`` documents them (quart-schema generates it), so the docs
cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import prometheus_client
import swagger_ui_bundle  # type: ignore[import-untyped]
import trio
from quart import Response, request, send_from_directory
from quart_schema import (
    Info,
    OpenAPIProvider,
    QuartSchema,
    RequestSchemaValidationError,
    document_querystring,
    document_response,
    hide,
)
from quart_schema.validation import QuerystringValidationError
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestTimeout
from werkzeug.routing import PathConverter

from .. import schema
from ..asgi import UpgradeHandler
from ..core import AddLearner, RemoveMember
from ..kv import MAX_VALUE_BYTES, Delete
from ..node import RaftNode
from ..node import metrics as node_metrics
from ..peer.auth import RefusalLog
from ..peer.wire import MESSAGES_PATH, STREAM_PROTOCOL, PeerRequestError, member_id_problem, peer_url_problem
from . import answers
from ._principal import caller, principal_of, still_allowed
from ._respond import answered, quart_response
from .answers import NODE_ERRORS, REVISION_HEADER, Answer, Target, bad_request, error, name_taken
from .auth import AuthGate
from .auth_routes import add_auth_routes
from .bodies import JsonRequest, expected_body, validate_body
from .coordination import add_coordination_routes
from .cors import MemberOrigins
from .docs import describe_operations, docs_page, package_version
from .front import FrontDoor
from .lean import MAX_PEER_BODY_BYTES, LeanRoutes, PeerReceiver

log = logging.getLogger(__name__)

Code = schema.Code

#: Swagger UI's assets, served by the node itself (no CDN).
SWAGGER_UI_PATH: str = swagger_ui_bundle.swagger_ui_path

#: A body may hold a 1 MiB value JSON-escaped (up to 6 bytes a character).
MAX_BODY_BYTES = 8 * MAX_VALUE_BYTES
#: The routes that change the cluster itself (see ``require_admin_token``).
ADMIN_ENDPOINTS = frozenset({"add_member", "remove_member", "transfer", "save_snapshot"})
#: Error codes of the HTTP errors Quart and Werkzeug raise themselves.
HTTP_ERROR_CODES = {
    400: Code.BAD_REQUEST,
    404: Code.NOT_FOUND,
    405: Code.METHOD_NOT_ALLOWED,
    413: Code.TOO_LARGE,
    415: Code.BAD_REQUEST,
}


@dataclasses.dataclass(frozen=True)
class HttpSettings:
    """What the contract lets users configure about the HTTP surface."""

    api_prefix: str = "/api"
    title: str = "raft-trio"
    description: str = "A Raft consensus service written for Trio: a replicated, durable key-value store."
    maintainer: str | None = None
    email: str | None = None
    openapi_path: str = "/openapi.json"
    docs_path: str = "/docs"


#: Where quart-schema's msgspec conversion points ``$ref``s.
REF_TEMPLATE = "#/components/schemas/{name}"


class CompleteOpenAPIProvider(OpenAPIProvider):
    """quart-schema 0.25 keeps only the top model of msgspec's
    ``schema_components`` and drops the nested ones, so ``/openapi.json``
    held ``$ref``s to ``#/components/schemas/Member`` that resolve to
    nothing (schema tools such as schemathesis refuse such a document).
    This adds the components of the nested models."""

    def schema(self) -> dict[str, Any]:
        document = super().schema()
        _, components = msgspec.json.schema_components(
            (*schema.NESTED_MODELS, schema.ErrorAnswer), ref_template=REF_TEMPLATE
        )
        schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
        for name, component in components.items():
            schemas.setdefault(name, component)
        # Any operation with input may refuse it, with the error of the
        # rules every answer follows; quart-schema lists a 400 only where
        # a route documents one.
        bad_request = {
            "description": "the request is not valid (what is wrong, in error)",
            "content": {"application/json": {"schema": {"$ref": REF_TEMPLATE.format(name="ErrorAnswer")}}},
        }
        describe_operations(document, bad_request)
        return document


class KeyConverter(PathConverter):
    """A key: any characters, ``/`` included, even first. Werkzeug's
    ``path`` converter (``[^/].*?``) does not match a newline, so a key
    holding one was a 404, and a key starting with ``/`` was not matched
    at all (with slash merging on, a 308 to the key without its slash)."""

    regex = r"[\s\S]+?"
    part_isolating = False


def target() -> Target:
    """The request being served, to send on to the leader."""
    return Target.of_scope(dict(request.scope))


# -- the app ------------------------------------------------------------------


#: Where :func:`create_app` leaves the app's :class:`PeerReceiver` (Quart's
#: place for what extensions keep), for :func:`upgrades`, and its lean routes
#: and auth gate, for :func:`front_door`.
_PEERS_KEY = "raft_trio.peers"
_LEAN_KEY = "raft_trio.lean"
_GATE_KEY = "raft_trio.gate"


def upgrades(app: QuartTrio, root_path: str = "") -> dict[str, UpgradeHandler]:
    """The protocols a connection to the node may switch to (for
    :func:`raft_trio.asgi.serve_app`): its peers' streams."""
    peers: PeerReceiver = app.extensions[_PEERS_KEY]
    return {STREAM_PROTOCOL: functools.partial(peers.serve_stream, root_path=root_path)}


def front_door(app: QuartTrio) -> Callable[[Any], FrontDoor]:
    """The shortcut in front of the whole app as served (for
    :func:`raft_trio.asgi.serve_app`): plain key requests on the leader
    straight to the lean routes (:mod:`raft_trio.http.front`)."""
    return functools.partial(FrontDoor, lean=app.extensions[_LEAN_KEY], gate=app.extensions[_GATE_KEY])


def create_app(node: RaftNode, settings: HttpSettings | None = None) -> QuartTrio:
    settings = settings or HttpSettings()
    prefix = settings.api_prefix.rstrip("/")
    app = QuartTrio(__name__)
    app.request_class = JsonRequest  # a body is JSON whatever its Content-Type
    app.url_map.converters["key"] = KeyConverter
    # ``//`` inside a key is part of the key, not a typo to redirect away.
    app.url_map.merge_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    info: dict[str, Any] = {
        "title": settings.title,
        "version": package_version(),
        "description": settings.description,
    }
    if settings.maintainer or settings.email:
        info["contact"] = {"name": settings.maintainer, "email": settings.email}
    QuartSchema(
        app,
        openapi_path=settings.openapi_path,
        swagger_ui_path=None,  # the page of raft_trio.http.docs instead (see docs_ui below)
        redoc_ui_path=None,
        scalar_ui_path=None,
        info=Info(**info),
        conversion_preference="msgspec",
        openapi_provider_class=CompleteOpenAPIProvider,
    )

    @app.errorhandler(RequestSchemaValidationError)
    @answered
    async def invalid_request(exc: RequestSchemaValidationError) -> Answer:
        # A query string's error names the query string: the body's asked
        # a GET that sends none for "a JSON object".
        if isinstance(exc, QuerystringValidationError):
            return bad_request(f"invalid query string: {exc.validation_error} (see /docs)")
        return bad_request(f"invalid request: {exc.validation_error}; {expected_body(request.endpoint)}")

    @app.errorhandler(UnicodeDecodeError)
    @answered
    async def not_utf8(exc: UnicodeDecodeError) -> Answer:
        return bad_request(f"the request body is not valid UTF-8: {exc.reason} at byte {exc.start}")

    refusals = RefusalLog(log)

    @app.before_request
    async def require_admin_token() -> Response | None:
        """Membership changes and leadership transfer need the admin token
        when one is configured (or, with auth on, a user with the role
        root): checked before the body is even read."""
        if request.endpoint not in ADMIN_ENDPOINTS:
            return None
        principal = principal_of(request.scope)
        if principal is not None and principal.root:
            return None  # admitted as root by the auth gate
        if node.security.admin_allowed(request.headers.get("Authorization")):
            return None
        node_metrics.ADMIN_REQUESTS_REFUSED.inc()
        reason = "missing or wrong admin token (Authorization: Bearer <RAFT_ADMIN_TOKEN>)"
        refusals.refused(f"{request.method} {request.path}", str(request.remote_addr), reason)
        refused = error(
            401, Code.UNAUTHORIZED, reason, ("WWW-Authenticate", 'Bearer realm="raft-trio admin"')
        )
        return quart_response(refused)

    @app.errorhandler(HTTPException)
    @answered
    async def http_error(exc: HTTPException) -> Answer:
        status = exc.code or 500
        code = HTTP_ERROR_CODES.get(status, Code.INTERNAL)
        if status == 413:
            return error(413, code, f"the request body is larger than {MAX_BODY_BYTES} bytes")
        if status == 404:
            return error(
                404, code, f"no such endpoint: {request.method} {request.path} (the API is at /docs)"
            )
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            takes = ", ".join(sorted(set(exc.valid_methods) - {"HEAD", "OPTIONS"}))
            return error(405, code, f"{request.path} does not take {request.method}; it takes {takes}")
        return error(status, code, exc.description or exc.name)

    #: What ``http_error`` answers for a body that did not come within
    #: ``BODY_TIMEOUT``, for the lean routes to answer alike.
    body_timed_out = error(408, HTTP_ERROR_CODES.get(408, Code.INTERNAL), RequestTimeout.description)

    # -- key-value --------------------------------------------------------

    # Not strict about the slash: ``/api/kv`` (the range) takes only GET,
    # and Werkzeug answered its PUT or DELETE with an HTML 308 to here.
    @app.put(f"{prefix}/kv/", strict_slashes=False)
    @app.get(f"{prefix}/kv/", strict_slashes=False)
    @app.delete(f"{prefix}/kv/", strict_slashes=False)
    @hide
    @answered
    async def empty_key() -> Answer:
        return bad_request("the key is empty")

    @app.put(f"{prefix}/kv/<key:key>")
    @validate_body(schema.PutRequest)
    @document_response(schema.KeyAnswer, 200)
    @document_response(schema.CasConflict, 409)
    @document_response(schema.ErrorAnswer, 400)
    @document_response(schema.ErrorAnswer, 404)
    @document_response(schema.UnavailableAnswer, 503)
    @document_response(schema.UnavailableAnswer, 507)
    @answered
    async def put_key(key: str, data: schema.PutRequest) -> Answer:
        """Write a key (compare-and-set with ``expect``, attached to a lease
        with ``lease``); answers once the write is committed on a majority
        and applied. ``507`` (nothing changed) while a member's free space
        is below what it needs (raft_trio.node.space)."""
        token = request.headers.get(schema.IDEMPOTENCY_HEADER)
        return await answers.put(node, key, data, token, target(), caller(request.scope))

    @app.get(f"{prefix}/kv/<key:key>")
    @document_querystring(schema.ReadQuery)
    @document_response(schema.KeyAnswer, 200)
    @document_response(schema.ErrorAnswer, 404)
    @answered
    async def get_key(key: str) -> Answer:
        """Read a key: linearizable through the leader (ReadIndex), or from
        this node's state with ``?consistency=stale``."""
        if (refused := answers.check_key(key)) is not None:
            return refused
        consistency = request.args.get("consistency", "linearizable")
        if consistency not in ("linearizable", "stale"):
            return bad_request("consistency must be 'linearizable' or 'stale'")
        scope = request.scope
        return await answers.read_key(node, key, consistency, target(), lambda: still_allowed(scope, node))

    @app.delete(f"{prefix}/kv/<key:key>")
    @document_response(schema.DeleteAnswer, 200)
    @document_response(schema.UnavailableAnswer, 503)
    @answered
    async def delete_key(key: str) -> Answer:
        """Delete a key; ``deleted`` says whether it existed."""
        token = request.headers.get(schema.IDEMPOTENCY_HEADER)
        if (refused := answers.check_key(key) or answers.check_token(token)) is not None:
            return refused
        return await answers.write(node, Delete(key, token=token), target(), caller(request.scope))

    add_coordination_routes(app, node, prefix)
    add_auth_routes(app, node, prefix)

    @app.after_request
    async def revision_header(response: Response) -> Response:
        """Every answer about keys says which revision this node's state
        stands at (a watch sets its own, at its start)."""
        if request.path.startswith((f"{prefix}/kv", f"{prefix}/txn")):
            response.headers.setdefault(REVISION_HEADER, str(node.kv.revision))
        return response

    # -- cluster ----------------------------------------------------------

    @app.get(f"{prefix}/status")
    @document_response(schema.Status, 200)
    @answered
    async def status() -> Answer:
        """This node's view of the cluster."""
        return Answer(200, node.status())

    @app.get(f"{prefix}/members")
    @document_response(schema.MembersAnswer, 200)
    @answered
    async def list_members() -> Answer:
        """The configuration in force on this node."""
        return Answer(200, schema.MembersAnswer(node.status().members))

    @app.post(f"{prefix}/members")
    @validate_body(schema.AddMemberRequest)
    @document_response(schema.MemberChangeAnswer, 200)
    @document_response(schema.ErrorAnswer, 409)
    @answered
    async def add_member(data: schema.AddMemberRequest) -> Answer:
        """Add a server: it joins as a learner and the leader promotes it to
        voter once it has caught up. 409 with code ``already_member`` if it
        is one, ``name_taken`` if a user has its name, ``change_rejected``
        if another member is at its URL (as etcd refuses a peer URL that
        exists: the messages for the new one would reach the other)."""
        if not data.id or not data.url.startswith(("http://", "https://")):
            return bad_request("a member needs a non-empty id and an http(s) url")
        if (problem := member_id_problem(data.id) or peer_url_problem(data.url)) is not None:
            return bad_request(problem)
        if node.kv.auth.user(data.id) is not None:
            return name_taken(f"{data.id!r} is a user of the cluster")
        url = data.url.rstrip("/")
        holder = next((m for m in node.membership.members if m.url == url and m.id != data.id), None)
        if holder is not None:
            return error(409, Code.CHANGE_REJECTED, f"{holder.id} is already a member at {url}")
        return await change_membership(AddLearner(data.id, url))

    @app.delete(f"{prefix}/members/<member_id>")
    @document_response(schema.MemberChangeAnswer, 200)
    @document_response(schema.ErrorAnswer, 409)
    @answered
    async def remove_member(member_id: str) -> Answer:
        """Remove a server from the cluster."""
        return await change_membership(RemoveMember(member_id))

    async def change_membership(change: AddLearner | RemoveMember) -> Answer:
        try:
            index = await node.change_membership(change)
        except NODE_ERRORS as exc:
            return answers.for_exception(exc, node, target())
        return Answer(200, schema.MemberChangeAnswer(node.status().members, index))

    @app.post(f"{prefix}/leadership/transfer")
    @validate_body(schema.TransferRequest)
    @document_response(schema.TransferAnswer, 200)
    @answered
    async def transfer(data: schema.TransferRequest) -> Answer:
        """Hand leadership over to the voter the body names in ``to``, or
        (``to`` null or absent) to the most caught-up one."""
        try:
            leader = await node.transfer_leadership(data.to)
        except NODE_ERRORS as exc:
            return answers.for_exception(exc, node, target())
        if node.leader_id != leader:
            return answers.retry_later(f"leadership did not move to {leader} in time")
        return Answer(200, schema.TransferAnswer(leader))

    @app.get(f"{prefix}/events")
    async def events() -> Response:
        """Server-sent events: a ``status`` event, then ``role``, ``term``,
        ``leader`` and ``membership`` as they happen, and ``commit`` (the
        commit and applied indexes) at most every 100 ms while they move; a
        comment every second tells a quiet node from a paused one."""

        async def stream() -> AsyncIterator[bytes]:
            yield answers.sse("status", node.status())
            async with node.subscribe() as channel:
                while True:
                    with trio.move_on_after(1.0) as waited:
                        try:
                            event = await channel.receive()
                        except (trio.EndOfChannel, trio.ClosedResourceError):
                            return
                    if waited.cancelled_caught:
                        yield b": keep-alive\n\n"
                    else:
                        yield answers.sse(event.name, event.data)

        response = Response(stream(), content_type="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.timeout = None
        return response

    # -- operations -------------------------------------------------------

    @app.get("/healthz")
    @document_response(schema.Health, 200)
    @answered
    async def healthz() -> Answer:
        """200 while the process serves."""
        return Answer(200, schema.Health(True))

    @app.get("/readyz")
    @document_response(schema.Readiness, 200)
    @document_response(schema.Readiness, 503)
    @answered
    async def readyz() -> Answer:
        """200 when this node is a member caught up with a live leader (the
        leader: while it holds its check-quorum lease); 503 with the reason
        otherwise, also while it stops. Kubernetes' readiness probe."""
        state = node.readiness()
        return Answer(200 if state.ready else 503, state)

    @app.get("/metrics")
    async def metrics() -> Response:
        """The node's metrics in Prometheus' text format: term, role, commit
        and applied indexes, proposals, fsync and peer latencies, leader
        changes, disk space and storage errors."""
        return Response(
            prometheus_client.generate_latest(), content_type=prometheus_client.CONTENT_TYPE_LATEST
        )

    @app.get("/_docs/<path:filename>")
    @hide
    async def swagger_assets(filename: str) -> Response:
        return await send_from_directory(SWAGGER_UI_PATH, filename)

    # -- peers ------------------------------------------------------------

    peers = PeerReceiver(node, refusals)
    app.extensions[_PEERS_KEY] = peers

    @app.post(MESSAGES_PATH)
    @hide
    async def raft_messages() -> Any:
        # Served by LeanRoutes in front of Quart; this route is what
        # ``app.test_client()`` reaches. Same checks, same answers.
        headers = {k.lower(): v for k, v in request.headers.items()}
        pending = None
        try:
            sender, pending = peers.batch_head(headers)  # before a (possibly huge) body is read
            # Batches of entries and whole snapshots exceed the client limit.
            request.max_content_length = MAX_PEER_BODY_BYTES
            body = await request.get_data(cache=False, as_text=False)
            assert isinstance(body, bytes)
            await peers.accept(sender, headers, body, pending)
        except PeerRequestError as exc:
            peers.refused(exc, str(request.remote_addr))
            return {"error": exc.message}, exc.status
        finally:
            peers.abandon(pending)
        return "", 204

    @app.get(settings.docs_path)
    @hide
    async def docs_ui() -> Response:
        root = request.root_path
        page = docs_page(
            title=settings.title,
            js_url=f"{root}/_docs/swagger-ui-bundle.js",
            css_url=f"{root}/_docs/swagger-ui.css",
            openapi_url=f"{root}{settings.openapi_path}",
            status_url=f"{root}{prefix}/status",
            api_prefix=prefix,
            root=root,
        )
        return Response(page, content_type="text/html; charset=utf-8")

    lean = LeanRoutes(
        app.asgi_app,
        peers,
        f"the request body is larger than {MAX_BODY_BYTES} bytes",
        prefix,
        app.json.dumps,
        lambda: app.config["BODY_TIMEOUT"],
        body_timed_out,
    )
    docs = (settings.docs_path, settings.openapi_path, "/_docs/")
    gate = AuthGate(lean, node, prefix, open_paths=docs)
    app.extensions[_LEAN_KEY] = lean
    app.extensions[_GATE_KEY] = gate
    # Outermost, so that the lean answers and the gate's refusals carry the
    # same CORS headers (a preflight is answered here, before the gate).
    app.asgi_app = MemberOrigins(gate, lambda: {m.url for m in node.membership.members})  # type: ignore[method-assign]
    return app
