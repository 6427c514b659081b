"""The webhooks repository against the real PostgreSQL of the test stack. Each test is its own
tenant (and dispatch route), so nothing is truncated and tests cannot see each other."""

from __future__ import annotations

import json

import pytest

from db.events import EventNotFound, require_event
from db.secret_box import SecretBox
from db.webhook_attempts import AttemptRecord, load_attempt_context, record_attempt
from db.webhook_deliveries import (
    WebhookDeliveryNotFound,
    get_delivery,
    list_attempts,
    list_deliveries,
    list_deliveries_with_attempts,
    request_redelivery,
)
from db.webhook_dispatch import fan_out_events, list_deliveries_to_start, mark_deliveries_started, set_dispatch_route
from db.webhook_endpoints import (
    WebhookConflict,
    WebhookEndpointNotFound,
    create_endpoint,
    delete_endpoint,
    get_endpoint,
    list_endpoints,
    rotate_endpoint_secret,
    secret_expirations,
    update_endpoint,
)
from db.webhook_secrets import rotate_notify_secret
from db.settings import WebhookSettings
from domain.pagination import PageRequest
from domain.webhooks import (
    ENDPOINTS_PER_TENANT_MAX,
    DeliveryStatus,
    EndpointHealth,
    EndpointStatus,
    UrlPolicy,
    WebhookRuleError,
    parse_signing_secret,
)
from tests.events import insert_test_event

LOCAL = UrlPolicy(allow_private_targets=True, require_https=False)
PRODUCTION = UrlPolicy(allow_private_targets=False, require_https=True)
BOX = SecretBox(WebhookSettings().secret_encryption_keys())


@pytest.fixture
async def tenant(db_pool, unique_id) -> dict:
    """A fresh tenant on its own dispatch route."""
    tenant_id = f"ten_whrepo{unique_id}"
    route = f"test-{unique_id}"
    await set_dispatch_route(db_pool, tenant_id=tenant_id, route=route)
    return {"id": tenant_id, "route": route}


async def insert_event(pool, *, tenant_id: str, event_type: str = "payment_intent.succeeded", data: dict | None = None) -> str:
    return await insert_test_event(pool, tenant_id=tenant_id, event_type=event_type, data=data or {"id": "pi_x", "object": "payment_intent"})


async def new_endpoint(pool, tenant_id: str, *, events=("*",), url: str = "https://hooks.example.com/settle"):
    return await create_endpoint(
        pool, secret_box=BOX, url_policy=PRODUCTION, tenant_id=tenant_id, url=url, enabled_events=list(events), description="orders"
    )


async def test_secret_is_shown_once_sealed_at_rest_and_never_read_back(db_pool, tenant):
    created = await new_endpoint(db_pool, tenant["id"])
    raw = parse_signing_secret(created.secret)
    endpoint = created.endpoint
    assert endpoint.status is EndpointStatus.ENABLED and endpoint.health is EndpointHealth.HEALTHY
    assert "secret" not in json.dumps(endpoint.public_data())
    assert not hasattr(await get_endpoint(db_pool, tenant_id=tenant["id"], endpoint_id=endpoint.id), "secret")
    sealed = await db_pool.fetchval("SELECT secret_sealed FROM webhook_signing_secrets WHERE owner_id = $1", endpoint.id)
    assert sealed.startswith("v1.") and created.secret not in sealed and raw.hex() not in sealed
    # Copied onto another owner's row, a sealed secret does not open.
    with pytest.raises(Exception):
        BOX.open(sealed, context="webhook-signing-secret/whsk_other/endpoint/we_other")
    # Another deployment key does not open it either.
    with pytest.raises(Exception):
        SecretBox([bytes([7]) * 32]).open(sealed, context="anything")


async def test_urls_and_events_are_validated_and_tenants_are_isolated(db_pool, tenant, unique_id):
    with pytest.raises(WebhookRuleError):
        await create_endpoint(
            db_pool, secret_box=BOX, url_policy=PRODUCTION, tenant_id=tenant["id"], url="https://10.0.0.1/", enabled_events=["*"]
        )
    with pytest.raises(WebhookRuleError):
        await new_endpoint(db_pool, tenant["id"], events=["not an event"])
    first = (await new_endpoint(db_pool, tenant["id"])).endpoint
    second = (await new_endpoint(db_pool, tenant["id"], events=["payment_intent.succeeded"])).endpoint
    page = await list_endpoints(db_pool, tenant_id=tenant["id"], page=PageRequest(limit=1))
    assert [e.id for e in page.items] == [second.id] and page.has_more
    page = await list_endpoints(db_pool, tenant_id=tenant["id"], page=PageRequest(limit=10, starting_after=second.id))
    assert [e.id for e in page.items] == [first.id]
    with pytest.raises(WebhookEndpointNotFound):
        await get_endpoint(db_pool, tenant_id=f"ten_other{unique_id}", endpoint_id=first.id)
    updated = await update_endpoint(
        db_pool, url_policy=PRODUCTION, tenant_id=tenant["id"], endpoint_id=first.id, description="all", enabled=False
    )
    assert updated.description == "all" and updated.status is EndpointStatus.DISABLED and updated.url == first.url
    updated = await update_endpoint(db_pool, url_policy=PRODUCTION, tenant_id=tenant["id"], endpoint_id=first.id, enabled=True)
    assert updated.status is EndpointStatus.ENABLED and updated.disabled_reason is None


async def test_endpoints_per_tenant_are_bounded(db_pool, tenant):
    for _ in range(ENDPOINTS_PER_TENANT_MAX):
        await new_endpoint(db_pool, tenant["id"])
    with pytest.raises(WebhookConflict):
        await new_endpoint(db_pool, tenant["id"])


async def test_rotation_signs_with_both_secrets_during_the_overlap(db_pool, tenant):
    created = await new_endpoint(db_pool, tenant["id"])
    endpoint_id = created.endpoint.id
    event_id = await insert_event(db_pool, tenant_id=tenant["id"])
    await fan_out_events(db_pool, secret_box=BOX, route=tenant["route"], batch_size_max=10)
    delivery_id = f"whd_{event_id}_{endpoint_id}"

    rotated = await rotate_endpoint_secret(db_pool, secret_box=BOX, tenant_id=tenant["id"], endpoint_id=endpoint_id, overlap_s=3600)
    assert rotated.secret != created.secret and rotated.previous_expires_at is not None
    context = await load_attempt_context(db_pool, secret_box=BOX, delivery_id=delivery_id)
    assert context.secrets == [parse_signing_secret(rotated.secret), parse_signing_secret(created.secret)]
    assert [e is None for e in await secret_expirations(db_pool, tenant_id=tenant["id"], endpoint_id=endpoint_id)] == [True, False]

    # One overlap at a time: rotating again stops the oldest now.
    again = await rotate_endpoint_secret(db_pool, secret_box=BOX, tenant_id=tenant["id"], endpoint_id=endpoint_id, overlap_s=60)
    context = await load_attempt_context(db_pool, secret_box=BOX, delivery_id=delivery_id)
    assert context.secrets == [parse_signing_secret(again.secret), parse_signing_secret(rotated.secret)]

    # Overlap 0: the old secret stops at once.
    last = await rotate_endpoint_secret(db_pool, secret_box=BOX, tenant_id=tenant["id"], endpoint_id=endpoint_id, overlap_s=0)
    context = await load_attempt_context(db_pool, secret_box=BOX, delivery_id=delivery_id)
    assert context.secrets == [parse_signing_secret(last.secret)] and last.previous_expires_at is None

    # An expired overlap signs no more.
    await rotate_endpoint_secret(db_pool, secret_box=BOX, tenant_id=tenant["id"], endpoint_id=endpoint_id, overlap_s=60)
    await db_pool.execute(
        "UPDATE webhook_signing_secrets SET expires_at = now() - interval '1 second' WHERE owner_id = $1 AND expires_at IS NOT NULL",
        endpoint_id,
    )
    context = await load_attempt_context(db_pool, secret_box=BOX, delivery_id=delivery_id)
    assert len(context.secrets) == 1


async def test_events_fan_out_once_to_the_endpoints_that_want_them(db_pool, tenant):
    everything = (await new_endpoint(db_pool, tenant["id"])).endpoint
    succeeded_only = (await new_endpoint(db_pool, tenant["id"], events=["payment_intent.succeeded"])).endpoint
    disabled = (await new_endpoint(db_pool, tenant["id"])).endpoint
    await update_endpoint(db_pool, url_policy=PRODUCTION, tenant_id=tenant["id"], endpoint_id=disabled.id, enabled=False)
    deleted = (await new_endpoint(db_pool, tenant["id"])).endpoint
    await delete_endpoint(db_pool, tenant_id=tenant["id"], endpoint_id=deleted.id)

    succeeded = await insert_event(db_pool, tenant_id=tenant["id"], event_type="payment_intent.succeeded")
    canceled = await insert_event(db_pool, tenant_id=tenant["id"], event_type="payment_intent.canceled")
    queued = await db_pool.fetch("SELECT event_id FROM webhook_event_queue WHERE tenant_id = $1", tenant["id"])
    assert {r["event_id"] for r in queued} == {succeeded, canceled}  # the trigger queued both

    # Another route's dispatcher does not see this tenant's events.
    assert await fan_out_events(db_pool, secret_box=BOX, route=tenant["route"] + "-other", batch_size_max=10) == 0
    assert await fan_out_events(db_pool, secret_box=BOX, route=tenant["route"], batch_size_max=10) == 2
    assert await fan_out_events(db_pool, secret_box=BOX, route=tenant["route"], batch_size_max=10) == 0
    rows = await db_pool.fetch("SELECT event_id, endpoint_id FROM webhook_deliveries WHERE tenant_id = $1", tenant["id"])
    assert {(r["event_id"], r["endpoint_id"]) for r in rows} == {
        (succeeded, everything.id),
        (succeeded, succeeded_only.id),
        (canceled, everything.id),
    }
    to_start = await list_deliveries_to_start(db_pool, route=tenant["route"], limit=100)
    assert len(to_start) == 3 and {d.round for d in to_start} == {0}
    await mark_deliveries_started(db_pool, started=[(d.delivery_id, d.round) for d in to_start])
    assert await list_deliveries_to_start(db_pool, route=tenant["route"], limit=100) == []

    page = await list_deliveries(db_pool, tenant_id=tenant["id"], page=PageRequest(limit=10), endpoint_id=everything.id)
    assert {d.event_id for d in page.items} == {succeeded, canceled}
    assert all(d.status is DeliveryStatus.PENDING for d in page.items)


async def test_notify_url_gets_its_own_delivery_signed_with_the_tenant_notify_secret(db_pool, tenant):
    event_id = await insert_event(
        db_pool, tenant_id=tenant["id"], data={"id": "pi_1", "object": "payment_intent", "notify_url": "https://shop.example.com/ipn"}
    )
    await fan_out_events(db_pool, secret_box=BOX, route=tenant["route"], batch_size_max=10)
    [delivery] = await list_deliveries_to_start(db_pool, route=tenant["route"], limit=10)
    assert delivery.event_id == event_id
    notify_secret = await rotate_notify_secret(db_pool, secret_box=BOX, tenant_id=tenant["id"], overlap_s=0)
    context = await load_attempt_context(db_pool, secret_box=BOX, delivery_id=delivery.delivery_id)
    assert context.url == "https://shop.example.com/ipn" and context.endpoint_usable
    assert context.secrets == [parse_signing_secret(notify_secret.secret)]
    # A second event naming the same URL reuses the same implicit endpoint.
    await insert_event(db_pool, tenant_id=tenant["id"], data={"notify_url": "https://shop.example.com/ipn"})
    await fan_out_events(db_pool, secret_box=BOX, route=tenant["route"], batch_size_max=10)
    endpoints = await db_pool.fetchval("SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1 AND kind = 'notify_url'", tenant["id"])
    assert endpoints == 1


def attempt(delivery_id: str, *, outcome: str, status_code: int | None, attempt_number: int = 1, round_number: int = 0):
    from datetime import datetime, timezone

    return AttemptRecord(
        delivery_id=delivery_id,
        round=round_number,
        attempt_number=attempt_number,
        url="https://hooks.example.com/settle",
        webhook_timestamp=1,
        started_at=datetime.now(timezone.utc),
        latency_ms=12,
        status_code=status_code,
        response_body="x" * 5000 if status_code else None,
        error=None if status_code else "network: refused",
        outcome=outcome,
        next_attempt_at=None,
        endpoint_failed=True,
    )


async def _one_delivery(db_pool, tenant) -> tuple[str, str]:
    endpoint = (await new_endpoint(db_pool, tenant["id"])).endpoint
    event_id = await insert_event(db_pool, tenant_id=tenant["id"])
    await fan_out_events(db_pool, secret_box=BOX, route=tenant["route"], batch_size_max=10)
    return f"whd_{event_id}_{endpoint.id}", endpoint.id


async def test_an_endpoint_failing_for_days_is_marked_failing_and_its_tenant_told_once(db_pool, tenant):
    delivery_id, endpoint_id = await _one_delivery(db_pool, tenant)
    first = await record_attempt(db_pool, record=attempt(delivery_id, outcome="retry", status_code=503), failing_after_s=3 * 86400)
    assert first.endpoint_events == [] and not first.completed
    endpoint = await get_endpoint(db_pool, tenant_id=tenant["id"], endpoint_id=endpoint_id)
    assert endpoint.failing_since is not None and endpoint.health is EndpointHealth.HEALTHY
    # Pretend the failures started four days ago.
    await db_pool.execute("UPDATE webhook_endpoints SET failing_since = now() - interval '4 days' WHERE id = $1", endpoint_id)
    second = await record_attempt(
        db_pool, record=attempt(delivery_id, outcome="retry", status_code=None, attempt_number=2), failing_after_s=3 * 86400
    )
    [event_id] = second.endpoint_events
    event = await db_pool.fetchrow("SELECT * FROM events WHERE id = $1", event_id)
    assert event["tenant_id"] == tenant["id"] and event["type"] == "webhook_endpoint.failing" and event["object_id"] == endpoint_id
    assert json.loads(event["data"])["health"] == "failing" and "secret" not in event["data"]
    endpoint = await get_endpoint(db_pool, tenant_id=tenant["id"], endpoint_id=endpoint_id)
    # Marked failing, never silently disabled.
    assert endpoint.health is EndpointHealth.FAILING and endpoint.status is EndpointStatus.ENABLED
    third = await record_attempt(
        db_pool, record=attempt(delivery_id, outcome="retry", status_code=500, attempt_number=3), failing_after_s=3 * 86400
    )
    assert third.endpoint_events == []  # told once
    # The event itself goes to the tenant's endpoints like any other.
    assert await db_pool.fetchval("SELECT count(*) FROM webhook_event_queue WHERE event_id = $1", event_id) == 1
    # One 2xx and it is healthy again.
    delivered = await record_attempt(
        db_pool, record=attempt(delivery_id, outcome="delivered", status_code=200, attempt_number=4), failing_after_s=3 * 86400
    )
    assert delivered.completed
    endpoint = await get_endpoint(db_pool, tenant_id=tenant["id"], endpoint_id=endpoint_id)
    assert endpoint.health is EndpointHealth.HEALTHY and endpoint.failing_since is None
    attempts = await list_attempts(db_pool, tenant_id=tenant["id"], delivery_id=delivery_id, page=PageRequest(limit=10))
    assert [a.attempt_number for a in attempts.items] == [4, 3, 2, 1]
    assert all(a.response_body is None or len(a.response_body) < 1100 for a in attempts.items)  # truncated


async def test_410_disables_the_endpoint_and_tells_the_tenant(db_pool, tenant):
    delivery_id, endpoint_id = await _one_delivery(db_pool, tenant)
    recorded = await record_attempt(db_pool, record=attempt(delivery_id, outcome="gone", status_code=410), failing_after_s=86400)
    assert recorded.completed and len(recorded.endpoint_events) == 1
    endpoint = await get_endpoint(db_pool, tenant_id=tenant["id"], endpoint_id=endpoint_id)
    assert endpoint.status is EndpointStatus.DISABLED and endpoint.disabled_reason == "gone"
    delivery = await get_delivery(db_pool, tenant_id=tenant["id"], delivery_id=delivery_id)
    assert delivery.status is DeliveryStatus.FAILED and delivery.last_status_code == 410
    assert (await db_pool.fetchval("SELECT type FROM events WHERE id = $1", recorded.endpoint_events[0])) == "webhook_endpoint.disabled"
    # Disabled endpoints get no new deliveries, and redelivery asks to enable it first.
    with pytest.raises(WebhookConflict):
        await request_redelivery(db_pool, tenant_id=tenant["id"], delivery_id=delivery_id)


async def test_redelivery_is_a_new_round_and_idempotent_while_pending(db_pool, tenant, unique_id):
    delivery_id, _ = await _one_delivery(db_pool, tenant)
    [to_start] = await list_deliveries_to_start(db_pool, route=tenant["route"], limit=10)
    await mark_deliveries_started(db_pool, started=[(to_start.delivery_id, to_start.round)])
    # Still pending: asking changes nothing.
    assert (await request_redelivery(db_pool, tenant_id=tenant["id"], delivery_id=delivery_id)).round == 0
    await record_attempt(db_pool, record=attempt(delivery_id, outcome="delivered", status_code=200), failing_after_s=86400)
    first = await request_redelivery(db_pool, tenant_id=tenant["id"], delivery_id=delivery_id)
    second = await request_redelivery(db_pool, tenant_id=tenant["id"], delivery_id=delivery_id)
    assert first.round == second.round == 1 and second.status is DeliveryStatus.PENDING
    [again] = await list_deliveries_to_start(db_pool, route=tenant["route"], limit=10)
    assert (again.delivery_id, again.round) == (delivery_id, 1)
    # A late attempt of the old round changes nothing of the new one.
    await record_attempt(db_pool, record=attempt(delivery_id, outcome="failed", status_code=400), failing_after_s=86400)
    assert (await get_delivery(db_pool, tenant_id=tenant["id"], delivery_id=delivery_id)).status is DeliveryStatus.PENDING
    with pytest.raises(WebhookDeliveryNotFound):
        await request_redelivery(db_pool, tenant_id=f"ten_other{unique_id}", delivery_id=delivery_id)


async def test_deleting_an_endpoint_forgets_its_secrets_and_cancels_what_is_pending(db_pool, tenant):
    delivery_id, endpoint_id = await _one_delivery(db_pool, tenant)
    await delete_endpoint(db_pool, tenant_id=tenant["id"], endpoint_id=endpoint_id)
    assert await db_pool.fetchval("SELECT count(*) FROM webhook_signing_secrets WHERE owner_id = $1", endpoint_id) == 0
    context = await load_attempt_context(db_pool, secret_box=BOX, delivery_id=delivery_id)
    assert not context.endpoint_usable and context.secrets == []
    with pytest.raises(WebhookEndpointNotFound):
        await delete_endpoint(db_pool, tenant_id=tenant["id"], endpoint_id=endpoint_id)


async def test_a_malformed_notify_url_never_stalls_the_queue(db_pool, tenant):
    endpoint = (await new_endpoint(db_pool, tenant["id"])).endpoint
    too_long = await insert_event(db_pool, tenant_id=tenant["id"], data={"notify_url": "https://x.example.com/" + "a" * 5000})
    not_text = await insert_event(db_pool, tenant_id=tenant["id"], data={"notify_url": {"url": "https://x.example.com/"}})
    assert await fan_out_events(db_pool, secret_box=BOX, route=tenant["route"], batch_size_max=10) == 2
    rows = await db_pool.fetch("SELECT event_id, endpoint_id FROM webhook_deliveries WHERE tenant_id = $1", tenant["id"])
    # Both still reach the registered endpoint; neither creates a notify_url delivery.
    assert {(r["event_id"], r["endpoint_id"]) for r in rows} == {(too_long, endpoint.id), (not_text, endpoint.id)}


class CountingConnection:
    """A pool that counts the statements sent through it: what an N+1 would multiply."""

    def __init__(self, pool) -> None:
        self._pool = pool
        self.statements: list[str] = []

    async def fetch(self, query: str, *args):
        self.statements.append(query)
        return await self._pool.fetch(query, *args)

    async def fetchrow(self, query: str, *args):
        self.statements.append(query)
        return await self._pool.fetchrow(query, *args)

    async def fetchval(self, query: str, *args):
        self.statements.append(query)
        return await self._pool.fetchval(query, *args)


async def test_a_page_of_deliveries_and_their_attempts_is_two_queries_however_long(db_pool, tenant):
    endpoint = (await new_endpoint(db_pool, tenant["id"])).endpoint
    event_ids = [await insert_event(db_pool, tenant_id=tenant["id"]) for _ in range(12)]
    await fan_out_events(db_pool, secret_box=BOX, route=tenant["route"], batch_size_max=100)
    # Delivery i has i attempts: none, a few, and more than a page's worth of them.
    for index, event_id in enumerate(event_ids):
        for number in range(1, index + 1):
            await record_attempt(
                db_pool,
                record=attempt(f"whd_{event_id}_{endpoint.id}", outcome="retry", status_code=500 + number % 4, attempt_number=number),
                failing_after_s=86400 * 30,
            )
    counting = CountingConnection(db_pool)
    page = await list_deliveries_with_attempts(
        counting, tenant_id=tenant["id"], page=PageRequest(limit=100), attempts_per_delivery_max=10, endpoint_id=endpoint.id
    )
    assert len(counting.statements) == 2, counting.statements
    assert not page.has_more and len(page.items) == 12
    by_event = {item.delivery.event_id: item for item in page.items}
    for index, event_id in enumerate(event_ids):
        item = by_event[event_id]
        assert item.delivery.endpoint_kind == "endpoint" and item.delivery.attempts_count == index
        # Newest first, at most ten, and whether older ones exist.
        assert [a.attempt_number for a in item.attempts] == list(range(index, max(index - 10, 0), -1))
        assert item.attempts_has_more == (index > 10)
        assert all(a.delivery_id == item.delivery.id for a in item.attempts)
    # A cursor adds its own lookup, never one query per delivery.
    counting = CountingConnection(db_pool)
    first = await list_deliveries_with_attempts(
        counting, tenant_id=tenant["id"], page=PageRequest(limit=5), attempts_per_delivery_max=3, event_id=None
    )
    second = await list_deliveries_with_attempts(
        counting, tenant_id=tenant["id"], page=PageRequest(limit=5, starting_after=first.items[-1].delivery.id), attempts_per_delivery_max=3
    )
    assert len(counting.statements) == 2 + 3 and first.has_more and second.has_more
    assert not {i.delivery.id for i in first.items} & {i.delivery.id for i in second.items}
    # Another tenant sees none of them.
    other = await list_deliveries_with_attempts(
        db_pool, tenant_id=tenant["id"] + "x", page=PageRequest(limit=100), attempts_per_delivery_max=10
    )
    assert other.items == []


async def test_require_event_sees_the_tenants_own_events_only(db_pool, tenant):
    event_id = await insert_event(db_pool, tenant_id=tenant["id"])
    await require_event(db_pool, tenant_id=tenant["id"], event_id=event_id)
    with pytest.raises(EventNotFound):
        await require_event(db_pool, tenant_id=tenant["id"] + "x", event_id=event_id)
    with pytest.raises(EventNotFound):
        await require_event(db_pool, tenant_id=tenant["id"], event_id=event_id + "0")


async def test_the_first_notify_secret_has_no_previous_one_to_overlap(db_pool, tenant):
    first = await rotate_notify_secret(db_pool, secret_box=BOX, tenant_id=tenant["id"], overlap_s=3600)
    assert first.previous_expires_at is None
    second = await rotate_notify_secret(db_pool, secret_box=BOX, tenant_id=tenant["id"], overlap_s=3600)
    assert second.previous_expires_at is not None
    rows = await db_pool.fetch("SELECT expires_at FROM webhook_signing_secrets WHERE owner_kind = 'tenant' AND owner_id = $1", tenant["id"])
    assert sorted(row["expires_at"] is None for row in rows) == [False, True]


async def test_a_notify_url_that_answered_410_gets_no_more_deliveries_from_old_events(db_pool, tenant):
    url = "https://shop.example.com/gone"
    await insert_event(db_pool, tenant_id=tenant["id"], data={"id": "pi_1", "notify_url": url})
    await fan_out_events(db_pool, secret_box=BOX, route=tenant["route"], batch_size_max=10)
    [delivery] = await list_deliveries_to_start(db_pool, route=tenant["route"], limit=10)
    await record_attempt(db_pool, record=attempt(delivery.delivery_id, outcome="gone", status_code=410), failing_after_s=86400)
    # The dispatcher never enables it again on its own: only a new object naming the URL does (the API).
    later = await insert_event(db_pool, tenant_id=tenant["id"], data={"id": "pi_1", "notify_url": url})
    await fan_out_events(db_pool, secret_box=BOX, route=tenant["route"], batch_size_max=10)
    assert await db_pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE event_id = $1", later) == 0
    status = await db_pool.fetchval("SELECT status FROM webhook_endpoints WHERE tenant_id = $1 AND kind = 'notify_url'", tenant["id"])
    assert status == "disabled"
