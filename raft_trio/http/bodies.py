"""Request bodies as curl sends them: JSON whatever the Content-Type says.

``curl -d '{"value": "v"}'`` labels its body
``application/x-www-form-urlencoded``, ``curl -T file`` labels it not at
all; Werkzeug then reads no JSON, and a bad body got its HTML-era
sentence ("The browser (or proxy) sent a request..."). Every body of the
API is JSON, so it is read as JSON whatever the label; an empty body is
``{}`` (so that ``POST /api/leadership/transfer`` needs none, and a
missing field is named); and a body that is not JSON gets a 400 of ours
saying what to send, with an example for the route. So does a string with
half of a UTF-16 surrogate pair (``"\\ud800"``): Python's JSON decoder
takes it, but it is no character, and nothing can store or send it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from quart import request
from quart_schema import RequestSchemaValidationError, validate_request
from quart_trio.wrappers.request import TrioRequest
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

#: An example body per route (the endpoint's name) for error messages.
EXAMPLES = {
    "put_key": '{"value": "v"} (a compare-and-set adds "expect": "old" or null)',
    "add_member": '{"id": "n4", "url": "http://127.0.0.1:9004"}',
    "transfer": '{"to": "n2"}, or {} for the most caught-up voter',
    "txn": '{"compare": [...], "success": [...], "failure": [...]} (see /docs)',
    "grant_lease": '{"ttl": 30}',
}


def expected_body(endpoint: str | None) -> str:
    """What to send to ``endpoint``, for an error message."""
    example = EXAMPLES.get(endpoint or "")
    return f"send a JSON object such as {example}" if example else "send a JSON object (see /docs)"


def _json_int(digits: str) -> int | float:
    """A JSON integer; one of more digits than Python converts (4,300,
    ``sys.get_int_max_str_digits``) is a float, infinite, as ``1e999``
    is. It is valid JSON, and the lean routes (msgspec) take it where
    the model has no field for it: refused here, the same body was a 400
    through Quart and a 200 through the lean route."""
    try:
        return int(digits)
    except ValueError:
        return float(digits)


class JsonRequest(TrioRequest):
    """A request whose body is read as JSON whatever its Content-Type;
    but a browser's (it says ``Origin``) must say JSON. A browser sends
    a form's POST or an empty one to any site without asking first, so a
    page elsewhere could otherwise run a transaction or a leadership
    transfer on a node its visitor can reach; a body labelled JSON makes
    the browser ask first (a CORS preflight), which only the cluster's
    own pages pass (raft_trio.http.cors)."""

    async def get_json(self, force: bool = True, silent: bool = False, cache: bool = True) -> Any:
        if "Origin" in self.headers and not self.is_json:
            raise UnsupportedMediaType(
                "a request from a browser page must send its body as Content-Type: application/json"
            )
        body = await self.get_data(cache=cache, as_text=False)
        if not body:
            # Only a body of no bytes: whitespace is not JSON, and taking it
            # for ``{}`` ran an empty transaction on a body of "\n".
            return {}
        assert isinstance(body, bytes)
        text = body.decode()  # not UTF-8: the app's UnicodeDecodeError handler says so
        try:
            # The app's JSON, as Quart's get_json calls it, but for huge integers.
            document = self.json_module.loads(text, parse_int=_json_int)
        except ValueError as exc:
            return None if silent else self.on_json_loading_failed(exc)
        except RecursionError:
            # Valid JSON, but nested deeper than the decoder recurses: a
            # body no request of the API sends, refused like bad JSON.
            raise BadRequest(
                f"the request body nests too deeply to be read; {expected_body(self.endpoint)}"
            ) from None
        if b"\\u" in body and _has_lone_surrogate(document):
            raise BadRequest(
                "the request body holds a \\u escape of half a UTF-16 surrogate pair, which is no "
                f"character; {expected_body(self.endpoint)}"
            )
        return document

    def on_json_loading_failed(self, error: Exception) -> Any:
        raise BadRequest(
            f"the request body is not JSON ({error}); {expected_body(self.endpoint)}, with any Content-Type"
        )


def _has_lone_surrogate(document: Any) -> bool:
    """Whether a string of the decoded JSON ``document`` (a value or a
    key) holds a surrogate code point that no pair made a character of."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


View = Callable[..., Awaitable[Any]]


def validate_body(model: type[msgspec.Struct]) -> Callable[[View], View]:
    """quart-schema's ``validate_request(model)`` (the body in /docs, a
    body not of the model's shape a 400 through the app's handler), with
    JSON's own types: quart-schema converts with msgspec's loose rules,
    meant for query strings, under which the string ``"10"`` granted a
    lease of 10 s and ``"true"`` granted a prefix. The lean PUT's msgspec
    decoder never read a body loosely."""

    def decorator(view: View) -> View:
        @functools.wraps(view)
        async def strictly(*args: Any, data: msgspec.Struct, **kwargs: Any) -> Any:
            try:
                data = msgspec.convert(await request.get_json(), model, strict=True)
            except msgspec.ValidationError as error:
                raise RequestSchemaValidationError(error) from None
            return await view(*args, data=data, **kwargs)

        wrapped: View = validate_request(model)(strictly)
        return wrapped

    return decorator
