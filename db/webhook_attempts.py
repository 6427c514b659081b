"""Webhook attempts, the sender's side: what one attempt needs (read in one go, the endpoint's
live secrets opened), and its record: the attempt, the delivery's new state and the endpoint's
health, in one transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from db.audit import new_object_id
from db.secret_box import SecretBox
from db.webhook_endpoints import mark_endpoint_failed, mark_endpoint_recovered
from db.webhook_secrets import SecretOwner, open_signing_secrets
from domain.webhooks import (
    ERROR_STORED_MAX,
    ID_PREFIX_ATTEMPT,
    RESPONSE_BODY_STORED_MAX,
    DeliveryStatus,
    EndpointKind,
    EndpointStatus,
    truncate_text,
)


@dataclass(frozen=True)
class AttemptContext:
    """What one attempt needs, read in one go. `secrets` are raw HMAC keys, newest first."""

    delivery_id: str
    tenant_id: str
    endpoint_id: str
    delivery_status: DeliveryStatus
    round: int
    url: str
    endpoint_usable: bool  # not deleted, not disabled
    event_found: bool
    event_id: str
    event_type: str
    event_created_at: datetime
    event_api_version: str
    event_data: Any
    secrets: list[bytes]


async def load_attempt_context(pool: asyncpg.Pool, *, secret_box: SecretBox, delivery_id: str) -> AttemptContext | None:
    row = await pool.fetchrow(
        """
        SELECT d.id, d.tenant_id, d.endpoint_id, d.status, d.round, d.event_id, d.event_type, d.event_created_at,
               w.url, w.kind, w.status AS endpoint_status, w.deleted_at,
               e.id IS NOT NULL AS event_found, e.api_version, e.data::text AS data
        FROM webhook_deliveries d
        JOIN webhook_endpoints w ON w.id = d.endpoint_id
        LEFT JOIN events e ON e.id = d.event_id
        WHERE d.id = $1
        """,
        delivery_id,
    )
    if row is None:
        return None
    owner_kind, owner_id = (
        (SecretOwner.TENANT, row["tenant_id"]) if row["kind"] == EndpointKind.NOTIFY_URL else (SecretOwner.ENDPOINT, row["endpoint_id"])
    )
    opened = await open_signing_secrets(pool, secret_box=secret_box, owner_kind=owner_kind, owner_id=owner_id)
    return AttemptContext(
        delivery_id=row["id"],
        tenant_id=row["tenant_id"],
        endpoint_id=row["endpoint_id"],
        delivery_status=DeliveryStatus(row["status"]),
        round=row["round"],
        url=row["url"],
        endpoint_usable=row["deleted_at"] is None and row["endpoint_status"] == EndpointStatus.ENABLED and bool(opened),
        event_found=row["event_found"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        event_created_at=row["event_created_at"],
        event_api_version=row["api_version"] or "",
        event_data=json.loads(row["data"]) if row["data"] is not None else None,
        secrets=opened,
    )


@dataclass(frozen=True)
class AttemptRecord:
    """One HTTP request as it happened; `outcome` is what it meant for the delivery."""

    delivery_id: str
    round: int
    attempt_number: int
    url: str
    webhook_timestamp: int | None
    started_at: datetime
    latency_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None
    outcome: str  # delivered | retry | failed | gone
    next_attempt_at: datetime | None
    # Whether the answer counts against the endpoint's health (a refused SSRF target does not
    # say the receiver is down).
    endpoint_failed: bool


@dataclass(frozen=True)
class RecordedAttempt:
    # True when this attempt moved the delivery to a final status (delivered, failed).
    completed: bool
    endpoint_events: list[str]


async def record_attempt(pool: asyncpg.Pool, *, record: AttemptRecord, failing_after_s: float) -> RecordedAttempt:
    """The attempt, the delivery's new state and the endpoint's health, in one transaction. A
    410 disables the endpoint; failing for `failing_after_s` marks it failing. Either tells the
    tenant with an event, once."""
    assert record.outcome in ("delivered", "retry", "failed", "gone")
    status = {
        "delivered": DeliveryStatus.DELIVERED,
        "retry": DeliveryStatus.PENDING,
        "failed": DeliveryStatus.FAILED,
        "gone": DeliveryStatus.FAILED,
    }[record.outcome]
    response_body = truncate_text(record.response_body, RESPONSE_BODY_STORED_MAX) if record.response_body is not None else None
    error = truncate_text(record.error, ERROR_STORED_MAX) if record.error is not None else None
    endpoint_events: list[str] = []
    async with pool.acquire() as connection, connection.transaction():
        delivery = await connection.fetchrow(
            """
            UPDATE webhook_deliveries SET
                attempts_count = attempts_count + 1,
                last_attempt_at = $3, last_status_code = $4, last_error = $5,
                status = $6,
                next_attempt_at = $7,
                delivered_at = CASE WHEN $6 = 'delivered' THEN clock_timestamp() ELSE delivered_at END,
                completed_at = CASE WHEN $6 = 'pending' THEN NULL ELSE clock_timestamp() END,
                updated_at = now()
            WHERE id = $1 AND round = $2 AND status = 'pending'
            RETURNING tenant_id, endpoint_id
            """,
            record.delivery_id,
            record.round,
            record.started_at,
            record.status_code,
            error,
            str(status),
            record.next_attempt_at,
        )
        ids = delivery or await connection.fetchrow(
            "SELECT tenant_id, endpoint_id FROM webhook_deliveries WHERE id = $1", record.delivery_id
        )
        assert ids is not None, record.delivery_id
        await connection.execute(
            """
            INSERT INTO webhook_attempts (id, delivery_id, tenant_id, endpoint_id, round, attempt_number, url, webhook_timestamp,
                created_at, latency_ms, status_code, response_body, error, outcome)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
            """,
            new_object_id(ID_PREFIX_ATTEMPT),
            record.delivery_id,
            ids["tenant_id"],
            ids["endpoint_id"],
            record.round,
            record.attempt_number,
            record.url,
            record.webhook_timestamp,
            record.started_at,
            record.latency_ms,
            record.status_code,
            response_body,
            error,
            record.outcome,
        )
        if record.outcome == "delivered":
            await mark_endpoint_recovered(connection, endpoint_id=ids["endpoint_id"])
        elif record.endpoint_failed:
            endpoint_events += await mark_endpoint_failed(
                connection, endpoint_id=ids["endpoint_id"], gone=record.outcome == "gone", failing_after_s=failing_after_s
            )
    return RecordedAttempt(completed=delivery is not None and status != DeliveryStatus.PENDING, endpoint_events=endpoint_events)


async def cancel_delivery(pool: asyncpg.Pool, *, delivery_id: str, round_number: int, reason: str) -> bool:
    """End a pending round that cannot be delivered (endpoint deleted or disabled, event gone)."""
    status = await pool.execute(
        """
        UPDATE webhook_deliveries SET status = 'cancelled', last_error = $3, next_attempt_at = NULL,
            completed_at = clock_timestamp(), updated_at = now()
        WHERE id = $1 AND round = $2 AND status = 'pending'
        """,
        delivery_id,
        round_number,
        truncate_text(reason, ERROR_STORED_MAX),
    )
    return status.endswith(" 1")
