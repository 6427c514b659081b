"""The outermost layer of every request: a request id, the body-size limit, response headers
(X-Request-Id, RateLimit-*, Cache-Control), the last-resort 500 and one structured access-log
line. A pure ASGI middleware, so it sees every response, errors included."""

from __future__ import annotations

import json
import logging
import secrets
import time

from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ErrorType, error_body
from domain.tenants import BASE62_ALPHABET, ID_PREFIX_REQUEST, ID_RANDOM_LENGTH

REQUEST_ID_HEADER = "X-Request-Id"
BODY_METHODS = ("POST", "PUT", "PATCH")

REQUESTS = Counter("settle_api_requests", "HTTP requests answered by the API", ["method", "route", "status"])
REQUEST_SECONDS = Histogram("settle_api_request_seconds", "Time to answer an HTTP request", ["method", "route"])


def new_request_id() -> str:
    return f"{ID_PREFIX_REQUEST}_" + "".join(secrets.choice(BASE62_ALPHABET) for _ in range(ID_RANDOM_LENGTH))


def _json_error(status: int, *, type: ErrorType, code: str, message: str, request_id: str) -> tuple[Message, Message]:
    body = json.dumps(error_body(type=type, code=code, message=message, param=None, request_id=request_id)).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, body_bytes_max: int, logger: logging.Logger) -> None:
        self.app = app
        self.body_bytes_max = body_bytes_max
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_s = time.perf_counter()
        state = scope.setdefault("state", {})
        request_id = new_request_id()
        state["request_id"] = request_id
        client = scope.get("client")
        state["client_ip"] = client[0] if client else None
        response = {"started": False, "status": 500}
        path = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                decision = state.get("rate_limit_decision")
                if decision is not None:
                    for name, value in decision.headers().items():
                        headers[name] = value
                if path.startswith("/v1/"):
                    # Answers can hold secrets (a new key) and always hold tenant data.
                    headers["Cache-Control"] = "no-store"
                response["started"] = True
                response["status"] = message["status"]
            await send(message)

        # Only methods whose bodies the API reads; a GET's body is never read, so never too large.
        content_length = Headers(scope=scope).get("content-length") if scope.get("method") in BODY_METHODS else None
        too_large = False
        try:
            too_large = content_length is not None and int(content_length) > self.body_bytes_max
        except ValueError:
            too_large = False
        received_bytes = 0

        async def receive_with_limit() -> Message:
            nonlocal received_bytes
            message = await receive()
            if message["type"] == "http.request":
                received_bytes += len(message.get("body", b""))
                if received_bytes > self.body_bytes_max:
                    # Raised inside the route's body read, which lets HTTPExceptions through
                    # to the error handlers: the client gets our 413 shape.
                    raise HTTPException(status_code=413)
            return message

        try:
            if too_large:
                start, body = _json_error(
                    413, type=ErrorType.INVALID_REQUEST, code="request_too_large",
                    message=f"The request body is larger than {self.body_bytes_max} bytes.", request_id=request_id,
                )
                await send_with_headers(start)
                await send_with_headers(body)
            else:
                await self.app(scope, receive_with_limit, send_with_headers)
        except Exception:
            # The stack trace stays in the log (redacted); the client gets the shape and the id.
            self.logger.exception("unhandled error", extra={"request_id": request_id, "method": scope.get("method"), "path": path})
            if not response["started"]:
                start, body = _json_error(
                    500, type=ErrorType.API, code="internal_error",
                    message="Something went wrong on our side. Retry later; quote the request id if it persists.",
                    request_id=request_id,
                )
                await send_with_headers(start)
                await send_with_headers(body)
        finally:
            self._log(scope, state, response["status"], time.perf_counter() - started_s)

    def _log(self, scope: Scope, state: dict, status: int, elapsed_s: float) -> None:
        route = scope.get("route")
        route_path = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        REQUESTS.labels(method=method, route=route_path, status=str(status)).inc()
        REQUEST_SECONDS.labels(method=method, route=route_path).observe(elapsed_s)
        principal = state.get("principal")
        self.logger.info(
            "request",
            extra={
                "request_id": state.get("request_id"),
                "method": method,
                "path": scope.get("path"),
                "route": route_path,
                "status": status,
                "duration_ms": round(elapsed_s * 1000, 2),
                "client_ip": state.get("client_ip"),
                "tenant_id": getattr(principal, "tenant_id", None),
                "api_key_id": getattr(principal, "api_key_id", None),
            },
        )
