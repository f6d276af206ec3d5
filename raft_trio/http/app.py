"""The HTTP face of a node: the client API of the contract, the peer
endpoint, server-sent events, metrics and the OpenAPI docs, as one
Quart-Trio app.

The request and response models below are what the handlers use and what
``/openapi.json`` documents (quart-schema generates it from them), so the
docs cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
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
    hide,
    validate_request,
    validate_response,
)
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException
from werkzeug.routing import PathConverter

from ..core import AddLearner, ConfigChangeRejected, RaftError, RemoveMember
from ..kv import MAX_VALUE_BYTES, CasFailed, Delete, Deleted, LeaseNotFound, Put, Written, parse_lease_id
from ..node import (
    NotLeaderError,
    RaftNode,
    ReadAborted,
    Unavailable,
    WriteFailed,
    WriteIndeterminate,
)
from ..node import metrics as node_metrics
from ..peer.auth import RefusalLog
from ..peer.wire import MESSAGES_PATH, PeerRequestError
from . import auth_routes, coordination
from ._answers import (
    REVISION_HEADER,
    DeleteAnswer,
    ErrorAnswer,
    Indeterminate,
    KeyAnswer,
    check_key,
    error,
    idempotency_token,
    key_answer,
    not_leader,
    retry_later,
    sse,
    write,
)
from ._principal import caller, principal_of, still_allowed
from ._requests import PutBody
from .auth import AuthGate
from .auth_routes import add_auth_routes
from .coordination import add_coordination_routes
from .lean import MAX_PEER_BODY_BYTES, LeanRoutes, PeerReceiver

log = logging.getLogger(__name__)

#: Swagger UI's assets, served by the node itself (no CDN).
SWAGGER_UI_PATH: str = swagger_ui_bundle.swagger_ui_path

#: A body may hold a 1 MiB value JSON-escaped (up to 6 bytes a character).
MAX_BODY_BYTES = 8 * MAX_VALUE_BYTES
#: The routes that change the cluster itself (see ``require_admin_token``).
ADMIN_ENDPOINTS = frozenset({"add_member", "remove_member", "transfer", "save_snapshot"})


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


# -- models -------------------------------------------------------------------


class CasConflict(msgspec.Struct):
    error: str
    current: str | None
    index: int


class ReadQuery(msgspec.Struct):
    consistency: str = "linearizable"


class MemberModel(msgspec.Struct):
    id: str
    url: str
    voter: bool
    #: It has acknowledged entries once: a new, empty data directory for it is refused.
    started: bool = False


class MembersAnswer(msgspec.Struct):
    members: list[MemberModel]


class AddMemberBody(msgspec.Struct):
    id: str
    url: str


class MemberChangeAnswer(msgspec.Struct):
    members: list[MemberModel]
    index: int


class TransferBody(msgspec.Struct):
    to: str | None = None


class TransferAnswer(msgspec.Struct):
    leader_id: str


class StatusAnswer(msgspec.Struct):
    id: str
    role: str
    term: int
    leader_id: str | None
    leader_url: str | None
    commit_index: int
    applied_index: int
    last_log_index: int
    members: list[MemberModel]
    #: How the others reach this node (its advertised URL).
    url: str | None = None
    #: This node's alarms: ``"NOSPACE"`` while its free space is below its reserve.
    alarms: list[str] = msgspec.field(default_factory=list)


class ReadyAnswer(msgspec.Struct):
    """``/readyz``: ``ready`` and, in words, why (not)."""

    ready: bool
    reason: str
    id: str
    role: str
    term: int
    leader_id: str | None
    applied_index: int
    leader_commit_index: int | None


#: Where quart-schema's msgspec conversion points ``$ref``s.
REF_TEMPLATE = "#/components/schemas/{name}"
#: Every model whose schema is nested in another one.
NESTED_MODELS: tuple[type[msgspec.Struct], ...] = (
    MemberModel,
    *coordination.NESTED_MODELS,
    *auth_routes.NESTED_MODELS,
)


class CompleteOpenAPIProvider(OpenAPIProvider):
    """quart-schema 0.25 keeps only the top model of msgspec's
    ``schema_components`` and drops the nested ones, so ``/openapi.json``
    held ``$ref``s to ``#/components/schemas/MemberModel`` that resolve to
    nothing (schema tools such as schemathesis refuse such a document).
    This adds the components of the nested models."""

    def schema(self) -> dict[str, Any]:
        document = super().schema()
        _, components = msgspec.json.schema_components(NESTED_MODELS, ref_template=REF_TEMPLATE)
        schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
        for name, component in components.items():
            schemas.setdefault(name, component)
        return document


class KeyConverter(PathConverter):
    """A key: any characters, ``/`` included, even first. Werkzeug's
    ``path`` converter (``[^/].*?``) does not match a newline, so a key
    holding one was a 404, and a key starting with ``/`` was not matched
    at all (with slash merging on, a 308 to the key without its slash)."""

    regex = r"[\s\S]+?"
    part_isolating = False


# -- the app ------------------------------------------------------------------


def create_app(node: RaftNode, settings: HttpSettings | None = None) -> QuartTrio:
    settings = settings or HttpSettings()
    prefix = settings.api_prefix.rstrip("/")
    app = QuartTrio(__name__)
    app.url_map.converters["key"] = KeyConverter
    # ``//`` inside a key is part of the key, not a typo to redirect away.
    app.url_map.merge_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["QUART_SCHEMA_SWAGGER_JS_URL"] = "/_docs/swagger-ui-bundle.js"
    app.config["QUART_SCHEMA_SWAGGER_CSS_URL"] = "/_docs/swagger-ui.css"
    info: dict[str, Any] = {"title": settings.title, "version": "1", "description": settings.description}
    if settings.maintainer or settings.email:
        info["contact"] = {"name": settings.maintainer, "email": settings.email}
    QuartSchema(
        app,
        openapi_path=settings.openapi_path,
        swagger_ui_path=settings.docs_path,
        redoc_ui_path=None,
        scalar_ui_path=None,
        info=Info(**info),
        conversion_preference="msgspec",
        openapi_provider_class=CompleteOpenAPIProvider,
    )

    @app.errorhandler(RequestSchemaValidationError)
    async def invalid_request(exc: RequestSchemaValidationError) -> tuple[dict[str, Any], int]:
        return error(400, f"invalid request: {exc.validation_error}")

    @app.errorhandler(UnicodeDecodeError)
    async def not_utf8(exc: UnicodeDecodeError) -> tuple[dict[str, Any], int]:
        return error(400, f"the request body is not valid UTF-8: {exc.reason} at byte {exc.start}")

    refusals = RefusalLog(log)

    @app.before_request
    async def require_admin_token() -> Any:
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
        body, status = error(401, reason)
        return body, status, {"WWW-Authenticate": 'Bearer realm="raft-trio admin"'}

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if status == 413:
            return error(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
        return error(status, exc.description or exc.name)

    # -- key-value --------------------------------------------------------

    @app.put(f"{prefix}/kv/")
    @app.get(f"{prefix}/kv/")
    @app.delete(f"{prefix}/kv/")
    @hide
    async def empty_key() -> tuple[dict[str, Any], int]:
        return error(400, "the key is empty")

    @app.put(f"{prefix}/kv/<key:key>")
    @validate_request(PutBody)
    @validate_response(KeyAnswer, 200)
    @validate_response(CasConflict, 409)
    @validate_response(ErrorAnswer, 400)
    @validate_response(ErrorAnswer, 404)
    @validate_response(Indeterminate, 503)
    @validate_response(Indeterminate, 507)
    async def put_key(key: str, data: PutBody) -> Any:
        """Write a key (compare-and-set with ``expect``, attached to a lease
        with ``lease``); answers once the write is committed on a majority
        and applied. ``507`` (nothing changed) while a member's free space
        is below what it needs (raft_trio.node.space)."""
        if (bad := check_key(key)) is not None:
            return bad
        size = len(data.value.encode("utf-8"))
        if size > MAX_VALUE_BYTES:
            return error(413, f"the value is {size} bytes; at most {MAX_VALUE_BYTES} are allowed")
        lease = 0
        if data.lease is not None:
            parsed = parse_lease_id(data.lease)
            if parsed is None:
                return error(400, f"lease {data.lease!r} is not a lease id (1 to 16 hex digits)")
            lease = parsed
        token = idempotency_token()
        if isinstance(token, tuple):
            return token
        check = data.expect is not msgspec.UNSET
        expect = data.expect if isinstance(data.expect, str) else None
        command = Put(
            key,
            data.value,
            check=check,
            expect=expect,
            token=token,
            lease=lease,
            caller=caller(request.scope),
        )
        result = await write(node, command)
        if isinstance(result, Written):
            return key_answer(result), 200
        if isinstance(result, CasFailed):
            return CasConflict(
                "compare failed: the key does not hold the expected value", result.current, result.index
            ), 409
        if isinstance(result, LeaseNotFound):
            return error(404, f"lease {data.lease} not found (expired or revoked)")
        return result

    @app.get(f"{prefix}/kv/<key:key>")
    @document_querystring(ReadQuery)
    @validate_response(KeyAnswer, 200)
    @validate_response(ErrorAnswer, 404)
    async def get_key(key: str) -> Any:
        """Read a key: linearizable through the leader (ReadIndex), or from
        this node's state with ``?consistency=stale``."""
        if (bad := check_key(key)) is not None:
            return bad
        consistency = request.args.get("consistency", "linearizable")
        if consistency not in ("linearizable", "stale"):
            return error(400, "consistency must be 'linearizable' or 'stale'")
        if consistency == "linearizable":
            try:
                await node.linearizable_barrier()
            except NotLeaderError as exc:
                return not_leader(node, exc)
            except ReadAborted as exc:
                return retry_later(str(exc))
        if not still_allowed(request.scope, node):
            return error(403, f"no read permission on {key!r} (any more)", code="permission_denied")
        found = node.kv.get(key)
        if found is None:
            return error(404, f"key {key!r} not found")
        return key_answer(found), 200

    @app.delete(f"{prefix}/kv/<key:key>")
    @validate_response(DeleteAnswer, 200)
    @validate_response(Indeterminate, 503)
    async def delete_key(key: str) -> Any:
        """Delete a key; ``deleted`` says whether it existed."""
        if (bad := check_key(key)) is not None:
            return bad
        token = idempotency_token()
        if isinstance(token, tuple):
            return token
        result = await write(node, Delete(key, token=token, caller=caller(request.scope)))
        if isinstance(result, Deleted):
            return DeleteAnswer(result.key, result.deleted, result.index), 200
        return result

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
    @validate_response(StatusAnswer, 200)
    async def status() -> Any:
        """This node's view of the cluster."""
        return node.status(), 200

    @app.get(f"{prefix}/members")
    @validate_response(MembersAnswer, 200)
    async def list_members() -> Any:
        """The configuration in force on this node."""
        return {"members": node.status()["members"]}, 200

    @app.post(f"{prefix}/members")
    @validate_request(AddMemberBody)
    @validate_response(MemberChangeAnswer, 200)
    async def add_member(data: AddMemberBody) -> Any:
        """Add a server: it joins as a learner and the leader promotes it to
        voter once it has caught up."""
        if not data.id or not data.url.startswith(("http://", "https://")):
            return error(400, "a member needs a non-empty id and an http(s) url")
        return await _change(node, AddLearner(data.id, data.url.rstrip("/")))

    @app.delete(f"{prefix}/members/<member_id>")
    @validate_response(MemberChangeAnswer, 200)
    async def remove_member(member_id: str) -> Any:
        """Remove a server from the cluster."""
        return await _change(node, RemoveMember(member_id))

    @app.post(f"{prefix}/leadership/transfer")
    @validate_request(TransferBody)
    @validate_response(TransferAnswer, 200)
    async def transfer(data: TransferBody) -> Any:
        """Hand leadership to ``to`` (or the most caught-up voter)."""
        try:
            target = await node.transfer_leadership(data.to)
        except NotLeaderError as exc:
            return not_leader(node, exc)
        except RaftError as exc:
            return error(400, str(exc))
        if node.core.leader_id != target:
            return retry_later(f"leadership did not move to {target} in time")
        return TransferAnswer(target), 200

    @app.get(f"{prefix}/events")
    async def events() -> Response:
        """Server-sent events: a ``status`` event, then ``role``, ``term``,
        ``leader`` and ``membership`` as they happen, and ``commit`` (the
        commit and applied indexes) at most every 100 ms while they move; a
        comment every second tells a quiet node from a paused one."""

        async def stream() -> AsyncIterator[bytes]:
            yield sse("status", node.status())
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
                        yield sse(event.name, event.data)

        response = Response(stream(), content_type="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.timeout = None
        return response

    # -- operations -------------------------------------------------------

    @app.get("/healthz")
    async def healthz() -> Any:
        """200 while the process serves."""
        return {"ok": True}, 200

    @app.get("/readyz")
    @validate_response(ReadyAnswer, 200)
    @validate_response(ReadyAnswer, 503)
    async def readyz() -> Any:
        """200 when this node is a member caught up with a live leader (the
        leader: while it holds its check-quorum lease); 503 with the reason
        otherwise, also while it stops. Kubernetes' readiness probe."""
        state = node.readiness()
        return state, 200 if state["ready"] else 503

    @app.get("/metrics")
    @hide
    async def metrics() -> Response:
        return Response(
            prometheus_client.generate_latest(), content_type=prometheus_client.CONTENT_TYPE_LATEST
        )

    @app.get("/_docs/<path:filename>")
    @hide
    async def swagger_assets(filename: str) -> Response:
        return await send_from_directory(SWAGGER_UI_PATH, filename)

    # -- peers ------------------------------------------------------------

    peers = PeerReceiver(node, refusals)

    @app.post(MESSAGES_PATH)
    @hide
    async def raft_messages() -> Any:
        # Served by LeanRoutes in front of Quart; this route is what
        # ``app.test_client()`` reaches. Same checks, same answers.
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            sender = peers.head(headers)  # before a (possibly huge) body is read
            # Batches of entries and whole snapshots exceed the client limit.
            request.max_content_length = MAX_PEER_BODY_BYTES
            body = await request.get_data(cache=False, as_text=False)
            assert isinstance(body, bytes)
            peers.accept(sender, headers, body)
        except PeerRequestError as exc:
            peers.refused(exc, str(request.remote_addr))
            return error(exc.status, exc.message)
        return "", 204

    lean = LeanRoutes(
        app.asgi_app,
        peers,
        f"the request body is larger than {MAX_BODY_BYTES} bytes",
        prefix,
        app.json.dumps,
    )
    docs = (settings.docs_path, settings.openapi_path, "/_docs/")
    app.asgi_app = AuthGate(lean, node, prefix, open_paths=docs)  # type: ignore[method-assign]
    return app


async def _change(node: RaftNode, change: AddLearner | RemoveMember) -> Any:
    try:
        index = await node.change_membership(change)
    except NotLeaderError as exc:
        return not_leader(node, exc)
    except ConfigChangeRejected as exc:
        return error(409, str(exc))
    except Unavailable as exc:
        return retry_later(str(exc))
    except (WriteIndeterminate, WriteFailed) as exc:
        return Indeterminate(str(exc), isinstance(exc, WriteIndeterminate)), 503
    return {"members": node.status()["members"], "index": index}, 200
