"""Events for tests of what reads them (webhook dispatch and delivery, the API's lists), written
the way every event is: by db.events, in a transaction, with an id of the workflow's shape."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from db.events import NewEvent, insert_events
from domain.events import EventType, intent_event_id


async def insert_test_event(
    pool: asyncpg.Pool,
    *,
    tenant_id: str,
    event_type: str = EventType.PAYMENT_INTENT_SUCCEEDED,
    data: dict[str, Any] | None = None,
) -> str:
    """A payment intent's event; the trigger of migration 0005 queues it for the dispatcher.
    `data` defaults to a small intent object."""
    intent_id = "pi_" + uuid.uuid4().hex[:16]
    event_id = intent_event_id(intent_id=intent_id, sequence=1)
    if data is None:
        data = {"id": intent_id, "object": "payment_intent", "amount": "1000000"}
    async with pool.acquire() as connection, connection.transaction():
        await insert_events(
            connection, events=[NewEvent(id=event_id, tenant_id=tenant_id, type=EventType(event_type), object_id=intent_id, data=data)]
        )
    return event_id
