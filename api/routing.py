"""Routers that carry the API's conventions. Build every `/v1` router with `settle_router`:

    router = settle_router(prefix="/v1/things", tags=["things"])

Its routes (`SettleRoute`) check at import time that each POST declares a principal
(`tenant_key(...)` or `PLATFORM_ADMIN`) and then `Idempotency`, in that order. Around each call
they refuse JSON nested too deeply to parse safely, and store the idempotent response or give
the key back.
"""

from __future__ import annotations

from typing import Any, Callable, Coroutine, Iterator

import fastapi.routing
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.auth import AUTHORIZERS
from api.errors import invalid_request
from api.idempotency import finish_idempotency, idempotency


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


def _calls_in_order(dependant: Dependant) -> list[Any]:
    calls: list[Any] = []
    for sub in dependant.dependencies:
        calls.extend(_calls_in_order(sub))
        calls.append(sub.call)
    return calls


class SettleRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
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
            if request.method in BODY_METHODS and json_nesting_exceeds(await request.body(), depth_max=JSON_DEPTH_MAX):
                raise invalid_request(
                    f"The JSON body is nested more than {JSON_DEPTH_MAX} levels deep.", code="body_too_deep"
                )
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
