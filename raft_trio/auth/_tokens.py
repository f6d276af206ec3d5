"""Tokens that any node can check: ``rt1.<claims>.<mac>``.

``claims`` is the MessagePack array [user, user revision, expiry (Unix
seconds), nonce], base64url; ``mac`` is HMAC-SHA256 over ``rt1.<claims>``
under the cluster's token key, base64url. The token key is derived from
the signing key in the replicated auth state (random, made once by the
first ``auth enable``) and, when the cluster has one, the cluster secret:
so a node of another cluster cannot check (or forge) this cluster's tokens,
and with a cluster secret set, a leaked backup (which holds the signing
key) is not enough to forge one either.

A token is good while it has not expired and its user still exists with
the revision it names: deleting the user or changing its password ends
every token issued before, on every node as soon as it applied the change.
Roles are not in the token: permissions are looked up on every request, so
a changed role takes effect at once too.

Expiry reads the wall clock of the node checking: nodes are expected to
run NTP, as for peer signatures (raft_trio.peer.auth).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

import msgspec

from ..kv import AuthState

PREFIX = "rt1"
#: Default lifetime of a token (etcd's simple tokens and JWTs default to 5 minutes).
DEFAULT_TOKEN_TTL_S = 300
#: Longer strings are not tokens (and are not parsed).
MAX_TOKEN_CHARS = 2048
_LABEL = b"raft-trio-token-v1\0"


class TokenError(Exception):
    """Why a token is not accepted (the text goes into the 401)."""


class Claims(msgspec.Struct, frozen=True, array_like=True):
    user: str
    revision: int
    expires: int
    nonce: bytes


_claims_decoder = msgspec.msgpack.Decoder(Claims)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_key(signing_key: bytes, cluster_secret: bytes | None) -> bytes:
    """The key tokens are signed with: the replicated signing key mixed
    with the cluster secret (when set)."""
    return hmac.new(signing_key, _LABEL + (cluster_secret or b""), hashlib.sha256).digest()


def issue_token(key: bytes, user: str, revision: int, ttl_s: int, now: float) -> str:
    claims = Claims(user, revision, int(now) + ttl_s, secrets.token_bytes(8))
    body = f"{PREFIX}.{_b64(msgspec.msgpack.encode(claims))}"
    mac = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def verify_token(key: bytes, token: str, now: float) -> Claims:
    """The claims of a token signed with ``key`` and not expired at
    ``now``; raises :class:`TokenError`."""
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenError("malformed token: too long")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenError("malformed token")
    body = f"{parts[0]}.{parts[1]}"
    try:
        mac = _unb64(parts[2])
        raw = _unb64(parts[1])
        expected = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise TokenError("malformed token") from None
    if not hmac.compare_digest(mac, expected):
        raise TokenError("invalid token: not signed by this cluster")
    try:
        claims = _claims_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise TokenError("malformed token") from None
    if claims.expires <= now:
        raise TokenError("the token has expired; ask for a new one (POST /api/auth/token)")
    return claims


def token_user(state: AuthState, cluster_secret: bytes | None, token: str, now: float) -> str:
    """The user a token proves, checked against the current auth state;
    raises :class:`TokenError`."""
    if not state.signing_key:
        raise TokenError("invalid token: auth was never enabled here")
    claims = verify_token(token_key(state.signing_key, cluster_secret), token, now)
    user = state.user(claims.user)
    if user is None:
        raise TokenError(f"invalid token: user {claims.user!r} no longer exists")
    if user.revision != claims.revision:
        raise TokenError("invalid token: the user's password changed (or the user was re-created) since")
    return user.name
