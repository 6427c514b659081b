"""Webhook deliveries as tenants read them (one per event and endpoint, with the log of their
attempts) and redelivery: a new round of a finished delivery, under the same `webhook-id`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from db.audit import Actor, Clause, Connection, fetch_page, record_audit_event
from db.pool import transaction
from db.webhook_dispatch import NOTIFY_CHANNEL
from db.webhook_endpoints import WebhookConflict
from domain.pagination import Page, PageRequest
from domain.tenants import AuditAction
from domain.webhooks import DeliveryStatus, EndpointKind, EndpointStatus


class WebhookDeliveryNotFound(LookupError):
    def __init__(self, delivery_id: str) -> None:
        super().__init__(f"No such webhook delivery: {delivery_id}")
        self.delivery_id = delivery_id


@dataclass(frozen=True)
class WebhookDelivery:
    id: str
    tenant_id: str
    event_id: str
    endpoint_id: str
    event_type: str
    event_created_at: datetime
    status: DeliveryStatus
    round: int
    attempts_count: int
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    # A registered endpoint, or the hidden one a `notify_url` made; None where the read did not join it.
    endpoint_kind: EndpointKind | None = None


@dataclass(frozen=True)
class DeliveryWithAttempts:
    delivery: WebhookDelivery
    # The latest attempts, newest first.
    attempts: list["WebhookAttempt"]
    # Whether older attempts exist beyond `attempts`.
    attempts_has_more: bool


@dataclass(frozen=True)
class WebhookAttempt:
    id: str
    delivery_id: str
    tenant_id: str
    endpoint_id: str
    round: int
    attempt_number: int
    url: str
    webhook_timestamp: int | None
    created_at: datetime
    latency_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None
    outcome: str


def _delivery(row: asyncpg.Record) -> WebhookDelivery:
    return WebhookDelivery(
        id=row["id"],
        tenant_id=row["tenant_id"],
        event_id=row["event_id"],
        endpoint_id=row["endpoint_id"],
        event_type=row["event_type"],
        event_created_at=row["event_created_at"],
        status=DeliveryStatus(row["status"]),
        round=row["round"],
        attempts_count=row["attempts_count"],
        last_attempt_at=row["last_attempt_at"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        next_attempt_at=row["next_attempt_at"],
        delivered_at=row["delivered_at"],
        completed_at=row["completed_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        endpoint_kind=EndpointKind(row["endpoint_kind"]) if row.get("endpoint_kind") is not None else None,
    )


def _attempt(row: asyncpg.Record) -> WebhookAttempt:
    return WebhookAttempt(**{name: row[name] for name in WebhookAttempt.__dataclass_fields__})


async def get_delivery(connection: Connection, *, tenant_id: str, delivery_id: str) -> WebhookDelivery:
    row = await connection.fetchrow("SELECT * FROM webhook_deliveries WHERE id = $1 AND tenant_id = $2", delivery_id, tenant_id)
    if row is None:
        raise WebhookDeliveryNotFound(delivery_id)
    return _delivery(row)


async def list_deliveries(
    connection: Connection,
    *,
    tenant_id: str,
    page: PageRequest,
    endpoint_id: str | None = None,
    event_id: str | None = None,
    status: DeliveryStatus | None = None,
) -> Page[WebhookDelivery]:
    filters: list[Clause] = []
    if endpoint_id is not None:
        filters.append(("endpoint_id = {}", endpoint_id))
    if event_id is not None:
        filters.append(("event_id = {}", event_id))
    if status is not None:
        filters.append(("status = {}", str(status)))
    result = await fetch_page(connection, table="webhook_deliveries", scope=[("tenant_id = {}", tenant_id)], filters=filters, page=page)
    return Page(items=[_delivery(row) for row in result.items], has_more=result.has_more)


# Deliveries joined to their endpoint's kind: one query gives a page of either list.
_DELIVERIES_WITH_KIND = (
    "(SELECT d.*, w.kind AS endpoint_kind FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id) AS deliveries"
)


async def list_deliveries_with_attempts(
    connection: Connection,
    *,
    tenant_id: str,
    page: PageRequest,
    attempts_per_delivery_max: int,
    endpoint_id: str | None = None,
    event_id: str | None = None,
) -> Page[DeliveryWithAttempts]:
    """A page of deliveries (an endpoint's, an event's, or all), each with its latest attempts:
    one query for the page and one for every delivery's attempts, however long the page."""
    assert 1 <= attempts_per_delivery_max <= 100
    filters: list[Clause] = []
    if endpoint_id is not None:
        filters.append(("endpoint_id = {}", endpoint_id))
    if event_id is not None:
        filters.append(("event_id = {}", event_id))
    result = await fetch_page(connection, table=_DELIVERIES_WITH_KIND, scope=[("tenant_id = {}", tenant_id)], filters=filters, page=page)
    deliveries = [_delivery(row) for row in result.items]
    attempts: dict[str, list[WebhookAttempt]] = {delivery.id: [] for delivery in deliveries}
    if deliveries:
        # One more than shown per delivery says whether older ones exist.
        rows = await connection.fetch(
            """
            SELECT * FROM (
                SELECT a.*, row_number() OVER (PARTITION BY a.delivery_id ORDER BY a.created_at DESC, a.id DESC) AS position
                FROM webhook_attempts a WHERE a.delivery_id = ANY($1::text[]) AND a.tenant_id = $2
            ) ranked
            WHERE position <= $3
            ORDER BY delivery_id, position
            """,
            list(attempts),
            tenant_id,
            attempts_per_delivery_max + 1,
        )
        for row in rows:
            attempts[row["delivery_id"]].append(_attempt(row))
    items = [
        DeliveryWithAttempts(
            delivery=delivery,
            attempts=attempts[delivery.id][:attempts_per_delivery_max],
            attempts_has_more=len(attempts[delivery.id]) > attempts_per_delivery_max,
        )
        for delivery in deliveries
    ]
    return Page(items=items, has_more=result.has_more)


async def list_attempts(connection: Connection, *, tenant_id: str, delivery_id: str, page: PageRequest) -> Page[WebhookAttempt]:
    """A delivery's attempts, newest first: time, status code, latency, truncated response, error."""
    scope: list[Clause] = [("tenant_id = {}", tenant_id), ("delivery_id = {}", delivery_id)]
    result = await fetch_page(connection, table="webhook_attempts", scope=scope, filters=[], page=page)
    return Page(items=[_attempt(row) for row in result.items], has_more=result.has_more)


async def request_redelivery(
    connection: Connection, *, tenant_id: str, delivery_id: str, actor: Actor | None = None
) -> WebhookDelivery:
    """Deliver once more (a new round, same `webhook-id`). Idempotent: while a round is pending,
    asking again changes nothing. The dispatcher starts the round's workflow. With an `actor`,
    each new round is audited in the same transaction (asking again while pending is not)."""
    async with transaction(connection) as in_transaction:
        row = await in_transaction.fetchrow(
            """
            SELECT d.*, w.kind AS endpoint_kind, w.status AS endpoint_status, w.deleted_at AS endpoint_deleted_at
            FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
            WHERE d.id = $1 AND d.tenant_id = $2 FOR UPDATE OF d
            """,
            delivery_id,
            tenant_id,
        )
        if row is None:
            raise WebhookDeliveryNotFound(delivery_id)
        if row["status"] == DeliveryStatus.PENDING:
            return _delivery(row)
        if row["endpoint_deleted_at"] is not None or row["endpoint_status"] != EndpointStatus.ENABLED:
            if row["endpoint_kind"] == EndpointKind.NOTIFY_URL:
                message = (
                    f"the notify_url of endpoint {row['endpoint_id']} answered 410 Gone and is disabled; "
                    "a new payment intent naming that URL enables it again"
                )
            else:
                message = f"endpoint {row['endpoint_id']} is deleted or disabled; enable it before redelivering"
            raise WebhookConflict(message, code="webhook_endpoint_disabled")
        updated = await in_transaction.fetchrow(
            """
            UPDATE webhook_deliveries SET round = round + 1, status = 'pending', next_attempt_at = now(),
                completed_at = NULL, updated_at = now()
            WHERE id = $1 RETURNING *, $2::text AS endpoint_kind
            """,
            delivery_id,
            row["endpoint_kind"],
        )
        if actor is not None:
            await record_audit_event(
                in_transaction,
                tenant_id=tenant_id,
                actor=actor,
                action=AuditAction.WEBHOOK_DELIVERY_REDELIVERED,
                object_type="webhook_delivery",
                object_id=delivery_id,
                data={
                    "event_id": updated["event_id"],
                    "endpoint_id": updated["endpoint_id"],
                    "round": updated["round"],
                    "previous_status": row["status"],
                },
            )
        await in_transaction.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    return _delivery(updated)
