"""The gate decides on the route that serves the request, whatever form
its target takes.

Werkzeug strips a path's leading slashes when it matches a route, and Quart
takes an absolute-form target (``GET http://host/api/...``, which HTTP/1.1
servers must accept) by its path. A gate that read the raw path took
``//api/kv/secret`` or ``http://host/api/snapshot`` for "no API path" and let
any user through to the routes that trust it (a key's GET, the backup, the
user list, membership changes, another user's lease). Each odd form of a
guarded request must be answered as its plain form is; the requests go
over a real socket, as the odd targets cannot be written with httpx.
"""

from __future__ import annotations

import json

import httpx
import pytest
import trio

from raft_trio.http.answers import NO_ROUTE, Target, route_path
from raft_trio.http.auth import rule_for
from raft_trio.http.cors import MemberOrigins
from raft_trio.security import Security
from tests.security.auth_support import bearer, login, ok, served_node, set_up_users


async def send_raw(url: str, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> int:
    """Sends one request with ``target`` exactly as given; its status."""
    host, port = url.rsplit("//", 1)[1].split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        head = f"{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if method in ("PUT", "POST"):
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        await stream.send_all(head.encode() + b"\r\n" + body)
        answer = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some():
                answer += chunk
    return int(answer.split(b" ", 2)[1])


def odd_forms(url: str, path: str) -> list[str]:
    """The targets Quart serves by the route of ``path``."""
    hostport = url.rsplit("//", 1)[1]
    return [
        "/" + path,  # //api/...
        "//" + path,
        path[1:],  # api/... (no slash at all)
        f"http://{hostport}{path}",  # absolute form
        f"https://elsewhere.example{path}",
        "/%2F" + path[1:],  # decoded to //api/...
    ]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/kv/secret/db", b""),
        ("GET", "/api/kv/secret/db?consistency=stale", b""),
        ("PUT", "/api/kv/secret/db", b'{"value": "mine"}'),
        ("GET", "/api/snapshot", b""),
        ("GET", "/api/auth/users", b""),
        ("GET", "/api/auth/roles", b""),
        ("POST", "/api/members", b'{"id": "intruder", "url": "http://127.0.0.9:29999"}'),
        ("POST", "/api/leases/{lease}/keepalive", b"{}"),
    ],
)
async def test_a_user_without_a_role_is_refused_in_every_form_of_the_target(
    method: str, path: str, body: bytes
) -> None:
    async with served_node() as (node, url), httpx.AsyncClient(base_url=url, timeout=10) as client:
        await set_up_users(client)
        root = bearer(await login(client, "root"))
        lease = (await ok(await client.post("/api/leases", json={"ttl": 60}, headers=root)))["id"]
        await ok(
            await client.put("/api/kv/secret/db", json={"value": "hunter2", "lease": lease}, headers=root)
        )
        path = path.format(lease=lease)
        carol = bearer(await login(client, "carol"))  # no role at all
        members = len(node.membership.ids)
        assert await send_raw(url, method, path, carol, body) == 403
        statuses = {
            target: await send_raw(url, method, target, carol, body) for target in odd_forms(url, path)
        }
        assert set(statuses.values()) == {403}, statuses
        stored = await ok(await client.get("/api/kv/secret/db", headers=root))
        assert stored["value"] == "hunter2"
        assert len(node.membership.ids) == members


async def test_auth_management_needs_the_admin_token_in_every_form_of_the_target() -> None:
    """Auth off, an admin token set: nobody without it adds a user or
    turns auth on, whatever the target's form."""
    async with served_node(Security(admin_token=b"the-admin-token")) as (node, url):
        body = json.dumps({"name": "root", "password": "mine"}).encode()
        assert await send_raw(url, "POST", "/api/auth/users", {}, body) == 401
        for target in odd_forms(url, "/api/auth/users"):
            assert await send_raw(url, "POST", target, {}, body) == 401, target
        for target in odd_forms(url, "/api/auth/enable"):
            assert await send_raw(url, "POST", target, {}, b"{}") == 401, target
        assert node.kv.auth.user("root") is None
        assert not node.kv.auth.enabled


async def test_odd_forms_of_the_target_reach_the_same_route_for_those_allowed() -> None:
    """The gate does not refuse what the route serves: root reads a key
    through every form (the forms are the router's, not an error)."""
    async with served_node() as (_node, url), httpx.AsyncClient(base_url=url, timeout=10) as client:
        await set_up_users(client)
        root = bearer(await login(client, "root"))
        await ok(await client.put("/api/kv/secret/db", json={"value": "hunter2"}, headers=root))
        for target in odd_forms(url, "/api/kv/secret/db"):
            assert await send_raw(url, "GET", target, root) == 200, target


@pytest.mark.parametrize(
    ("path", "root_path", "routed"),
    [
        ("/api/kv/k", "", "/api/kv/k"),
        ("///api/kv/k", "", "/api/kv/k"),
        ("api/kv/k", "", "/api/kv/k"),
        ("http://host:1/api/kv/k", "", "/api/kv/k"),
        ("/raft/api/kv/k", "/raft", "/api/kv/k"),
        ("/raft//api/kv/k", "/raft", "/api/kv/k"),
        ("http://host:1/raft/api/snapshot", "/raft", "/api/snapshot"),
        ("/elsewhere/api/snapshot", "/raft", NO_ROUTE),
        ("/raft", "/raft", NO_ROUTE),
    ],
)
def test_the_routed_path_is_werkzeugs(path: str, root_path: str, routed: str) -> None:
    assert route_path({"path": path, "root_path": root_path}) == routed


@pytest.mark.parametrize(
    ("path", "api_prefix", "open_extra", "kind"),
    [
        # An API under /raft/ is not the peers' routes ...
        ("/raft/v1/snapshot", "/raft/v1", ("/docs",), "root"),
        ("/raft/v1/auth/users", "/raft/v1", ("/docs",), "manage"),
        ("/raft/stream", "/raft/v1", ("/docs",), "open"),
        ("/raft/messages", "/api", (), "open"),
        ("/raft/anything-else", "/api", (), "user"),
        # ... and docs at /a do not open /api.
        ("/api/snapshot", "/api", ("/a", "/openapi.json"), "root"),
        ("/a", "/api", ("/a",), "open"),
        ("/a/static/x.js", "/api", ("/a",), "open"),
        ("/_docs/x.css", "/api", ("/_docs/",), "open"),
        ("/_docsx", "/api", ("/_docs/",), "user"),
    ],
)
def test_open_paths_are_matched_segment_by_segment(
    path: str, api_prefix: str, open_extra: tuple[str, ...], kind: str
) -> None:
    assert rule_for("GET", path, api_prefix, open_extra).kind == kind


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/api/kv/k", "http://leader:1/api/kv/k"),
        ("http://n2:8080/api/kv/k", "http://leader:1/api/kv/k"),
        ("api/kv/k", "http://leader:1/api/kv/k"),
    ],
)
def test_a_redirect_goes_to_the_routed_path_on_the_leader(path: str, location: str) -> None:
    """A follower's 307 names the path it routed, whatever the target's form."""
    assert (
        Target.of_scope({"path": path, "root_path": "", "query_string": b""}).on("http://leader:1")
        == location
    )


@pytest.mark.parametrize(
    ("path", "answered"),
    [("/raft/v1/kv/k", True), ("//raft/v1/kv/k", True), ("/raft/stream", False), ("/raft/messages", False)],
)
def test_cors_leaves_out_the_peers_routes_alone(path: str, answered: bool) -> None:
    """An API under /raft/ (API_PREFIX=/raft/v1) still gets CORS answers."""
    origins = MemberOrigins(None, lambda: {"http://n1:9001"})
    scope = {"type": "http", "path": path, "root_path": "", "headers": [(b"origin", b"http://n1:9001")]}
    assert (origins.allowed_origin(scope) is not None) is answered
