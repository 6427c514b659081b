"""One error shape for every failure:

    {"error": {"type": ..., "code": ..., "message": ..., "param": ..., "request_id": ...}}

Every bad input is a 4xx: validation 400, authentication 401, scope 403, not found 404,
conflict and idempotency 409, body too large 413, rate limit 429. A fault is a 500 that says
only that, with the request id to quote; the stack trace goes to the log, never to the client.
Repository and domain errors are mapped here, in one place, so routers just let them rise.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.services.errors import Conflict, InvalidInput, ServiceError, Unavailable
from db.api_keys import ApiKeyConflict, ApiKeyForbidden, ApiKeyNotFound
from db.audit import CursorNotFound
from db.tenants import TenantNotFound
from domain.tenants import TenantRuleError

MESSAGE_LENGTH_MAX = 500
PARAM_LENGTH_MAX = 100


class ErrorType(StrEnum):
    INVALID_REQUEST = "invalid_request_error"
    AUTHENTICATION = "authentication_error"
    PERMISSION = "permission_error"
    IDEMPOTENCY = "idempotency_error"
    RATE_LIMIT = "rate_limit_error"
    API = "api_error"


class ErrorDetail(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "type": "invalid_request_error", "code": "parameter_invalid",
        "message": "fee_bps: Input should be less than or equal to 10000", "param": "fee_bps",
        "request_id": "req_4Xk9QmT2pLr8ZsV1cWn6YbHa",
    }]})

    type: ErrorType = Field(description="The kind of error; decides how a client should react.")
    code: str = Field(description="A stable, machine-readable reason, e.g. `parameter_invalid`, `api_key_invalid`.")
    message: str = Field(description="What went wrong, for a human. Never holds a secret or a stack trace.")
    param: str | None = Field(description="The parameter at fault, if one is: `fee_bps`, `payout_addresses[0].address`.")
    request_id: str = Field(description="The id of this request, also in the `X-Request-Id` header.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """An error the API answers with. Raise it anywhere in api/; never from db/ or domain/."""

    def __init__(
        self,
        status_code: int,
        *,
        type: ErrorType,
        code: str,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.type = type
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}


def invalid_request(message: str, *, code: str = "parameter_invalid", param: str | None = None) -> ApiError:
    return ApiError(400, type=ErrorType.INVALID_REQUEST, code=code, message=message, param=param)


def not_found(message: str, *, param: str | None = None) -> ApiError:
    return ApiError(404, type=ErrorType.INVALID_REQUEST, code="resource_missing", message=message, param=param)


def request_id_of(request: Request) -> str:
    return getattr(request.state, "request_id", None) or "req_unknown"


def _encodable(text: str) -> str:
    """`text` with any unpaired surrogate replaced: a client's field name can hold one (a JSON
    `\\ud800` escape), and it has no UTF-8 form, so the answer itself could not be encoded."""
    return text.encode("utf-8", "replace").decode("utf-8") if not text.isascii() else text


def error_body(*, type: ErrorType, code: str, message: str, param: str | None, request_id: str) -> dict[str, Any]:
    return {
        "error": {
            "type": str(type),
            "code": code,
            "message": _encodable(message[:MESSAGE_LENGTH_MAX]),
            # A param can echo a client's field name (an unknown field): keep it short.
            "param": _encodable(param[:PARAM_LENGTH_MAX]) if param else None,
            "request_id": request_id,
        }
    }


def error_response(request: Request, error: ApiError) -> JSONResponse:
    body = error_body(type=error.type, code=error.code, message=error.message, param=error.param, request_id=request_id_of(request))
    return JSONResponse(body, status_code=error.status_code, headers=error.headers)


def _param_from_location(location: tuple[Any, ...]) -> str | None:
    """("body", "payout_addresses", 0, "address") -> "payout_addresses[0].address"."""
    if not location:
        return None
    source, *parts = location
    if source == "header" and parts:
        return "-".join(word.capitalize() for word in str(parts[0]).split("-"))
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or None


def _param_of(error: dict[str, Any]) -> str | None:
    """The error's location as a param; a validator that checks a whole object (Input's text
    check) names the field within it in `ctx.field`."""
    param = _param_from_location(tuple(error.get("loc", ())))
    field = (error.get("ctx") or {}).get("field")
    if not isinstance(field, str) or not field:
        return param
    if not param:
        return field
    return param + (field if field.startswith("[") else "." + field)


def _validation_message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "is invalid"))
    # Our validators raise ValueError; pydantic prefixes its message. The prefix helps nobody.
    return message.removeprefix("Value error, ")


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    first = errors[0] if errors else {}
    param = _param_of(first)
    kind = first.get("type", "")
    if kind == "json_invalid":
        code, message, param = "body_invalid_json", "The request body is not valid JSON.", None
    elif kind == "missing":
        code = "parameter_missing"
        message = f"{param} is required" if param else "The request body is required."
    else:
        code = "parameter_invalid"
        described = [
            f"{_param_of(e) or 'body'}: {_validation_message(e)}" for e in errors[:3]
        ]
        message = "; ".join(described) + (f" (and {len(errors) - 3} more)" if len(errors) > 3 else "")
    # Pydantic's messages never repeat the input, so no secret a client sent comes back.
    return error_response(request, invalid_request(message, code=code, param=param))


_HTTP_CODES = {
    400: (ErrorType.INVALID_REQUEST, "request_invalid"),
    401: (ErrorType.AUTHENTICATION, "api_key_invalid"),
    403: (ErrorType.PERMISSION, "forbidden"),
    404: (ErrorType.INVALID_REQUEST, "route_not_found"),
    405: (ErrorType.INVALID_REQUEST, "method_not_allowed"),
    413: (ErrorType.INVALID_REQUEST, "request_too_large"),
    415: (ErrorType.INVALID_REQUEST, "unsupported_media_type"),
    429: (ErrorType.RATE_LIMIT, "rate_limited"),
}


def _http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    type, code = _HTTP_CODES.get(exc.status_code, (ErrorType.INVALID_REQUEST if exc.status_code < 500 else ErrorType.API, "http_error"))
    if exc.status_code == 404:
        message = f"Unrecognized request URL ({request.method} {request.url.path})."
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}."
    elif exc.status_code == 413:
        message = "The request body is too large."
    else:
        message = exc.detail if isinstance(exc.detail, str) else "The request could not be processed."
    error = ApiError(exc.status_code, type=type, code=code, message=message, headers=dict(exc.headers or {}))
    return error_response(request, error)


def service_error(exc: ServiceError) -> ApiError:
    """A service's refusal, in the API's shape."""
    if isinstance(exc, InvalidInput):
        return invalid_request(exc.message, code=exc.code, param=exc.param)
    if isinstance(exc, Conflict):
        return ApiError(409, type=ErrorType.INVALID_REQUEST, code=exc.code, message=exc.message, param=exc.param)
    if isinstance(exc, Unavailable):
        headers = {"Retry-After": str(exc.retry_after_s)}
        return ApiError(503, type=ErrorType.API, code=exc.code, message=exc.message, param=exc.param, headers=headers)
    raise AssertionError(f"unmapped service error {type(exc).__name__}")


def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ServiceError):
        return error_response(request, service_error(exc))
    if isinstance(exc, TenantRuleError):
        return error_response(request, invalid_request(exc.message, code=exc.code, param=exc.param))
    if isinstance(exc, CursorNotFound):
        return error_response(request, invalid_request(str(exc), code="resource_missing", param=exc.param))
    if isinstance(exc, (ApiKeyNotFound, TenantNotFound)):
        return error_response(request, not_found(str(exc), param="id"))
    if isinstance(exc, ApiKeyConflict):
        return error_response(request, ApiError(409, type=ErrorType.INVALID_REQUEST, code=exc.code, message=exc.message))
    if isinstance(exc, ApiKeyForbidden):
        return error_response(request, ApiError(403, type=ErrorType.PERMISSION, code=exc.code, message=exc.message))
    raise exc


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc)

    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(request, exc)

    async def http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _http_exception(request, exc)

    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        return _domain_error(request, exc)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_exception)
    for error_class in (ServiceError, TenantRuleError, CursorNotFound, ApiKeyNotFound, TenantNotFound, ApiKeyConflict, ApiKeyForbidden):
        app.add_exception_handler(error_class, domain_error)
