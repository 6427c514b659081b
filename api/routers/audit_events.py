"""The tenant's audit log, newest first: who changed keys and settings, when, from where."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from api.auth import TenantPrincipal, tenant_key
from api.deps import PoolDep
from api.pagination import PageParams
from api.routing import settle_router
from api.schemas import AuditEventList, AuditEventRead
from db.audit import list_audit_events
from domain.tenants import OBJECT_ID_LENGTH_MAX, OBJECT_ID_PATTERN, Scope

router = settle_router(prefix="/v1/audit_events", tags=["audit"])


@router.get("", response_model=AuditEventList, summary="List the tenant's audit events")
async def list_events(
    principal: Annotated[TenantPrincipal, tenant_key(Scope.AUDIT_EVENTS_READ)],
    pool: PoolDep,
    page: PageParams,
    action: Annotated[
        str | None, Query(pattern=r"^[a-z_]{1,40}\.[a-z_]{1,40}$", description="Only this action, e.g. `api_key.rotated`.")
    ] = None,
    object_id: Annotated[
        str | None, Query(pattern=OBJECT_ID_PATTERN, max_length=OBJECT_ID_LENGTH_MAX, description="Only events about this object.")
    ] = None,
    actor_id: Annotated[
        str | None, Query(pattern=r"^[A-Za-z0-9_:.\-]{1,100}$", description="Only events by this actor (an API key id).")
    ] = None,
) -> AuditEventList:
    result = await list_audit_events(
        pool, tenant_id=principal.tenant_id, page=page, action=action, object_id=object_id, actor_id=actor_id
    )
    return AuditEventList.of(result, url="/v1/audit_events", item=AuditEventRead.of)
