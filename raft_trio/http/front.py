"""The node's ASGI entry: plain key requests go straight to the lean routes.

Served through the whole app, a request passes five ASGI layers before the
lean routes (:mod:`raft_trio.http.lean`) serve it: the answer shield and the
unread-body mark of :mod:`raft_trio.asgi`, Quart's entry, the CORS layer and
the auth gate, most of them wrapping ``send`` or ``receive`` in a closure of
their own. At 64 writers that was about a tenth of the leader's CPU a write
(bench/results/levers.md, lever 15). :class:`FrontDoor` is the app Hypercorn
calls; it serves a PUT or GET of a plain key on the leader itself, when
none of those layers would change it:

- it carries no ``Origin`` (the CORS layer passes such a request untouched);
- the gate admits it (:meth:`AuthGate.admit`, asked on a copy of its scope:
  a refusal takes the whole way, to be answered, logged and counted in one
  place);
- a GET has no body, and a PUT is answered only once its whole body came
  (its Content-Length's worth: the unread-body mark would see it whole too);
- its answer needs no shield (``LeanRoutes.send_kv_answer`` says why).

Everything else, and whatever the lean routes hand over (before it had any
effect, its body replayed), takes the whole app, which serves it exactly as
it would have: the same request gets the same bytes either way.
"""

from __future__ import annotations

from typing import Any

from ..asgi import announces_body
from .auth import AuthGate
from .lean import LeanRoutes, request_headers


class FrontDoor:
    def __init__(self, app: Any, lean: LeanRoutes, gate: AuthGate) -> None:
        #: The whole app, as served without this shortcut.
        self.app = app
        self.lean = lean
        self.gate = gate

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (key := self.lean.plain_key(scope)) is not None:
            headers = request_headers(scope)
            if "origin" not in headers and (scope["method"] == "PUT" or not announces_body(scope)):
                admitted = dict(scope)
                if self.gate.admit(admitted) == "admitted":
                    await self.lean.serve_key(
                        key, admitted, receive, send, lambda given: self.app(scope, given, send), headers
                    )
                    return
        await self.app(scope, receive, send)
