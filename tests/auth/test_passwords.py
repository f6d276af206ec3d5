"""Salted scrypt hashes: a password verifies against its own hash only,
every hash is salted afresh, and stored hashes that this module did not
write are refused instead of trusted."""

from __future__ import annotations

import pytest

from raft_trio.auth import MAX_PASSWORD_BYTES, BadHash, hash_password, password_problem, verify_password
from raft_trio.auth._passwords import SCRYPT_N, SCRYPT_P, SCRYPT_R

#: Cheaper parameters for the tests that are not about the defaults.
FAST_N, FAST_R, FAST_P = 1 << 10, 8, 1


def test_a_password_verifies_against_its_hash_and_nothing_else_does() -> None:
    stored = hash_password("correct horse", n=FAST_N, r=FAST_R, p=FAST_P)
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert not verify_password("correct horse ", stored)


def test_the_defaults_are_owasp_scrypt_and_named_in_the_hash() -> None:
    stored = hash_password("pw")
    assert stored.startswith(f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$")
    assert (SCRYPT_N, SCRYPT_R, SCRYPT_P) == (1 << 15, 8, 3)
    assert verify_password("pw", stored)


def test_each_hash_has_its_own_salt() -> None:
    assert hash_password("same", n=FAST_N, r=FAST_R, p=FAST_P) != hash_password(
        "same", n=FAST_N, r=FAST_R, p=FAST_P
    )


def test_a_hash_with_other_parameters_still_verifies() -> None:
    """Parameters travel in the hash, so raising the defaults later keeps
    old users able to log in."""
    assert verify_password("pw", hash_password("pw", n=1 << 11, r=4, p=2))


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "bcrypt$2b$12$abc",
        "scrypt$16384$8$1$c2FsdA",  # a part missing
        "scrypt$x$8$1$c2FsdA$aGFzaA",
        "scrypt$16385$8$1$c2FsdA$" + "A" * 43,  # N not a power of two
        f"scrypt${1 << 24}$8$1$c2FsdA$" + "A" * 43,  # gigabytes per login
        "scrypt$1024$8$1$c2FsdA$aGFzaA",  # hash of the wrong length
    ],
)
def test_a_stored_value_this_module_did_not_write_is_refused(stored: str) -> None:
    with pytest.raises(BadHash):
        verify_password("pw", stored)


def test_passwords_must_be_non_empty_and_bounded() -> None:
    assert password_problem("") == "the password is empty"
    assert password_problem("x" * MAX_PASSWORD_BYTES) is None
    assert "at most" in (password_problem("é" * MAX_PASSWORD_BYTES) or "")
    assert password_problem("\udc80") == "the password is not valid UTF-8"
