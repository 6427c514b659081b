"""The OpenAPI document, made to say what the API does: our error shape on every error status
(FastAPI's 422 model is gone; validation is a 400), the response headers every answer carries,
the rate-limit tier and scope of each operation."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.auth import route_tier
from api.errors import ErrorResponse
from api.idempotency import REPLAYED_HEADER
from api.routing import iter_api_routes

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}

ERROR_DESCRIPTIONS = {
    "400": "Invalid request: a parameter or the body failed validation (`invalid_request_error`).",
    "401": "No API key, or one that is malformed, unknown, revoked or expired (`authentication_error`).",
    "403": "The key lacks the scope this operation needs, or is the wrong kind of key (`permission_error`).",
    "404": "No such object for this tenant (`invalid_request_error`, code `resource_missing`).",
    "409": "Conflict: the object's state forbids this, or the Idempotency-Key was used for another request or is in use.",
    "413": "The request body is too large.",
    "429": "Rate limited (`rate_limit_error`): wait `Retry-After` seconds.",
    "500": "A fault on our side (`api_error`); quote the request id.",
}

HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-Id": {"description": "This request's id; also in every error body.", "schema": {"type": "string"}},
    "RateLimit-Limit": {"description": "Requests allowed per window by the tightest applicable limit.", "schema": {"type": "integer"}},
    "RateLimit-Remaining": {"description": "Requests left in the current window.", "schema": {"type": "integer"}},
    "RateLimit-Reset": {"description": "Seconds until the limit is fully restored.", "schema": {"type": "integer"}},
    "RateLimit-Policy": {"description": "The limit as `<requests>;w=<window seconds>`.", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
    REPLAYED_HEADER: {"description": "`true` when this is the stored response of an earlier request with the same Idempotency-Key.", "schema": {"type": "string"}},
    "Original-Request-Id": {"description": "On a replay: the id of the request whose response this is.", "schema": {"type": "string"}},
    "WWW-Authenticate": {"description": "The authentication scheme expected.", "schema": {"type": "string"}},
    "Cache-Control": {"description": "`no-store`: answers of /v1 hold tenant data and sometimes secrets.", "schema": {"type": "string"}},
}
BODY_METHODS = ("post", "put", "patch")
RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")


def _header_refs(names: list[str]) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _describe(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorResponse"] = error_schema
    components["headers"] = HEADERS

    tiers = {}
    for route in iter_api_routes(app):
        for method in route.methods:
            tiers[(route.path_format, method.lower())] = route_tier(route, method)

    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            _complete_operation(path, method, operation, tier=tiers.get((path, method)))
    _integer_bounds(document)
    return document


def _integer_bounds(node: Any) -> None:
    """FastAPI's OpenAPI models store bounds as floats (`"minimum": 1.0`); an integer's are integers."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for name in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                if isinstance(node.get(name), float) and node[name].is_integer():
                    node[name] = int(node[name])
        for value in node.values():
            _integer_bounds(value)
    elif isinstance(node, list):
        for value in node:
            _integer_bounds(value)


def _complete_operation(path: str, method: str, operation: dict[str, Any], *, tier: str | None) -> None:
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    secured = bool(operation.get("security"))
    parameters = operation.get("parameters", [])
    has_input = bool(parameters) or "requestBody" in operation
    errors = ["500"]
    if has_input:
        errors.append("400")
    if secured:
        errors += ["401", "403", "429"]
    if any(parameter.get("in") == "path" for parameter in parameters):
        errors.append("404")
    if method == "post" or "x-conflicts" in operation:
        errors.append("409")
    if method in BODY_METHODS:
        errors.append("413")
    for status in sorted(set(errors)):
        response = responses.setdefault(status, {"description": ERROR_DESCRIPTIONS[status]})
        response["content"] = {"application/json": {"schema": ERROR_REF}}
    if secured and tier is not None:
        operation["x-rate-limit-tier"] = tier
        scopes = [scope for requirement in operation["security"] for scope in next(iter(requirement.values()))]
        if scopes:
            note = f"Needs {'the platform admin key' if scopes == ['platform_admin'] else 'a key with scope `' + scopes[0] + '`'}. Rate-limit tier: `{tier}`."
            operation["description"] = (operation.get("description", "") + "\n\n" + note).strip()
    for status, response in responses.items():
        names = ["X-Request-Id"]
        if path.startswith("/v1/"):
            names.append("Cache-Control")
        if secured:
            names += list(RATE_LIMIT_HEADERS)
        if status == "429" or (status == "409" and method == "post"):
            names.append("Retry-After")
        if status == "401":
            names.append("WWW-Authenticate")
        if method == "post" and status.startswith("2"):
            names += [REPLAYED_HEADER, "Original-Request-Id"]
        response["headers"] = _header_refs(names)


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _describe(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

