"""Tenants: merchants and programs, each with its own ledger id and settings.

`create_tenant_with_first_key` is the one way a tenant comes to be, shared by `POST /v1/tenants`
and `settle tenants create`: tenant, first secret key and audit events in one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from db.api_keys import CreatedApiKey, insert_api_key
from db.audit import Actor, Clause, Connection, fetch_page, new_object_id, record_audit_event
from domain.pagination import Page, PageRequest
from domain.tenants import (
    ID_PREFIX_TENANT,
    PLATFORM_SETTINGS,
    SECRET_SCOPES,
    TENANT_SETTINGS,
    ActorType,
    ApiKeyType,
    AuditAction,
    KeyMode,
    TenantKind,
    TenantStatus,
)

# A tenant's settings: its own (PATCH /v1/tenant) and the platform's (only a platform admin
# changes those). Kind, ledger and mode are fixed.
SETTINGS_FIELDS = TENANT_SETTINGS + PLATFORM_SETTINGS
# Who may change the platform's settings: the admin key and the operator's CLI, never a tenant key.
_PLATFORM_ACTORS = (ActorType.PLATFORM_ADMIN, ActorType.CLI)
_JSON_FIELDS = ("payout_addresses", "confirmation_policy", "approvers")
FIRST_KEY_NAME = "Default secret key"


class TenantNotFound(LookupError):
    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"No such tenant: {tenant_id}")
        self.tenant_id = tenant_id


@dataclass(frozen=True)
class Tenant:
    id: str
    kind: TenantKind
    name: str
    status: TenantStatus
    ledger_id: int
    livemode: bool
    fee_bps: int
    payout_addresses: list[dict[str, Any]]
    confirmation_policy: dict[str, Any] | None
    approvers: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime

    def settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SETTINGS_FIELDS}


def _tenant(row: asyncpg.Record) -> Tenant:
    return Tenant(
        id=row["id"],
        kind=TenantKind(row["kind"]),
        name=row["name"],
        status=TenantStatus(row["status"]),
        ledger_id=row["ledger_id"],
        livemode=row["livemode"],
        fee_bps=row["fee_bps"],
        payout_addresses=json.loads(row["payout_addresses"]),
        confirmation_policy=json.loads(row["confirmation_policy"]) if row["confirmation_policy"] is not None else None,
        approvers=json.loads(row["approvers"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


async def create_tenant_with_first_key(
    pool: asyncpg.Pool,
    *,
    kind: TenantKind,
    name: str,
    mode: KeyMode,
    actor: Actor,
    fee_bps: int = 0,
    payout_addresses: list[dict[str, Any]] | None = None,
    confirmation_policy: dict[str, Any] | None = None,
    approvers: list[dict[str, Any]] | None = None,
) -> tuple[Tenant, CreatedApiKey]:
    """The tenant and its first secret key (all secret scopes), audited, in one transaction.
    Inputs are validated by the caller (the API's schemas, the CLI's arguments)."""
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            """
            INSERT INTO tenants (id, kind, name, livemode, fee_bps, payout_addresses, confirmation_policy, approvers)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb)
            RETURNING *
            """,
            new_object_id(ID_PREFIX_TENANT),
            str(kind),
            name,
            mode is KeyMode.LIVE,
            fee_bps,
            _json(payout_addresses or []),
            _json(confirmation_policy),
            _json(approvers or []),
        )
        tenant = _tenant(row)
        await record_audit_event(
            connection,
            tenant_id=tenant.id,
            actor=actor,
            action=AuditAction.TENANT_CREATED,
            object_type="tenant",
            object_id=tenant.id,
            data={"kind": str(kind), "name": name, "ledger_id": tenant.ledger_id, "settings": tenant.settings()},
        )
        created = await insert_api_key(
            connection,
            tenant_id=tenant.id,
            key_type=ApiKeyType.SECRET,
            name=FIRST_KEY_NAME,
            scopes=SECRET_SCOPES,
            mode=mode,
            actor=actor,
        )
        return tenant, created


async def get_tenant(connection: Connection, *, tenant_id: str) -> Tenant:
    row = await connection.fetchrow("SELECT * FROM tenants WHERE id = $1", tenant_id)
    if row is None:
        raise TenantNotFound(tenant_id)
    return _tenant(row)


async def list_tenants(
    connection: Connection,
    *,
    page: PageRequest,
    kind: TenantKind | None = None,
    status: TenantStatus | None = None,
) -> Page[Tenant]:
    filters: list[Clause] = []
    if kind is not None:
        filters.append(("kind = {}", str(kind)))
    if status is not None:
        filters.append(("status = {}", str(status)))
    result = await fetch_page(connection, table="tenants", scope=[], filters=filters, page=page)
    return Page(items=[_tenant(row) for row in result.items], has_more=result.has_more)


async def update_tenant_settings(
    pool: asyncpg.Pool, *, tenant_id: str, changes: dict[str, Any], actor: Actor
) -> Tenant:
    """Apply the given settings (a field absent from `changes` stays as it is) and audit what
    actually changed, before and after. A change to nothing writes nothing. The platform's
    settings (fee, confirmations) come only from a platform actor: callers refuse the rest."""
    unknown = set(changes) - set(SETTINGS_FIELDS)
    assert not unknown, f"not tenant settings: {unknown}"
    assert actor.type in _PLATFORM_ACTORS or not set(changes) & set(PLATFORM_SETTINGS), (
        f"{actor.type} may not change platform settings"
    )
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow("SELECT * FROM tenants WHERE id = $1 FOR UPDATE", tenant_id)
        if row is None:
            raise TenantNotFound(tenant_id)
        before = _tenant(row)
        changed = {name: value for name, value in changes.items() if getattr(before, name) != value}
        if not changed:
            return before
        assignments = []
        values: list[Any] = [tenant_id]
        for name, value in changed.items():
            values.append(_json(value) if name in _JSON_FIELDS else value)
            cast = "::jsonb" if name in _JSON_FIELDS else ""
            assignments.append(f"{name} = ${len(values)}{cast}")
        row = await connection.fetchrow(
            f"UPDATE tenants SET {', '.join(assignments)}, updated_at = now() WHERE id = $1 RETURNING *", *values
        )
        after = _tenant(row)
        await record_audit_event(
            connection,
            tenant_id=tenant_id,
            actor=actor,
            action=AuditAction.TENANT_SETTINGS_UPDATED,
            object_type="tenant",
            object_id=tenant_id,
            data={
                "changed": sorted(changed),
                "before": {name: getattr(before, name) for name in changed},
                "after": {name: getattr(after, name) for name in changed},
            },
        )
        return after
