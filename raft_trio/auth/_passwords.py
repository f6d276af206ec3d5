"""Salted password hashes with scrypt (``hashlib.scrypt``, RFC 7914).

A stored hash names its own parameters, ``scrypt$N$r$p$<salt>$<hash>``
(salt and hash in unpadded base64url), so the defaults can be raised later
and old hashes still verify. The defaults are one of OWASP's equivalent
scrypt settings (N=2^15, r=8, p=3): 32 MiB of memory and about a quarter
of a second of one core per hash on the machines this was written on,
which is what an offline guesser pays per guess too. Only the leader hashes
(before it proposes a user or a new password); verifying happens where a
client asks for a token, off the event loop.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCRYPT_N = 1 << 15
SCRYPT_R = 8
SCRYPT_P = 3
SALT_BYTES = 16
HASH_BYTES = 32
#: Passwords longer than this are refused (the CLI and the API say so).
MAX_PASSWORD_BYTES = 1024
#: Parameters a stored hash may name: more would let a damaged or hostile
#: state make every login cost gigabytes or minutes.
_MAX_N = 1 << 20
_MAX_R = 32
_MAX_P = 16


class BadHash(ValueError):
    """A stored hash that is not one this module writes."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=HASH_BYTES, maxmem=129 * r * n + (1 << 20)
    )


def password_problem(password: str) -> str | None:
    """Why ``password`` cannot be set (None: it can)."""
    if not password:
        return "the password is empty"
    try:
        size = len(password.encode("utf-8"))
    except UnicodeEncodeError:
        return "the password is not valid UTF-8"
    if size > MAX_PASSWORD_BYTES:
        return f"the password is {size} bytes; at most {MAX_PASSWORD_BYTES} are allowed"
    return None


def hash_password(
    password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P, salt: bytes | None = None
) -> str:
    """A new salted hash of ``password`` (CPU-heavy: call it in a thread)."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, n, r, p)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (compared in constant time;
    CPU-heavy: call it in a thread). Raises :class:`BadHash` for a stored
    value this module did not write."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise BadHash("not an scrypt hash")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
    except ValueError as error:
        raise BadHash(f"malformed scrypt hash: {error}") from None
    if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        raise BadHash(f"scrypt parameters out of bounds: N={n} r={r} p={p}")
    if len(expected) != HASH_BYTES:
        raise BadHash("the hash has the wrong length")
    try:
        actual = _scrypt(password, salt, n, r, p)
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(actual, expected)
