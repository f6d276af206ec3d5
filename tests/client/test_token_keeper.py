"""The client's token, without I/O: a login when none is held, again a
little before it expires, none while the cluster has auth off, and again
after a 401."""

from __future__ import annotations

from raft_trio import schema
from raft_trio.client._auth import RENEW_BEFORE_S, TokenKeeper


def test_a_login_is_due_first_then_before_expiry() -> None:
    keeper = TokenKeeper("alice", "pw")
    assert keeper.due(0.0) and keeper.header() is None
    keeper.store(schema.TokenAnswer("t1", 300), now=100.0)
    assert keeper.header() == "Bearer t1"
    assert not keeper.due(100.0 + 300 - RENEW_BEFORE_S - 1)
    assert keeper.due(100.0 + 300 - RENEW_BEFORE_S)


def test_a_short_token_is_renewed_halfway() -> None:
    keeper = TokenKeeper("alice", "pw")
    keeper.store(schema.TokenAnswer("t1", 20), now=0.0)
    assert not keeper.due(9.9) and keeper.due(10.0)


def test_while_auth_is_off_nothing_is_sent_until_a_401() -> None:
    keeper = TokenKeeper("alice", "pw")
    keeper.off()
    assert not keeper.due(1e9) and keeper.header() is None
    keeper.forget()
    assert keeper.due(0.0)


def test_the_login_call_goes_to_any_node_and_may_be_repeated() -> None:
    call = TokenKeeper("alice", "pw").login_call()
    assert (call.method, call.path, call.repeatable, call.leader) == ("POST", "/auth/token", True, False)


class ForgottenBetweenReads(TokenKeeper):
    """A keeper whose token another thread forgets right after it is first
    read (a ``Client`` may be shared by threads; a 401 makes one forget)."""

    reads = 0

    def __getattribute__(self, name: str) -> object:
        value = super().__getattribute__(name)
        if name == "token":
            type(self).reads += 1
            return value if type(self).reads == 1 else None
        return value


def test_the_header_reads_the_token_once() -> None:
    """Read twice, a token forgotten between the reads made the header
    ``Bearer None`` (a review of the client's thread safety)."""
    keeper = ForgottenBetweenReads("alice", "pw", token="the-token")
    assert keeper.header() == "Bearer the-token"
