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
    """A user's credentials and the token they got. While the cluster has
    auth off (its login answers ``auth_not_enabled``) no token is sent and
    none asked for, until a 401 says auth is on now."""

    user: str
    password: str
    token: str | None = None
    #: When to log in again, by the client's monotonic clock.
    renew_at: float = 0.0
    auth_off: bool = False

    def due(self, now: float) -> bool:
        """Whether a login is due before the next call."""
        return not self.auth_off and (self.token is None or now >= self.renew_at)

    def header(self) -> str | None:
        """The ``Authorization`` value to send (None: none). The token is
        read once: a ``Client`` may be shared by threads, and another one
        forgetting it between two reads sent ``Bearer None``."""
        token = self.token
        return None if self.auth_off or token is None else f"Bearer {token}"

    def login_call(self) -> Call[schema.TokenAnswer]:
        return login(self.user, self.password)

    def store(self, answer: schema.TokenAnswer, now: float) -> None:
        self.token = answer.token
        self.renew_at = now + max(answer.expires_in - RENEW_BEFORE_S, answer.expires_in / 2)

    def off(self) -> None:
        """The cluster answered that auth is off."""
        self.auth_off, self.token = True, None

    def forget(self) -> None:
        """After a 401: the token went stale, or auth was turned on."""
        self.auth_off, self.token = False, None
