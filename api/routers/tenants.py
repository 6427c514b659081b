"""Tenants. The platform admin creates and reads them and changes the platform's settings of
each (`/v1/tenants`: the fee, the confirmation policy); a tenant reads all its settings and
changes its own (`/v1/tenant`: name, payout addresses, approvers). Every change is audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request

from api.auth import PLATFORM_ADMIN, Principal, TenantPrincipal, tenant_key
from db.settings import TIER_WRITE
from api.deps import PoolDep
from api.errors import ApiError, ErrorType
from api.idempotency import Idempotency
from api.pagination import PageParams
from api.routing import settle_router
from api.schemas import (
    ApiKeyCreated,
    TenantCreate,
    TenantCreated,
    TenantList,
    TenantPlatformUpdate,
    TenantRead,
    TenantUpdate,
)
from db.tenants import create_tenant_with_first_key, get_tenant, list_tenants, update_tenant_settings
from domain.tenants import (
    OBJECT_ID_LENGTH_MAX,
    OBJECT_ID_PATTERN,
    PLATFORM_SETTINGS,
    Scope,
    TenantKind,
    TenantStatus,
    key_mode_for_env,
)

platform_router = settle_router(prefix="/v1/tenants", tags=["tenants (platform admin)"])
tenant_router = settle_router(prefix="/v1/tenant", tags=["tenant"])

PlatformAdmin = Annotated[Principal, PLATFORM_ADMIN]
TenantId = Annotated[str, Path(pattern=OBJECT_ID_PATTERN, max_length=OBJECT_ID_LENGTH_MAX, description="A tenant id, `ten_...`.")]


@platform_router.post("", status_code=201, response_model=TenantCreated, summary="Create a tenant and its first secret key")
async def create_tenant(
    request: Request, principal: PlatformAdmin, pool: PoolDep, idempotency: Idempotency, body: TenantCreate
) -> TenantCreated:
    tenant, created = await create_tenant_with_first_key(
        pool,
        kind=body.kind,
        name=body.name,
        mode=key_mode_for_env(request.app.state.settings.env),
        actor=principal.actor(request),
        fee_bps=body.fee_bps,
        payout_addresses=[value.model_dump(mode="json") for value in body.payout_addresses],
        confirmation_policy=body.confirmation_policy.model_dump(mode="json") if body.confirmation_policy else None,
        approvers=[value.model_dump(mode="json") for value in body.approvers],
    )
    return TenantCreated(**TenantRead.of(tenant).model_dump(), api_key=ApiKeyCreated.of_created(created))


@platform_router.get("", response_model=TenantList, summary="List tenants")
async def list_all_tenants(
    principal: PlatformAdmin,
    pool: PoolDep,
    page: PageParams,
    kind: Annotated[TenantKind | None, Query(description="Only tenants of this kind.")] = None,
    status: Annotated[TenantStatus | None, Query(description="Only tenants in this status.")] = None,
) -> TenantList:
    result = await list_tenants(pool, page=page, kind=kind, status=status)
    return TenantList.of(result, url="/v1/tenants", item=TenantRead.of)


@platform_router.get("/{tenant_id}", response_model=TenantRead, summary="Retrieve a tenant")
async def retrieve_tenant(principal: PlatformAdmin, pool: PoolDep, tenant_id: TenantId) -> TenantRead:
    return TenantRead.of(await get_tenant(pool, tenant_id=tenant_id))


@platform_router.patch(
    "/{tenant_id}",
    response_model=TenantRead,
    summary="Change a tenant's platform settings: fee and confirmation policy (audited)",
    openapi_extra={"x-rate-limit-tier": TIER_WRITE},
)
async def update_tenant_platform_settings(
    request: Request, principal: PlatformAdmin, pool: PoolDep, tenant_id: TenantId, body: TenantPlatformUpdate
) -> TenantRead:
    tenant = await update_tenant_settings(
        pool, tenant_id=tenant_id, changes=body.changes(), actor=principal.actor(request)
    )
    return TenantRead.of(tenant)


@tenant_router.get("", response_model=TenantRead, summary="Retrieve the calling tenant's settings")
async def retrieve_own_tenant(principal: Annotated[TenantPrincipal, tenant_key(Scope.TENANT_READ)], pool: PoolDep) -> TenantRead:
    return TenantRead.of(await get_tenant(pool, tenant_id=principal.tenant_id))


@tenant_router.patch(
    "",
    response_model=TenantRead,
    summary="Change the calling tenant's own settings: name, payout addresses, approvers (audited)",
    responses={
        403: {
            "description": (
                "The key lacks `tenant:write` (code `insufficient_scope`), or the body sets one of the platform's "
                "settings, `fee_bps` or `confirmation_policy` (code `platform_setting`, `param` names it): only "
                "the platform admin changes those (`PATCH /v1/tenants/{tenant_id}`). Nothing is changed."
            )
        }
    },
    openapi_extra={"x-rate-limit-tier": TIER_WRITE},
)
async def update_own_tenant(
    request: Request, principal: Annotated[TenantPrincipal, tenant_key(Scope.TENANT_WRITE)], pool: PoolDep, body: TenantUpdate
) -> TenantRead:
    changes = body.changes()
    refused = [name for name in PLATFORM_SETTINGS if name in changes]
    if refused:
        raise ApiError(
            403,
            type=ErrorType.PERMISSION,
            code="platform_setting",
            message=(
                f"{refused[0]} is set by the platform, not by the tenant: only the platform admin changes it. "
                "Leave it out to change your other settings."
            ),
            param=refused[0],
        )
    tenant = await update_tenant_settings(
        pool, tenant_id=principal.tenant_id, changes=changes, actor=principal.actor(request)
    )
    return TenantRead.of(tenant)
