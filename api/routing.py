"""Routers that carry the API's conventions. Build every `/v1` router with `settle_router`:

    router = settle_router(prefix="/v1/things", tags=["things"])

Its routes (`SettleRoute`) check at import time that each POST declares a principal
(`tenant_key(...)` or `PLATFORM_ADMIN`) and then `Idempotency`, in that order. Around each call
they refuse JSON nested too deeply to parse safely, JSON that names a key twice in one object
(or holds NaN/Infinity, which JSON has not), path and query values PostgreSQL could not store,
and store the idempotent response or give the key back.
"""

from __future__ import annotations

import email.message
import json
from typing import Any, Callable, Coroutine, Iterator

import fastapi.routing
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.auth import AUTHORIZERS
from api.errors import invalid_request
from api.idempotency import finish_idempotency, idempotency
from api.schemas import unstorable_text_reason


BODY_METHODS = ("POST", "PUT", "PATCH")
# No request of this API nests deeper than a few levels. The JSON parser recurses in C, so a
# body of a few hundred kilobytes of brackets can exhaust the stack; it is refused before parsing.
JSON_DEPTH_MAX = 32
_OPENING = frozenset(b"[{")
_CLOSING = frozenset(b"]}")


def json_nesting_exceeds(body: bytes, *, depth_max: int) -> bool:
    """Whether `body`, read as JSON, nests arrays/objects deeper than `depth_max`. Linear time;
    brackets inside strings do not count."""
    if body.count(b"[") + body.count(b"{") <= depth_max:
        return False
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in _OPENING:
            depth += 1
            if depth > depth_max:
                return True
        elif byte in _CLOSING:
            depth -= 1
    return False


class DuplicateJsonKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key


class NotJsonConstant(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which of two equal keys wins (Python's json: the last; others: the
    # first), so a body naming one twice may mean one thing to a proxy or signer and another here.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateJsonKey(key)
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise NotJsonConstant(name)


def parse_json_body(body: bytes) -> Any:
    """JSON as RFC 8259 has it: no key twice in one object (`DuplicateJsonKey`), no NaN or
    Infinity (`NotJsonConstant`); malformed text raises `json.JSONDecodeError`."""
    return json.loads(body, object_pairs_hook=_object_without_duplicates, parse_constant=_refuse_constant)


def is_json_content_type(content_type: str | None) -> bool:
    """Whether FastAPI reads a body of this content type as JSON (the same test it applies)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


class SettleRequest(Request):
    """A request whose JSON body is read by `parse_json_body`."""

    _parsed_json: Any

    async def json(self) -> Any:
        if not hasattr(self, "_parsed_json"):
            self._parsed_json = parse_json_body(await self.body())
        return self._parsed_json


async def _check_json_body(request: SettleRequest, body: bytes) -> None:
    if json_nesting_exceeds(body, depth_max=JSON_DEPTH_MAX):
        raise invalid_request(f"The JSON body is nested more than {JSON_DEPTH_MAX} levels deep.", code="body_too_deep")
    if not body or not is_json_content_type(request.headers.get("content-type")):
        return
    try:
        await request.json()
    except DuplicateJsonKey as error:
        raise invalid_request(
            f"The JSON body names {error.key!r} more than once in one object; send each key once.", param=error.key
        ) from None
    except NotJsonConstant as error:
        raise invalid_request(f"The request body is not valid JSON: {error} is not a JSON value.", code="body_invalid_json") from None
    except UnicodeDecodeError:
        raise invalid_request("The request body is not valid JSON: it is not UTF-8 text.", code="body_invalid_json") from None
    except json.JSONDecodeError:
        pass  # FastAPI parses it again and answers body_invalid_json


def _check_text_parameters(request: Request, names: frozenset[str]) -> None:
    """Path and query values the route reads hold nothing PostgreSQL could not store (NUL: `%00`);
    parameters it does not declare are ignored, as FastAPI ignores them."""
    for name, value in [*request.path_params.items(), *request.query_params.multi_items()]:
        reason = unstorable_text_reason(value) if name in names and isinstance(value, str) else None
        if reason:
            raise invalid_request(f"{name} {reason}", param=name)


def _parameter_names(dependant: Dependant) -> frozenset[str]:
    names = {parameter.alias for parameter in (*dependant.path_params, *dependant.query_params)}
    for sub in dependant.dependencies:
        names |= _parameter_names(sub)
    return frozenset(names)


def _calls_in_order(dependant: Dependant) -> list[Any]:
    calls: list[Any] = []
    for sub in dependant.dependencies:
        calls.extend(_calls_in_order(sub))
        calls.append(sub.call)
    return calls


class SettleRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.parameter_names = _parameter_names(self.dependant)
        if "POST" in self.methods:
            calls = _calls_in_order(self.dependant)
            authorizer = next((index for index, call in enumerate(calls) if call in AUTHORIZERS), None)
            idempotent = next((index for index, call in enumerate(calls) if call is idempotency), None)
            if authorizer is None or idempotent is None or idempotent < authorizer:
                raise TypeError(
                    f"POST {path}: declare a principal (tenant_key(...) or PLATFORM_ADMIN) and then "
                    "`idempotency: Idempotency` among the endpoint's parameters"
                )

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            request = SettleRequest(request.scope, request.receive)
            _check_text_parameters(request, self.parameter_names)
            if request.method in BODY_METHODS:
                await _check_json_body(request, await request.body())
            try:
                response = await handler(request)
            except BaseException:
                await finish_idempotency(request, None)
                raise
            await finish_idempotency(request, response)
            return response

        return handle


def settle_router(**kwargs: Any) -> APIRouter:
    return APIRouter(route_class=SettleRoute, **kwargs)


def iter_api_routes(app: FastAPI) -> Iterator[APIRoute]:
    """Every APIRoute of the app, included routers flattened."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    if iterate is None:
        yield from (route for route in app.routes if isinstance(route, APIRoute))
        return
    for context in iterate(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            yield route
