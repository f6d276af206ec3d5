"""Settings every test shares."""

from __future__ import annotations

from functools import partial

import pytest

from raft_trio.auth import _passwords
from raft_trio.http import auth_routes

#: scrypt's cost for the nodes a test runs in its own process: N = 2^10
#: instead of the default 2^15, about 8 ms a hash instead of 0.3 s, which
#: the auth tests (tens of users and logins each) would otherwise spend
#: most of their time on. A stored hash names its parameters, so
#: verifying follows. tests/auth/test_passwords.py checks the defaults
#: themselves, and nodes started as processes (tests/integration,
#: tests/jepsen, tests/hostile) hash at full cost.
TEST_SCRYPT_N = 1 << 10


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_routes, "hash_password", partial(_passwords.hash_password, n=TEST_SCRYPT_N))
