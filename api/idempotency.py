"""`Idempotency-Key` on every POST.

- Same key, same request (method, path, query and JSON body, key order aside): the first
  response is replayed, status and body, with `Idempotent-Replayed: true`.
- Same key, another request: 409 `idempotency_key_reused`.
- Concurrent requests with one key: the first claims it and does the work; the others wait (up
  to `idempotency_wait_s`) and get its response, or 409 `idempotency_key_in_use`.
- Keys are kept `idempotency_retention_s` (at least 24 h), per tenant.
- A request that fails (4xx, 5xx) gives its key back: it changed nothing, so a retry runs afresh.
- A response field named `secret` (an API key's, a webhook signing secret) is not kept: such a
  secret exists once, in the first response; a replay carries `null` there, and its holder rotates
  it if it was lost.
- A payment intent's `client_secret`, and the `checkout_url` that carries it, are kept sealed
  (`SEALED_FIELDS`): AES-256-GCM in the deployment's secret box (db.secret_box.SecretBox, whose key
  seals the webhook signing secrets), bound to the tenant, the key and the first request, and
  opened only to replay that same request under that same key. The intent itself keeps only the
  secret's hash, and the row never holds it in plaintext. Why not drop it like `secret`: a client
  whose create timed out must be able to retry and get the secret, or the intent it created
  (its id comes from the key, so every retry finds it) could never be shown to its customer; a
  lost secret cannot be rotated. A value that no longer opens (its key retired) replays as `null`.
- Where a POST starts a workflow, `IdempotencyContext.workflow_id(prefix)` maps the key to the
  workflow id, so even past the retention Temporal refuses a second run of the same key.

Routes declare it with one parameter, after their principal:

    async def create_thing(principal: ..., idempotency: Idempotency, body: ThingCreate): ...

`api.routing.SettleRoute` refuses a POST route without it and stores or releases the claim
around the endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response

from api.deps import secret_box
from api.errors import ApiError, ErrorType
from db.idempotency import (
    IdempotencyRecord,
    IdempotencyStatus,
    claim_idempotency_key,
    complete_idempotency_key,
    release_idempotency_key,
)
from db.secret_box import SecretBox, SecretUnsealError
from db.settings import ApiSettings

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_LENGTH_MAX = 255
# Printable ASCII without spaces: a UUID, a ULID or an order id all fit.
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
POLL_INTERVAL_S = 0.05
# Response fields never kept for replays, and those kept sealed (see the module's docstring).
SECRET_FIELDS = frozenset({"secret"})
SEALED_FIELDS = frozenset({"client_secret", "checkout_url"})
SEALED_PREFIX = "sealed:"

logger = logging.getLogger("settle.api")


@dataclass(frozen=True)
class IdempotencyContext:
    key: str | None
    owner: str

    def workflow_id(self, prefix: str) -> str | None:
        """A stable id for the object/workflow this key creates: `<prefix>_<24 chars>`, the same
        for the same (tenant, key). None without a key (the caller picks a random id)."""
        if self.key is None:
            return None
        digest = hashlib.sha256(f"{self.owner}\x00{self.key}".encode()).digest()
        return f"{prefix}_" + base64.b32encode(digest).decode().rstrip("=").lower()[:24]


class IdempotentReplay(Exception):
    def __init__(self, record: IdempotencyRecord) -> None:
        super().__init__(f"replay of {record.request_id}")
        self.record = record


def request_fingerprint(*, method: str, path: str, query: str, body: bytes) -> bytes:
    """What must match for a replay. JSON bodies compare by content, not by spacing or key order."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    except (ValueError, RecursionError):
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def _seal_context(*, owner: str, key: str, request_id: str, field: str) -> str:
    """The associated data of a sealed field: a value copied to another tenant's, key's or
    request's row, or to another field, does not open."""
    return json.dumps(["idempotent-replay", owner, key, request_id, field], separators=(",", ":"))


def _stored(value: Any, seal: Callable[[str, str], str]) -> Any:
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            if key in SECRET_FIELDS:
                kept[key] = None
            elif key in SEALED_FIELDS and isinstance(item, str):
                kept[key] = SEALED_PREFIX + seal(key, item)
            else:
                kept[key] = _stored(item, seal)
        return kept
    if isinstance(value, list):
        return [_stored(item, seal) for item in value]
    return value


def _replayed(value: Any, open_: Callable[[str, str], str | None]) -> Any:
    if isinstance(value, dict):
        return {
            key: (
                open_(key, item.removeprefix(SEALED_PREFIX))
                if key in SEALED_FIELDS and isinstance(item, str) and item.startswith(SEALED_PREFIX)
                else _replayed(item, open_)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_replayed(item, open_) for item in value]
    return value


def stored_body(body: bytes, *, box: SecretBox, owner: str, key: str, request_id: str) -> bytes:
    """The response as the idempotency row keeps it: `SECRET_FIELDS` nulled, `SEALED_FIELDS` sealed."""

    def seal(field: str, plaintext: str) -> str:
        return box.seal(plaintext.encode(), context=_seal_context(owner=owner, key=key, request_id=request_id, field=field))

    try:
        return json.dumps(_stored(json.loads(body), seal), separators=(",", ":")).encode()
    except ValueError:
        return body


def replayed_body(record: IdempotencyRecord, *, box: SecretBox) -> bytes:
    """The stored response with its sealed fields opened, for a replay of the same request under
    the same key (the caller checked both)."""
    assert record.response_body is not None
    if SEALED_PREFIX.encode() not in record.response_body:
        return record.response_body

    def open_(field: str, sealed: str) -> str | None:
        context = _seal_context(owner=record.owner, key=record.key, request_id=record.request_id, field=field)
        try:
            return box.open(sealed, context=context).decode()
        except (SecretUnsealError, UnicodeDecodeError):
            logger.warning("a sealed %s of request %s no longer opens; replayed as null", field, record.request_id)
            return None

    try:
        return json.dumps(_replayed(json.loads(record.response_body), open_), separators=(",", ":")).encode()
    except ValueError:
        return record.response_body


def _secret_box(request: Request) -> SecretBox:
    return secret_box(request)


async def idempotency(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_HEADER,
            max_length=KEY_LENGTH_MAX,
            pattern=KEY_PATTERN,
            description=(
                "Makes this POST safe to retry: the same key with the same request replays the first "
                "response; with another request it is a 409. Kept at least 24 hours. Use a fresh UUID "
                "per operation."
            ),
        ),
    ] = None,
) -> IdempotencyContext:
    principal = getattr(request.state, "principal", None)
    assert principal is not None, "declare the route's principal before its idempotency"
    context = IdempotencyContext(key=idempotency_key, owner=principal.idempotency_owner)
    if idempotency_key is None:
        return context
    api_settings: ApiSettings = request.app.state.api_settings
    pool = request.app.state.pool
    fingerprint = request_fingerprint(
        method=request.method, path=request.url.path, query=request.url.query, body=await request.body()
    )
    attempts_max = 2 + int(api_settings.idempotency_wait_s / POLL_INTERVAL_S)
    deadline_s = time.monotonic() + api_settings.idempotency_wait_s
    for _ in range(attempts_max):
        claim = await claim_idempotency_key(
            pool,
            owner=context.owner,
            key=idempotency_key,
            request_hash=fingerprint,
            method=request.method,
            path=request.url.path,
            request_id=request.state.request_id,
            retention_s=api_settings.idempotency_retention_s,
            lock_timeout_s=api_settings.idempotency_lock_timeout_s,
        )
        if claim.claimed:
            request.state.idempotency_claim = (context.owner, idempotency_key)
            return context
        existing = claim.existing
        if existing is None:
            continue  # Released between our insert and our read: claim again.
        if existing.request_hash != fingerprint:
            raise ApiError(
                409,
                type=ErrorType.IDEMPOTENCY,
                code="idempotency_key_reused",
                message=(
                    "This Idempotency-Key was already used with a different request "
                    f"({existing.method} {existing.path} with other parameters). Use a new key for a new request."
                ),
                param=IDEMPOTENCY_HEADER,
            )
        if existing.status is IdempotencyStatus.COMPLETED:
            raise IdempotentReplay(existing)
        if time.monotonic() >= deadline_s:
            break
        await asyncio.sleep(POLL_INTERVAL_S)
    raise ApiError(
        409,
        type=ErrorType.IDEMPOTENCY,
        code="idempotency_key_in_use",
        message="A request with this Idempotency-Key is still in progress. Retry in a moment.",
        param=IDEMPOTENCY_HEADER,
        headers={"Retry-After": "1"},
    )


Idempotency = Annotated[IdempotencyContext, Depends(idempotency)]


async def finish_idempotency(request: Request, response: Response | None) -> None:
    """After the endpoint: keep a successful response for replays, give the key back otherwise."""
    claim = getattr(request.state, "idempotency_claim", None)
    if claim is None:
        return
    request.state.idempotency_claim = None
    owner, key = claim
    pool = request.app.state.pool
    request_id = request.state.request_id
    if response is not None and 200 <= response.status_code < 300 and isinstance(getattr(response, "body", None), bytes):
        await complete_idempotency_key(
            pool,
            owner=owner,
            key=key,
            request_id=request_id,
            response_status=response.status_code,
            response_body=stored_body(response.body, box=_secret_box(request), owner=owner, key=key, request_id=request_id),
            response_content_type=response.headers.get("content-type"),
        )
    else:
        await release_idempotency_key(pool, owner=owner, key=key, request_id=request_id)


async def replay_response(request: Request, exc: IdempotentReplay) -> Response:
    record = exc.record
    assert record.response_status is not None and record.response_body is not None
    return Response(
        content=replayed_body(record, box=_secret_box(request)),
        status_code=record.response_status,
        headers={REPLAYED_HEADER: "true", "Original-Request-Id": record.request_id},
        media_type=record.response_content_type,
    )
