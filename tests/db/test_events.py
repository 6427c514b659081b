"""The events table's one writer on the real PostgreSQL: inside the caller's transaction only, an
id written twice is stored once (and not reported new), the types are the catalogue's, and what
is written reads back through the API's reads."""

from __future__ import annotations

import uuid

import pytest

from db.events import EventNotFound, NewEvent, get_event, insert_events, list_events
from db.webhook_dispatch import set_dispatch_route
from domain.events import EventType, intent_event_id
from domain.pagination import PageRequest


def _event(tenant_id: str, intent_id: str, sequence: int, event_type: EventType = EventType.PAYMENT_INTENT_CREATED) -> NewEvent:
    return NewEvent(
        id=intent_event_id(intent_id=intent_id, sequence=sequence), tenant_id=tenant_id, type=event_type, object_id=intent_id,
        data={"id": intent_id, "object": "payment_intent", "memo": "café ☕"},
    )


async def test_an_event_is_written_once_inside_the_callers_transaction(db_pool):
    tenant_id, intent_id = f"ten_events{uuid.uuid4().hex[:8]}", f"pi_{uuid.uuid4().hex[:16]}"
    # A route no dispatcher serves: the queue rows stay for this test to count.
    await set_dispatch_route(db_pool, tenant_id=tenant_id, route=f"test-{tenant_id}")
    first, second = _event(tenant_id, intent_id, 1), _event(tenant_id, intent_id, 2, EventType.PAYMENT_INTENT_CANCELED)
    async with db_pool.acquire() as connection, connection.transaction():
        inserted = await insert_events(connection, events=[first, second])
    assert [(event.id, event.type) for event in inserted] == [(first.id, "payment_intent.created"), (second.id, "payment_intent.canceled")]
    assert inserted[0].data == first.data and inserted[0].tenant_id == tenant_id and inserted[0].api_version

    # A retried change writes the same ids: nothing new, nothing changed.
    changed = NewEvent(id=first.id, tenant_id=tenant_id, type=first.type, object_id=intent_id, data={"changed": True})
    async with db_pool.acquire() as connection, connection.transaction():
        assert await insert_events(connection, events=[changed, second]) == []
    assert (await get_event(db_pool, tenant_id=tenant_id, event_id=first.id)).data == first.data
    # The trigger queued each new event once for the dispatcher, in the same transaction.
    queued = await db_pool.fetchval("SELECT count(*) FROM webhook_event_queue WHERE event_id = ANY($1::text[])", [first.id, second.id])
    assert queued == 2

    listed = await list_events(db_pool, tenant_id=tenant_id, page=PageRequest(limit=10), object_id=intent_id)
    assert {event.id for event in listed.items} == {first.id, second.id}
    with pytest.raises(EventNotFound):
        await get_event(db_pool, tenant_id=tenant_id + "x", event_id=first.id)


async def test_a_rolled_back_change_leaves_no_event(db_pool):
    tenant_id, intent_id = f"ten_events{uuid.uuid4().hex[:8]}", f"pi_{uuid.uuid4().hex[:16]}"
    with pytest.raises(RuntimeError):
        async with db_pool.acquire() as connection, connection.transaction():
            await insert_events(connection, events=[_event(tenant_id, intent_id, 1)])
            raise RuntimeError("the change failed")
    assert await db_pool.fetchval("SELECT count(*) FROM events WHERE object_id = $1", intent_id) == 0


async def test_only_inside_a_transaction_and_only_catalogued_types(db_pool):
    tenant_id, intent_id = f"ten_events{uuid.uuid4().hex[:8]}", f"pi_{uuid.uuid4().hex[:16]}"
    async with db_pool.acquire() as connection:
        with pytest.raises(AssertionError, match="transaction"):
            await insert_events(connection, events=[_event(tenant_id, intent_id, 1)])
        with pytest.raises(ValueError):
            async with connection.transaction():
                await insert_events(
                    connection,
                    events=[NewEvent(id=f"evt_{intent_id}_x", tenant_id=tenant_id, type="payment_intent.settled", object_id=intent_id, data={})],
                )
    assert await db_pool.fetchval("SELECT count(*) FROM events WHERE object_id = $1", intent_id) == 0
