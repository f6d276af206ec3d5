"""The client's side of auth, without I/O: the credentials a client was
given and the token it holds.

With a user name and password, a client logs in (``POST /auth/token``)
before its first call, sends ``Authorization: Bearer <token>`` with every
call, and logs in again a little before the token expires, or once after
a 401 (its password changed, the token was made on a node that restarted
with another cluster secret). Without them it sends no token: a client
certificate (``cert``) or the admin token may prove who it is instead."""

from __future__ import annotations

import dataclasses

from .. import schema
from ._calls import Call, json_body

#: Log in again this long before the token expires (clock skew, a slow call).
RENEW_BEFORE_S = 30.0


def login(user: str, password: str) -> Call[schema.TokenAnswer]:
    """The login call: any node answers it (``repeatable``: a retry only
    issues another token)."""
    body = json_body(schema.TokenRequest(user, password))
    return Call("POST", "/auth/token", schema.TokenAnswer, body=body, repeatable=True)


@dataclasses.dataclass
class TokenKeeper:
    user: str
    password: str
    token: str | None = None
    #: When to log in again, by the client's monotonic clock.
    renew_at: float = 0.0

    def header(self, now: float) -> str | None:
        """The ``Authorization`` value to send, or None when a login is due."""
        if self.token is None or now >= self.renew_at:
            return None
        return f"Bearer {self.token}"

    def login_call(self) -> Call[schema.TokenAnswer]:
        return login(self.user, self.password)

    def store(self, answer: schema.TokenAnswer, now: float) -> str:
        self.token = answer.token
        self.renew_at = now + max(answer.expires_in - RENEW_BEFORE_S, answer.expires_in / 2)
        return f"Bearer {answer.token}"

    def forget(self) -> None:
        self.token = None


def parse_user(text: str) -> tuple[str, str | None]:
    """``NAME[:PASSWORD]`` (as etcdctl's ``--user``) into its parts."""
    name, colon, password = text.partition(":")
    if not name:
        raise ValueError("the user name is empty (give --user NAME[:PASSWORD])")
    return name, password if colon else None
