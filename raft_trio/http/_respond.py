"""How the Quart routes send an :class:`~raft_trio.http.answers.Answer`:
the same bytes and headers as the lean routes send for it."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec

from quart import Response

from .answers import JSON_TYPE, Answer

P = ParamSpec("P")


def quart_response(answer: Answer) -> Response:
    response = Response(answer.encode(), status=answer.status, content_type=JSON_TYPE)
    for name, value in answer.headers:
        response.headers[name] = value
    return response


def answered(handler: Callable[P, Awaitable[Answer]]) -> Callable[P, Awaitable[Response]]:
    """A handler of the API returns an Answer; Quart gets its Response.
    (``functools.wraps`` keeps the docstring and what quart-schema set on
    the handler, which ``/openapi.json`` is made from.)"""

    @functools.wraps(handler)
    async def respond(*args: P.args, **kwargs: P.kwargs) -> Response:
        return quart_response(await handler(*args, **kwargs))

    return respond
