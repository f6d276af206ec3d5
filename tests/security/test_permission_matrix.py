"""The permission matrix: every endpoint of the API, asked by a user who
may (not 401 or 403), by one who may not (403 with a JSON error), and by
no one (401 with a JSON error); a refusal changes nothing (the node's
revision stays where it was). The open endpoints answer anyone.

One served node for the whole table (logins cost a quarter second of
scrypt each); a failing row names itself."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from raft_trio.core import Membership, Snapshot, SnapshotMeta
from raft_trio.http.app import create_app
from raft_trio.node import RaftNode, Timing
from raft_trio.security import Security
from tests.node.harness import MemoryNodeStorage

from .auth_support import bearer, login, ok, served_node, set_up_users, tokens

Setup = Callable[[httpx.AsyncClient, dict[str, str]], Awaitable[str]]


@dataclasses.dataclass(frozen=True)
class Row:
    """One endpoint: ``path`` may hold ``{lease}``, filled by ``setup``
    (run as root before each ask)."""

    name: str
    method: str
    path: str
    allowed: str
    denied: str | None
    body: Any = None
    setup: Setup | None = None
    stream: bool = False


async def lease_with_key(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    lease = (await ok(await client.post("/api/leases", json={"ttl": 60}, headers=headers)))["id"]
    await ok(await client.put("/api/kv/app/leased", json={"value": "v", "lease": lease}, headers=headers))
    return str(lease)


TXN = {"compare": [], "success": [{"put": {"key": "app/t", "value": "1"}}], "failure": []}

ROWS = [
    # Watching the cluster: any user.
    Row("status", "GET", "/api/status", "carol", None),
    Row("members", "GET", "/api/members", "carol", None),
    Row("events", "GET", "/api/events", "carol", None, stream=True),
    Row("auth status", "GET", "/api/auth/status", "carol", None),
    Row("lease grant", "POST", "/api/leases", "carol", None, {"ttl": 60}),
    # Keys: read or write on what the request names.
    Row("put", "PUT", "/api/kv/app/x", "alice", "bob", {"value": "v"}),
    Row("put (lean path)", "PUT", "/api/kv/app-1", "alice", "bob", {"value": "v"}),
    Row("compare-and-set", "PUT", "/api/kv/app/x", "alice", "bob", {"value": "w", "expect": "v"}),
    Row("get", "GET", "/api/kv/app/x", "bob", "carol"),
    Row("get (lean path)", "GET", "/api/kv/app-1", "bob", "carol"),
    Row("get stale", "GET", "/api/kv/app/x?consistency=stale", "bob", "carol"),
    Row("delete", "DELETE", "/api/kv/app/x", "alice", "bob"),
    Row("range", "GET", "/api/kv?prefix=app", "bob", "carol"),
    Row("range keys only", "GET", "/api/kv?start=app&end=apq&keys_only=true", "bob", "carol"),
    Row("watch", "GET", "/api/watch?prefix=app", "bob", "carol", stream=True),
    Row("watch a key", "GET", "/api/watch?key=app/x", "bob", "carol", stream=True),
    Row("txn", "POST", "/api/txn", "alice", "bob", TXN),
    Row("lease keepalive", "POST", "/api/leases/{lease}/keepalive", "alice", "bob", setup=lease_with_key),
    Row("lease info", "GET", "/api/leases/{lease}", "bob", "carol", setup=lease_with_key),
    Row("lease revoke", "DELETE", "/api/leases/{lease}", "alice", "bob", setup=lease_with_key),
    # Root only.
    Row("snapshot", "GET", "/api/snapshot", "root", "alice"),
    Row("add member", "POST", "/api/members", "root", "alice", {"id": "", "url": "x"}),
    Row("remove member", "DELETE", "/api/members/n9", "root", "alice"),
    Row("transfer leadership", "POST", "/api/leadership/transfer", "root", "alice", {"to": "n9"}),
    Row("auth enable", "POST", "/api/auth/enable", "root", "alice"),
    Row("list users", "GET", "/api/auth/users", "root", "alice"),
    Row("get user", "GET", "/api/auth/users/bob", "root", "alice"),
    Row("add user", "POST", "/api/auth/users", "root", "alice", {"name": "dave", "password": None}),
    Row("set password", "PUT", "/api/auth/users/dave/password", "root", "alice", {"password": None}),
    Row("grant role", "PUT", "/api/auth/users/carol/roles/app-r", "root", "alice"),
    Row("revoke role", "DELETE", "/api/auth/users/carol/roles/app-r", "root", "alice"),
    Row("list roles", "GET", "/api/auth/roles", "root", "alice"),
    Row("get role", "GET", "/api/auth/roles/app-r", "root", "alice"),
    Row("add role", "POST", "/api/auth/roles", "root", "alice", {"name": "extra"}),
    Row(
        "grant permission",
        "POST",
        "/api/auth/roles/extra/permissions",
        "root",
        "alice",
        {"access": "read", "key": "x"},
    ),
    Row("revoke permission", "POST", "/api/auth/roles/extra/revoke", "root", "alice", {"key": "x"}),
    Row("delete role", "DELETE", "/api/auth/roles/extra", "root", "alice"),
    Row("delete user", "DELETE", "/api/auth/users/dave", "root", "alice"),
    Row("auth disable", "POST", "/api/auth/disable", "root", "alice"),  # last: it turns auth off
]
OPEN = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"]


async def ask(client: httpx.AsyncClient, row: Row, path: str, headers: dict[str, str]) -> httpx.Response:
    """The answer (of a stream that began, only its head: it is closed)."""
    request = client.build_request(row.method, path, json=row.body, headers=headers)
    response = await client.send(request, stream=True)
    try:
        if row.stream and response.status_code == 200:
            assert response.headers["content-type"].startswith("text/event-stream"), row.name
        else:
            await response.aread()
        return response
    finally:
        await response.aclose()


async def check_row(client: httpx.AsyncClient, node: RaftNode, row: Row, given: dict[str, str]) -> list[str]:
    problems: list[str] = []
    root = bearer(given["root"])
    askers: list[tuple[str, dict[str, str], int | None]] = [("anonymous", {}, 401)]
    if row.denied is not None:
        askers.append((row.denied, bearer(given[row.denied]), 403))
    askers.append((row.allowed, bearer(given[row.allowed]), None))
    for who, headers, expected in askers:
        path = row.path
        if row.setup is not None:
            path = path.format(lease=await row.setup(client, root))
        revision = node.kv.revision
        response = await ask(client, row, path, headers)
        if expected is None:
            if response.status_code in (401, 403):
                problems.append(f"{row.name}: {who} was refused {response.status_code}: {response.text}")
            continue
        if response.status_code != expected:
            problems.append(f"{row.name}: {who} got {response.status_code}, not {expected}: {response.text}")
            continue
        body = response.json()
        code = "unauthorized" if expected == 401 else "permission_denied"
        if body.get("code") != code or not body.get("error"):
            problems.append(f"{row.name}: {who}'s refusal is not a JSON error with code {code}: {body}")
        if node.kv.revision != revision:
            problems.append(
                f"{row.name}: {who}'s refusal changed the state ({revision} -> {node.kv.revision})"
            )
    return problems


async def test_every_endpoint_by_an_allowed_a_denied_and_an_anonymous_caller() -> None:
    async with served_node() as (node, url), httpx.AsyncClient(base_url=url, timeout=10) as client:
        await set_up_users(client)
        given = await tokens(client)
        await ok(await client.put("/api/kv/app-1", json={"value": "v"}, headers=bearer(given["root"])))
        problems: list[str] = []
        for row in ROWS:
            problems.extend(await check_row(client, node, row, given))
        assert problems == [], "\n".join(problems)


def test_the_table_names_every_route_of_the_api() -> None:
    """A new route must join the matrix: each (method, route) of the app is
    asked by some row (``<key>`` and ``<lease>`` filled in)."""
    storage = MemoryNodeStorage(Snapshot(SnapshotMeta(0, 0, Membership.of({"n1": "http://n1"}))))
    app = create_app(RaftNode("n1", "http://n1", storage, Timing(), seed=1))
    asked = {(row.method, row.path.split("?")[0]) for row in ROWS}
    missing: list[str] = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.rule in ("/api/kv/", "/api/auth/token"):
            continue
        pattern = re.compile("^" + re.sub(r"<[^>]+>", "[^?]+", rule.rule) + "$")
        missing.extend(
            f"{method} {rule.rule}"
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
            if not any(m == method and pattern.match(path) for m, path in asked)
        )
    assert missing == []


async def test_the_open_endpoints_answer_anyone_with_auth_on() -> None:
    async with served_node() as (_, url), httpx.AsyncClient(base_url=url) as client:
        await set_up_users(client)
        for path in OPEN:
            response = await client.get(path)
            assert response.status_code == 200, (path, response.status_code, response.text[:200])


async def test_the_open_endpoints_named_to_be_protected_need_a_user() -> None:
    """``RAFT_AUTH_PROTECT=metrics``: with auth on, ``/metrics`` needs a
    user (any: carol has no role), the others stay open; with auth off
    nothing changes."""
    async with (
        served_node(Security(protected=("metrics",))) as (_, url),
        httpx.AsyncClient(base_url=url) as client,
    ):
        assert (await client.get("/metrics")).status_code == 200
        await set_up_users(client)
        refused = await client.get("/metrics")
        assert refused.status_code == 401 and refused.json()["code"] == "unauthorized", refused.text
        carol = bearer(await login(client, "carol"))
        assert (await client.get("/metrics", headers=carol)).status_code == 200
        for path in ("/healthz", "/readyz"):
            assert (await client.get(path)).status_code == 200, path


async def test_lease_info_needs_read_on_every_key_attached() -> None:
    """``GET /api/leases/{id}`` lists the lease's keys: as etcd's
    LeaseTimeToLive, it is refused (403, not a shorter list) unless the
    caller may read every key attached, checked on the keys the answer
    would list; the refusal does not name the key."""
    async with served_node() as (_, url), httpx.AsyncClient(base_url=url, timeout=10) as client:
        await set_up_users(client)
        given = await tokens(client)
        root = bearer(given["root"])
        lease = await lease_with_key(client, root)
        path = f"/api/leases/{lease}"
        readable = await ok(await client.get(path, headers=bearer(given["bob"])))
        assert readable["keys"] == ["app/leased"]
        put = {"value": "s", "lease": lease}
        await ok(await client.put("/api/kv/secret/hidden", json=put, headers=root))
        for who in ("alice", "bob", "carol"):
            refused = await client.get(path, headers=bearer(given[who]))
            assert refused.status_code == 403, (who, refused.text)
            assert refused.json()["code"] == "permission_denied"
            assert "secret" not in refused.text, refused.text
        assert (await client.get(path)).status_code == 401
        everything = await ok(await client.get(path, headers=root))
        assert everything["keys"] == ["app/leased", "secret/hidden"]
        # Keeping it alive or revoking it needs write on every key: the
        # refusal does not name the key either.
        for method, suffix in (("POST", "/keepalive"), ("DELETE", "")):
            refused = await client.request(method, path + suffix, headers=bearer(given["alice"]))
            assert refused.status_code == 403 and "secret" not in refused.text, (method, refused.text)


async def test_a_key_is_attached_only_to_a_lease_whose_keys_the_writer_may_write() -> None:
    """etcd's checkLeasePuts: alice (readwrite on app) may not hang a key
    on root's lease, whose key she may not write, by a PUT or in a
    transaction; were she let, root would need write on her key to keep
    his own lease alive or revoke it. Refused on apply, nothing written."""
    async with served_node() as (node, url), httpx.AsyncClient(base_url=url, timeout=10) as client:
        await set_up_users(client)
        given = await tokens(client)
        root, alice = bearer(given["root"]), bearer(given["alice"])
        lease = (await ok(await client.post("/api/leases", json={"ttl": 60}, headers=root)))["id"]
        await ok(await client.put("/api/kv/secret/lock", json={"value": "r", "lease": lease}, headers=root))
        attach = await client.put("/api/kv/app/junk", json={"value": "x", "lease": lease}, headers=alice)
        assert attach.status_code == 403 and attach.json()["code"] == "permission_denied", attach.text
        assert "secret" not in attach.text, attach.text
        txn = {
            "compare": [],
            "success": [{"put": {"key": "app/junk", "value": "x", "lease": lease}}],
            "failure": [],
        }
        in_txn = await client.post("/api/txn", json=txn, headers=alice)
        assert in_txn.status_code == 403 and in_txn.json()["code"] == "permission_denied", in_txn.text
        assert (await client.get("/api/kv/app/junk", headers=root)).status_code == 404
        assert (await ok(await client.get(f"/api/leases/{lease}", headers=root)))["keys"] == ["secret/lock"]
        await ok(await client.post(f"/api/leases/{lease}/keepalive", headers=root))
        # Her own lease, and one whose keys she may write, she may use.
        own = (await ok(await client.post("/api/leases", json={"ttl": 60}, headers=alice)))["id"]
        await ok(await client.put("/api/kv/app/a", json={"value": "x", "lease": own}, headers=alice))
        await ok(await client.put("/api/kv/app/b", json={"value": "x", "lease": own}, headers=alice))
        assert node.kv.leases[int(own, 16)].keys == {"app/a", "app/b"}
