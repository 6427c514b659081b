"""The audit log (append-only; the table's triggers refuse UPDATE, DELETE and TRUNCATE) and the
keyset pagination every repository's list uses."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from domain.pagination import Direction, Page, PageRequest, cut_page
from domain.tenants import (
    BASE62_ALPHABET,
    ID_PREFIX_AUDIT_EVENT,
    ID_RANDOM_LENGTH,
    ActorType,
    AuditAction,
)

Connection = asyncpg.Connection | asyncpg.Pool


class CursorNotFound(LookupError):
    """`starting_after`/`ending_before` names no object the caller can see."""

    def __init__(self, *, param: str, object_id: str) -> None:
        super().__init__(f"{param}: no such object: {object_id}")
        self.param = param
        self.object_id = object_id


def new_object_id(prefix: str) -> str:
    return f"{prefix}_" + "".join(secrets.choice(BASE62_ALPHABET) for _ in range(ID_RANDOM_LENGTH))


@dataclass(frozen=True)
class Actor:
    """Who did it, from where, in which request: every audited write carries one."""

    type: ActorType
    id: str
    request_id: str | None = None
    ip: str | None = None


@dataclass(frozen=True)
class AuditEvent:
    id: str
    tenant_id: str | None
    action: str
    actor_type: str
    actor_id: str
    object_type: str
    object_id: str
    request_id: str | None
    ip: str | None
    data: dict[str, Any]
    created_at: datetime


def _audit_event(row: asyncpg.Record) -> AuditEvent:
    return AuditEvent(
        id=row["id"],
        tenant_id=row["tenant_id"],
        action=row["action"],
        actor_type=row["actor_type"],
        actor_id=row["actor_id"],
        object_type=row["object_type"],
        object_id=row["object_id"],
        request_id=row["request_id"],
        ip=row["ip"],
        data=json.loads(row["data"]),
        created_at=row["created_at"],
    )


async def record_audit_event(
    connection: Connection,
    *,
    tenant_id: str | None,
    actor: Actor,
    action: AuditAction,
    object_type: str,
    object_id: str,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Call it on the transaction that makes the change, so both or neither land.
    `data` must never hold a secret: callers pass ids, names, before/after of settings."""
    row = await connection.fetchrow(
        """
        INSERT INTO audit_events (id, tenant_id, action, actor_type, actor_id, object_type, object_id, request_id, ip, data)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)
        RETURNING *
        """,
        new_object_id(ID_PREFIX_AUDIT_EVENT),
        tenant_id,
        str(action),
        str(actor.type),
        actor.id,
        object_type,
        object_id,
        actor.request_id,
        actor.ip,
        json.dumps(data or {}, sort_keys=True),
    )
    return _audit_event(row)


async def list_audit_events(
    connection: Connection,
    *,
    tenant_id: str,
    page: PageRequest,
    action: str | None = None,
    object_id: str | None = None,
    actor_id: str | None = None,
) -> Page[AuditEvent]:
    filters: list[Clause] = []
    if action is not None:
        filters.append(("action = {}", action))
    if object_id is not None:
        filters.append(("object_id = {}", object_id))
    if actor_id is not None:
        filters.append(("actor_id = {}", actor_id))
    result = await fetch_page(
        connection, table="audit_events", scope=[("tenant_id = {}", tenant_id)], filters=filters, page=page
    )
    return Page(items=[_audit_event(row) for row in result.items], has_more=result.has_more)


# ---------------------------------------------------------------------------- pagination
# A clause with at most one "{}" where its value goes; NO_VALUE for clauses without one.
Clause = tuple[str, Any]
NO_VALUE = object()


@dataclass
class SqlArgs:
    """Collects query arguments and hands out their `$n` placeholders."""

    values: list[Any] = field(default_factory=list)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"

    def clause(self, clause: Clause) -> str:
        template, value = clause
        return template if value is NO_VALUE else template.format(self.add(value))


async def fetch_page(
    connection: Connection,
    *,
    table: str,
    scope: list[Clause],
    filters: list[Clause],
    page: PageRequest,
    columns: str = "*",
) -> Page[asyncpg.Record]:
    """One page of `table`, newest first by (created_at, id). `scope` limits what the caller may
    see at all (its tenant) and also bounds the cursor lookup; `filters` narrow the list only.
    `table` and the clause templates are the caller's constants; values travel as arguments."""
    if page.cursor_id is not None:
        cursor_args = SqlArgs()
        cursor_where = [cursor_args.clause(clause) for clause in scope] + [f"id = {cursor_args.add(page.cursor_id)}"]
        cursor = await connection.fetchrow(
            f"SELECT created_at, id FROM {table} WHERE {' AND '.join(cursor_where)}", *cursor_args.values
        )
        if cursor is None:
            param = "starting_after" if page.starting_after else "ending_before"
            raise CursorNotFound(param=param, object_id=page.cursor_id)
    args = SqlArgs()
    where = [args.clause(clause) for clause in [*scope, *filters]]
    if page.created_gte is not None:
        where.append(f"created_at >= {args.add(page.created_gte)}")
    if page.created_lte is not None:
        where.append(f"created_at <= {args.add(page.created_lte)}")
    if page.cursor_id is not None:
        comparison = "<" if page.direction is Direction.OLDER else ">"
        where.append(f"(created_at, id) {comparison} ({args.add(cursor['created_at'])}, {args.add(cursor['id'])})")
    order = "DESC" if page.direction is Direction.OLDER else "ASC"
    rows = await connection.fetch(
        f"SELECT {columns} FROM {table} WHERE {' AND '.join(where) or 'TRUE'} "
        f"ORDER BY created_at {order}, id {order} LIMIT {args.add(page.limit + 1)}",
        *args.values,
    )
    return cut_page(rows, request=page)
