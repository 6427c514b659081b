"""A tenant's API keys: create restricted and publishable keys, list them (never their
secrets), rotate with an overlap window, revoke. Every change is audited. A key never acts
beyond its own scopes: it creates keys with no more than it holds, and rotates or revokes only
keys whose every scope it holds (a rotation hands out those scopes, a revocation can lock their
holder out)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Path, Query, Request

from api.auth import TenantPrincipal, tenant_key
from db.settings import TIER_WRITE, ApiSettings
from api.deps import PoolDep
from api.idempotency import Idempotency
from api.pagination import PageParams
from api.routing import settle_router
from api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyRead, ApiKeyRotate, ApiKeyRotation
from db.api_keys import create_api_key, get_api_key, list_api_keys, revoke_api_key, rotate_api_key
from domain.tenants import (
    OBJECT_ID_LENGTH_MAX,
    OBJECT_ID_PATTERN,
    ApiKeyStatus,
    ApiKeyType,
    KeyMode,
    Scope,
    scopes_for_new_key,
)

router = settle_router(prefix="/v1/api_keys", tags=["api keys"])

KeysRead = Annotated[TenantPrincipal, tenant_key(Scope.API_KEYS_READ)]
KeysWrite = Annotated[TenantPrincipal, tenant_key(Scope.API_KEYS_WRITE)]
# Rotating or revoking: the 403 says why, beyond the missing route scope.
MANAGE_FORBIDDEN = {
    403: {
        "description": (
            "The key lacks `api_keys:write`, or the key to change holds a scope the calling key lacks "
            "(`permission_error`, code `insufficient_scope`): a key rotates or revokes only keys whose every scope it holds."
        )
    }
}
KeyId = Annotated[str, Path(pattern=OBJECT_ID_PATTERN, max_length=OBJECT_ID_LENGTH_MAX, description="An API key id, `key_...`.")]


@router.post("", status_code=201, response_model=ApiKeyCreated, summary="Create a restricted or publishable key")
async def create_key(
    request: Request, principal: KeysWrite, pool: PoolDep, idempotency: Idempotency, body: ApiKeyCreate
) -> ApiKeyCreated:
    key_type = ApiKeyType(body.type)
    scopes = scopes_for_new_key(key_type=key_type, requested=body.scopes, held_by_creator=principal.scopes)
    created = await create_api_key(
        pool,
        tenant_id=principal.tenant_id,
        key_type=key_type,
        name=body.name,
        scopes=scopes,
        mode=KeyMode.LIVE if principal.livemode else KeyMode.TEST,
        actor=principal.actor(request),
    )
    return ApiKeyCreated.of_created(created)


@router.get("", response_model=ApiKeyList, summary="List the tenant's keys")
async def list_keys(
    principal: KeysRead,
    pool: PoolDep,
    page: PageParams,
    status: Annotated[ApiKeyStatus | None, Query(description="Only keys in this status.")] = None,
    type: Annotated[ApiKeyType | None, Query(description="Only keys of this type.")] = None,
) -> ApiKeyList:
    result = await list_api_keys(pool, tenant_id=principal.tenant_id, page=page, status=status, key_type=type)
    return ApiKeyList.of(result, url="/v1/api_keys", item=ApiKeyRead.of)


@router.get("/{key_id}", response_model=ApiKeyRead, summary="Retrieve a key (never its secret)")
async def retrieve_key(principal: KeysRead, pool: PoolDep, key_id: KeyId) -> ApiKeyRead:
    return ApiKeyRead.of(await get_api_key(pool, tenant_id=principal.tenant_id, key_id=key_id))


@router.post(
    "/{key_id}/rotate",
    response_model=ApiKeyRotation,
    responses=MANAGE_FORBIDDEN,
    summary="Rotate a key: a new secret, the old one valid until the overlap ends",
)
async def rotate_key(
    request: Request,
    principal: KeysWrite,
    pool: PoolDep,
    idempotency: Idempotency,
    key_id: KeyId,
    body: Annotated[ApiKeyRotate | None, Body()] = None,
) -> ApiKeyRotation:
    api_settings: ApiSettings = request.app.state.api_settings
    overlap_s = body.expires_in_s if body is not None and body.expires_in_s is not None else api_settings.key_rotation_overlap_s
    created, previous = await rotate_api_key(
        pool,
        tenant_id=principal.tenant_id,
        key_id=key_id,
        overlap_s=overlap_s,
        actor=principal.actor(request),
        held_by_caller=principal.scopes,
    )
    return ApiKeyRotation(api_key=ApiKeyCreated.of_created(created), previous_api_key=ApiKeyRead.of(previous))


@router.post(
    "/{key_id}/revoke",
    response_model=ApiKeyRead,
    responses=MANAGE_FORBIDDEN,
    summary="Revoke a key now",
    openapi_extra={"x-rate-limit-tier": TIER_WRITE},
)
async def revoke_key(request: Request, principal: KeysWrite, pool: PoolDep, idempotency: Idempotency, key_id: KeyId) -> ApiKeyRead:
    return ApiKeyRead.of(
        await revoke_api_key(
            pool,
            tenant_id=principal.tenant_id,
            key_id=key_id,
            actor=principal.actor(request),
            held_by_caller=principal.scopes,
        )
    )
