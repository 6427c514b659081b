"""The events table: its only writer, and its reads.

An event is written in the transaction of the change that caused it (the caller's), so a change
and its event exist together or not at all; a trigger (migration 0005) queues it for the webhook
dispatcher in that same transaction. Ids come from domain.events and are derived from the object
and the change: writing an event again (a retried activity) inserts nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from db.audit import Clause, fetch_page
from domain.events import EventType
from domain.pagination import Page, PageRequest

Connection = asyncpg.Pool | asyncpg.Connection


class EventNotFound(LookupError):
    def __init__(self, event_id: str) -> None:
        super().__init__(f"No such event: {event_id}")
        self.event_id = event_id


@dataclass(frozen=True)
class NewEvent:
    """An event to write: `data` is its object as of the change (domain.events' serializers)."""

    id: str
    tenant_id: str
    type: EventType
    object_id: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Event:
    id: str
    tenant_id: str
    type: str
    object_id: str
    api_version: str
    data: dict[str, Any]
    created_at: datetime


def _event(row: asyncpg.Record) -> Event:
    data = row["data"]
    return Event(
        id=row["id"],
        tenant_id=row["tenant_id"],
        type=row["type"],
        object_id=row["object_id"],
        api_version=row["api_version"],
        data=json.loads(data) if isinstance(data, str) else dict(data),
        created_at=row["created_at"],
    )


# ---------------------------------------------------------------------------- writing
async def insert_events(connection: asyncpg.Connection, *, events: Sequence[NewEvent]) -> list[Event]:
    """Write `events` inside the caller's transaction; an id already stored is left as it is.
    Returns the events that were new, in the order given."""
    assert connection.is_in_transaction(), "an event is written in the transaction of the change that caused it"
    if not events:
        return []
    for event in events:
        # A catalogued type only: a typo would be a type no endpoint ever subscribes to.
        EventType(event.type)
    rows = await connection.fetch(
        """
        INSERT INTO events (id, tenant_id, type, object_id, data)
        SELECT id, tenant_id, type, object_id, data::jsonb
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY
            AS new (id, tenant_id, type, object_id, data, position)
        ORDER BY position
        ON CONFLICT (id) DO NOTHING
        RETURNING *
        """,
        [event.id for event in events],
        [event.tenant_id for event in events],
        [str(event.type) for event in events],
        [event.object_id for event in events],
        [json.dumps(event.data) for event in events],
    )
    inserted = {row["id"]: _event(row) for row in rows}
    return [inserted[event.id] for event in events if event.id in inserted]


# ---------------------------------------------------------------------------- reading (the API; always one tenant's)
async def get_event(connection: Connection, *, tenant_id: str, event_id: str) -> Event:
    row = await connection.fetchrow("SELECT * FROM events WHERE id = $1 AND tenant_id = $2", event_id, tenant_id)
    if row is None:
        raise EventNotFound(event_id)
    return _event(row)


async def require_event(connection: Connection, *, tenant_id: str, event_id: str) -> None:
    """EventNotFound unless the tenant has this event (another tenant's is not found either)."""
    exists = await connection.fetchval("SELECT EXISTS (SELECT 1 FROM events WHERE id = $1 AND tenant_id = $2)", event_id, tenant_id)
    if not exists:
        raise EventNotFound(event_id)


async def list_events(
    connection: Connection, *, tenant_id: str, page: PageRequest, type: str | None = None, object_id: str | None = None
) -> Page[Event]:
    filters: list[Clause] = []
    if type is not None:
        filters.append(("type = {}", type))
    if object_id is not None:
        filters.append(("object_id = {}", object_id))
    result = await fetch_page(connection, table="events", scope=[("tenant_id = {}", tenant_id)], filters=filters, page=page)
    return Page(items=[_event(row) for row in result.items], has_more=result.has_more)
