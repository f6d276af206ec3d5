"""Reading the cluster secret, the admin token and the TLS files, and the
admin token travelling with requests (also across a leader redirect)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from raft_trio.security import Security, is_admin_request, load_secret


def test_a_secret_comes_from_its_variable_or_its_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"  a-long-enough-secret-value\n")
    assert load_secret("cluster secret", None, str(path)) == b"a-long-enough-secret-value"
    assert load_secret("cluster secret", "a-long-enough-secret-value", None) == b"a-long-enough-secret-value"
    assert load_secret("cluster secret", None, None) is None


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        ("a-long-enough-secret-value", "/some/file", "not both"),
        ("short", None, "at least 16 bytes"),
        (None, "/does/not/exist", "cannot read the cluster secret file /does/not/exist"),
    ],
)
def test_a_bad_secret_is_named(value: str | None, path: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_secret("cluster secret", value, path)


def test_settings_come_from_the_environment_and_flags_win(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("token-from-the-file-0123\n")
    environ = {
        "RAFT_CLUSTER_SECRET": "secret-from-the-variable",
        "RAFT_ADMIN_TOKEN_FILE": "/not/used",
    }
    security = Security.from_environment(environ, admin_token_file=str(token_file), tls_cert=None)
    assert security.cluster_secret == b"secret-from-the-variable"
    assert security.admin_token == b"token-from-the-file-0123"
    assert security.scheme == "http"
    with pytest.raises(ValueError, match="TLS file not found: /not/used/either"):
        Security.from_environment({"RAFT_TLS_CA": "/not/used/either"})


def test_which_open_endpoints_need_a_user_is_a_list_of_names() -> None:
    assert Security.from_environment({}).protected == ()
    named = Security.from_environment({"RAFT_AUTH_PROTECT": " Metrics,readyz ,metrics"})
    assert named.protected == ("metrics", "readyz")
    with pytest.raises(ValueError, match="RAFT_AUTH_PROTECT names healthz, readyz, metrics, not status"):
        Security.from_environment({"RAFT_AUTH_PROTECT": "metrics,status"})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tls_cert": __file__}, "both a certificate and its key"),
        ({"tls_cert": "/nope.pem", "tls_key": "/nope.key"}, "TLS file not found: /nope.pem"),
        ({"admin_token": b"with a space inside it"}, "printable ASCII"),
    ],
)
def test_inconsistent_settings_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Security(**fields)  # type: ignore[arg-type]


def test_admin_requests_are_the_membership_and_leadership_changes() -> None:
    assert is_admin_request("POST", "/api/members")
    assert is_admin_request("DELETE", "/api/members/n3")
    assert is_admin_request("GET", "/api/snapshot")  # a backup holds every key
    assert is_admin_request("POST", "/api/leadership/transfer")
    assert is_admin_request("post", "/prefix/members", "/prefix/")
    assert not is_admin_request("GET", "/api/members")
    assert not is_admin_request("PUT", "/api/kv/members")
    assert not is_admin_request("POST", "/api/membersx")


def test_the_admin_token_is_checked_in_constant_time_and_only_when_set() -> None:
    assert Security().admin_allowed(None)
    security = Security(admin_token=b"the-admin-token-0123")
    assert security.admin_allowed("Bearer the-admin-token-0123")
    assert security.admin_allowed("bearer the-admin-token-0123")
    assert not security.admin_allowed(None)
    assert not security.admin_allowed("Bearer wrong")
    assert not security.admin_allowed("Basic the-admin-token-0123")


def test_the_admin_token_follows_a_redirect_to_the_leader() -> None:
    """httpx drops Authorization on a redirect to another origin; the hook
    puts it back on every request of the chain, and only on admin ones."""
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers.get("Authorization")))
        if request.url.port == 9001:
            return httpx.Response(307, headers={"Location": "http://127.0.0.2:9002" + request.url.path})
        return httpx.Response(200, json={})

    security = Security(admin_token=b"the-admin-token-0123")
    with httpx.Client(
        transport=httpx.MockTransport(handler),
        follow_redirects=True,
        event_hooks={"request": [security.sync_admin_hook()]},
    ) as client:
        client.delete("http://127.0.0.1:9001/api/members/n3")
        client.put("http://127.0.0.1:9001/api/kv/k", json={"value": "v"})
    token = "Bearer the-admin-token-0123"
    assert seen == [
        ("http://127.0.0.1:9001/api/members/n3", token),
        ("http://127.0.0.2:9002/api/members/n3", token),
        ("http://127.0.0.1:9001/api/kv/k", None),
        ("http://127.0.0.2:9002/api/kv/k", None),
    ]
