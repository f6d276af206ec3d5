"""Clients that prove who they are (no I/O): password hashes, signed
tokens any node can check, and the limit on failed logins. Users, roles
and who may do what are part of the replicated state (raft_trio.kv)."""

from ._passwords import (
    MAX_PASSWORD_BYTES,
    BadHash,
    hash_password,
    password_problem,
    verify_password,
)
from ._ratelimit import LoginThrottle
from ._tokens import (
    DEFAULT_TOKEN_TTL_S,
    MAX_TOKEN_CHARS,
    Claims,
    TokenError,
    issue_token,
    token_key,
    token_user,
    verify_token,
)

__all__ = [
    "DEFAULT_TOKEN_TTL_S",
    "MAX_PASSWORD_BYTES",
    "MAX_TOKEN_CHARS",
    "BadHash",
    "Claims",
    "LoginThrottle",
    "TokenError",
    "hash_password",
    "issue_token",
    "password_problem",
    "token_key",
    "token_user",
    "verify_password",
    "verify_token",
]
