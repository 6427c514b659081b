"""Webhook dispatch: the event queue (a trigger fills it in the transaction that writes an event)
fanned out into deliveries, one per enabled endpoint of the tenant that wants the event's type and
one to the object's own `notify_url`; the deliveries whose round has no workflow yet; and which
dispatcher (route) serves a tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import asyncpg

from db.audit import Connection
from db.secret_box import SecretBox
from db.webhook_endpoints import upsert_notify_endpoint
from db.webhook_secrets import ensure_notify_secret
from domain.webhooks import URL_LENGTH_MAX, delivery_id_for

DEFAULT_ROUTE = "default"
# Woken on a new event (the queue's trigger) and on a redelivery.
NOTIFY_CHANNEL = "settle_webhook_events"


async def set_dispatch_route(connection: Connection, *, tenant_id: str, route: str) -> None:
    """Serve a tenant's webhooks from a dedicated dispatcher (and its task queue's workers), or
    back on the default one."""
    if route == DEFAULT_ROUTE:
        await connection.execute("DELETE FROM webhook_dispatch_routes WHERE tenant_id = $1", tenant_id)
        return
    await connection.execute(
        """
        INSERT INTO webhook_dispatch_routes (tenant_id, route) VALUES ($1, $2)
        ON CONFLICT (tenant_id) DO UPDATE SET route = EXCLUDED.route
        """,
        tenant_id,
        route,
    )


def _route_clause(alias: str, argument: str) -> str:
    return (
        f"NOT EXISTS (SELECT 1 FROM webhook_dispatch_routes r WHERE r.tenant_id = {alias}.tenant_id) AND {argument}::text = 'default'"
        f" OR {alias}.tenant_id IN (SELECT r.tenant_id FROM webhook_dispatch_routes r WHERE r.route = {argument})"
    )


@dataclass(frozen=True)
class DeliveryToStart:
    delivery_id: str
    tenant_id: str
    event_id: str
    endpoint_id: str
    round: int


async def fan_out_events(pool: asyncpg.Pool, *, secret_box: SecretBox, route: str, batch_size_max: int) -> int:
    """Take up to `batch_size_max` queued events of a route and create their deliveries: one per
    enabled endpoint of the tenant that wants the event type, and one to the object's own
    `notify_url` (the event's `data.notify_url`). Queue rows go in the same transaction, so an
    event fans out exactly once. Returns how many events were taken."""
    assert 1 <= batch_size_max <= 1000
    async with pool.acquire() as connection, connection.transaction():
        rows = await connection.fetch(
            f"""
            WITH claimed AS (
                SELECT q.event_id FROM webhook_event_queue q
                WHERE {_route_clause('q', '$1')}
                ORDER BY q.enqueued_at, q.event_id
                LIMIT $2
                FOR UPDATE SKIP LOCKED
            )
            SELECT claimed.event_id, e.tenant_id, e.type, e.created_at,
                   -- A notify_url longer than any valid URL is ignored: stored, it would break the
                   -- index, fail this transaction on every try and stall the whole route.
                   CASE WHEN jsonb_typeof(e.data) = 'object' AND jsonb_typeof(e.data -> 'notify_url') = 'string'
                         AND length(e.data ->> 'notify_url') <= $3 THEN e.data ->> 'notify_url' END AS notify_url
            FROM claimed LEFT JOIN events e ON e.id = claimed.event_id
            """,
            route,
            batch_size_max,
            URL_LENGTH_MAX,
        )
        if not rows:
            return 0
        event_ids = [row["event_id"] for row in rows]
        await connection.execute(
            """
            INSERT INTO webhook_deliveries (id, tenant_id, event_id, endpoint_id, event_type, event_created_at)
            SELECT 'whd_' || e.id || '_' || w.id, e.tenant_id, e.id, w.id, e.type, e.created_at
            FROM events e JOIN webhook_endpoints w ON w.tenant_id = e.tenant_id
            WHERE e.id = ANY($1::text[]) AND w.kind = 'endpoint' AND w.deleted_at IS NULL AND w.status = 'enabled'
              AND ('*' = ANY(w.enabled_events) OR e.type = ANY(w.enabled_events))
            ON CONFLICT (event_id, endpoint_id) DO NOTHING
            """,
            event_ids,
        )
        for row in rows:
            if row["notify_url"] and row["tenant_id"] is not None:
                await _fan_out_to_notify_url(connection, secret_box=secret_box, event=row)
        await connection.execute("DELETE FROM webhook_event_queue WHERE event_id = ANY($1::text[])", event_ids)
    return len(rows)


async def _fan_out_to_notify_url(connection: asyncpg.Connection, *, secret_box: SecretBox, event: asyncpg.Record) -> None:
    """The API readies every notify_url it accepts (prepare_notify_url); this makes the endpoint
    and the secret only for events written some other way, so a delivery always has both."""
    tenant_id, url = event["tenant_id"], event["notify_url"]
    endpoint_id = await upsert_notify_endpoint(connection, tenant_id=tenant_id, url=url, enable=False)
    await ensure_notify_secret(connection, secret_box=secret_box, tenant_id=tenant_id)
    await connection.execute(
        """
        INSERT INTO webhook_deliveries (id, tenant_id, event_id, endpoint_id, event_type, event_created_at)
        SELECT $1, $2, $3, w.id, $5, $6 FROM webhook_endpoints w WHERE w.id = $4 AND w.status = 'enabled'
        ON CONFLICT (event_id, endpoint_id) DO NOTHING
        """,
        delivery_id_for(event_id=event["event_id"], endpoint_id=endpoint_id),
        tenant_id,
        event["event_id"],
        endpoint_id,
        event["type"],
        event["created_at"],
    )


async def list_deliveries_to_start(pool: asyncpg.Pool, *, route: str, limit: int) -> list[DeliveryToStart]:
    """Deliveries whose current round has no workflow known to be started: new ones, redelivered
    ones, and any whose start was lost to a crash."""
    assert 1 <= limit <= 1000
    rows = await pool.fetch(
        f"""
        SELECT d.id, d.tenant_id, d.event_id, d.endpoint_id, d.round FROM webhook_deliveries d
        WHERE d.started_round < d.round AND ({_route_clause('d', '$1')})
        ORDER BY d.created_at LIMIT $2
        """,
        route,
        limit,
    )
    return [
        DeliveryToStart(
            delivery_id=row["id"], tenant_id=row["tenant_id"], event_id=row["event_id"], endpoint_id=row["endpoint_id"], round=row["round"]
        )
        for row in rows
    ]


async def mark_deliveries_started(pool: asyncpg.Pool, *, started: Sequence[tuple[str, int]]) -> None:
    if not started:
        return
    await pool.execute(
        """
        UPDATE webhook_deliveries d SET started_round = GREATEST(d.started_round, v.round)
        FROM unnest($1::text[], $2::int[]) AS v (id, round) WHERE d.id = v.id
        """,
        [delivery_id for delivery_id, _ in started],
        [round_number for _, round_number in started],
    )
