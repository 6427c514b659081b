"""Webhook delivery end to end on the real stack: events inserted in PostgreSQL, the dispatcher
and delivery workflows on Temporal (an in-process worker on a fresh task queue), signed POSTs to
a real receiver on 127.0.0.1 that verifies them with the Standard Webhooks package. The retry
schedule is the real one's shape in fractions of a second; the full one runs under time skipping
in test_webhook_schedule.py."""

from __future__ import annotations

import asyncio
import json
import time

from prometheus_client import REGISTRY

from db.webhook_deliveries import list_attempts, list_deliveries, request_redelivery
from db.webhook_endpoints import rotate_endpoint_secret
from db.webhook_secrets import rotate_notify_secret
from domain.pagination import PageRequest
from domain.webhooks import DeliveryStatus, EndpointStatus
from tests.webhooks_receiver import Reply, WebhookReceiver, fast_settings, webhook_test_bed


def metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def delivery_id(event_id: str, endpoint_id: str) -> str:
    return f"whd_{event_id}_{endpoint_id}"


async def attempts_of(bed, delivery: str):
    page = await list_attempts(bed.pool, tenant_id=bed.tenant_id, delivery_id=delivery, page=PageRequest(limit=100))
    return list(reversed(page.items))


async def test_an_event_is_delivered_signed_and_verified(temporal_client, db_pool, unique_id):
    delivered_before = metric("settle_webhook_deliveries_total", outcome="delivered")
    latency_count_before = metric("settle_webhook_event_to_delivered_seconds_count")
    async with WebhookReceiver() as receiver, webhook_test_bed(temporal_client, db_pool, unique_id=unique_id) as bed:
        created = await bed.create_endpoint(receiver.url("orders"), events=["payment_intent.succeeded"])
        receiver.expect("orders", secrets=[created.secret])
        event_id = await bed.insert_event(data={"id": "pi_1", "object": "payment_intent", "amount": "1000000", "memo": "café ☕"})
        skipped = await bed.insert_event(event_type="payment_intent.canceled")  # not subscribed
        delivery = await bed.wait_delivery(delivery_id(event_id, created.endpoint.id), timeout_s=20)

        assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts_count == 1
        [request] = receiver.requests("orders")
        assert request.verified and request.webhook_id == event_id
        assert request.headers["content-type"] == "application/json"
        assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
        envelope = json.loads(request.body)
        assert envelope["id"] == event_id and envelope["type"] == "payment_intent.succeeded"
        assert envelope["tenant"] == bed.tenant_id and envelope["object"] == "event" and envelope["api_version"]
        assert envelope["data"]["object"] == {"id": "pi_1", "object": "payment_intent", "amount": "1000000", "memo": "café ☕"}
        assert isinstance(envelope["created"], int)
        [attempt] = await attempts_of(bed, delivery.id)
        assert attempt.status_code == 200 and attempt.outcome == "delivered" and attempt.error is None
        assert attempt.response_body == "ok" and attempt.latency_ms >= 0
        assert attempt.webhook_timestamp == int(request.headers["webhook-timestamp"])
        page = await list_deliveries(bed.pool, tenant_id=bed.tenant_id, page=PageRequest(limit=10), event_id=skipped)
        assert page.items == []
    assert metric("settle_webhook_deliveries_total", outcome="delivered") >= delivered_before + 1
    assert metric("settle_webhook_event_to_delivered_seconds_count") >= latency_count_before + 1


async def test_500s_then_200_is_retried_with_the_same_webhook_id(temporal_client, db_pool, unique_id):
    async with WebhookReceiver() as receiver, webhook_test_bed(temporal_client, db_pool, unique_id=unique_id) as bed:
        created = await bed.create_endpoint(receiver.url("flaky"))
        receiver.expect("flaky", secrets=[created.secret], replies=[Reply(500, body="boom"), Reply(503), Reply(429, headers={"retry-after": "1"})])
        event_id = await bed.insert_event()
        delivery = await bed.wait_delivery(delivery_id(event_id, created.endpoint.id), timeout_s=30)
        assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts_count == 4
        requests = receiver.requests("flaky")
        assert [r.status for r in requests] == [500, 503, 429, 200]
        assert {r.webhook_id for r in requests} == {event_id} and all(r.verified for r in requests)
        # Same bytes on every retry; a fresh timestamp and signature each time.
        assert len({r.body for r in requests}) == 1
        attempts = await attempts_of(bed, delivery.id)
        assert [(a.attempt_number, a.status_code, a.outcome) for a in attempts] == [
            (1, 500, "retry"),
            (2, 503, "retry"),
            (3, 429, "retry"),
            (4, 200, "delivered"),
        ]
        assert attempts[0].response_body == "boom"
        # Retry-After: 1 stretched the 0.3 s delay to at least a second.
        assert requests[3].received_at - requests[2].received_at >= 0.95


async def test_receiver_down_for_a_while_then_up_gets_each_event_once(temporal_client, db_pool, unique_id):
    settings = fast_settings(retry_delays_s=[0.3] * 8)
    async with WebhookReceiver() as receiver, webhook_test_bed(temporal_client, db_pool, unique_id=unique_id, settings=settings) as bed:
        created = await bed.create_endpoint(receiver.url("down"))
        receiver.expect("down", secrets=[created.secret])
        await receiver.down()
        event_ids = [await bed.insert_event() for _ in range(3)]
        deliveries = [delivery_id(e, created.endpoint.id) for e in event_ids]

        async def refused_attempts() -> int:
            return await bed.pool.fetchval(
                "SELECT count(*) FROM webhook_attempts WHERE delivery_id = ANY($1::text[]) AND error LIKE 'network:%'", deliveries
            )

        deadline = time.monotonic() + 15
        while await refused_attempts() < 6 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await refused_attempts() >= 6  # every event failed at least twice while down
        await receiver.up()
        for delivery in deliveries:
            assert (await bed.wait_delivery(delivery, timeout_s=20)).status is DeliveryStatus.DELIVERED
        accepted = [r.webhook_id for r in receiver.accepted("down")]
        assert sorted(accepted) == sorted(event_ids)  # each once


async def test_timeouts_are_retried(temporal_client, db_pool, unique_id):
    settings = fast_settings(read_timeout_s=0.5, request_timeout_s=1.0)
    async with WebhookReceiver() as receiver, webhook_test_bed(temporal_client, db_pool, unique_id=unique_id, settings=settings) as bed:
        created = await bed.create_endpoint(receiver.url("slow"))
        receiver.expect("slow", secrets=[created.secret], replies=[Reply(200, delay_s=1.5)])
        event_id = await bed.insert_event()
        delivery = await bed.wait_delivery(delivery_id(event_id, created.endpoint.id), timeout_s=20)
        assert delivery.status is DeliveryStatus.DELIVERED
        attempts = await attempts_of(bed, delivery.id)
        assert [a.outcome for a in attempts] == ["retry", "delivered"]
        assert attempts[0].status_code is None and attempts[0].error.startswith("timeout")
        assert 400 <= attempts[0].latency_ms < 1400


async def test_410_and_400_are_not_retried_and_410_disables_the_endpoint(temporal_client, db_pool, unique_id):
    async with WebhookReceiver() as receiver, webhook_test_bed(temporal_client, db_pool, unique_id=unique_id) as bed:
        gone = await bed.create_endpoint(receiver.url("gone"))
        bad = await bed.create_endpoint(receiver.url("bad"))
        redirect = await bed.create_endpoint(receiver.url("redirect"))
        receiver.expect("gone", secrets=[gone.secret], replies=[Reply(410)])
        receiver.expect("bad", secrets=[bad.secret], replies=[Reply(400, body="no such order")])
        receiver.expect("redirect", secrets=[redirect.secret], replies=[Reply(302, headers={"location": receiver.url("elsewhere")})])
        event_id = await bed.insert_event()
        for endpoint in (gone, bad, redirect):
            delivery = await bed.wait_delivery(delivery_id(event_id, endpoint.endpoint.id), timeout_s=20)
            assert delivery.status is DeliveryStatus.FAILED and delivery.attempts_count == 1
        await asyncio.sleep(1.0)  # longer than the retry delays: nothing more comes

        def answers(path: str) -> list[int]:
            return [r.status for r in receiver.requests(path) if r.webhook_id == event_id]

        assert answers("gone") == [410] and answers("bad") == [400] and answers("redirect") == [302]
        assert receiver.requests("elsewhere") == []  # redirects are never followed
        endpoint_status = await bed.pool.fetchval("SELECT status FROM webhook_endpoints WHERE id = $1", gone.endpoint.id)
        assert endpoint_status == EndpointStatus.DISABLED
        assert await bed.pool.fetchval("SELECT status FROM webhook_endpoints WHERE id = $1", bad.endpoint.id) == "enabled"
        # The tenant is told, through its remaining endpoints.
        disabled_event = await bed.pool.fetchval(
            "SELECT id FROM events WHERE tenant_id = $1 AND type = 'webhook_endpoint.disabled'", bed.tenant_id
        )
        assert disabled_event is not None
        await bed.wait_delivery(delivery_id(disabled_event, bad.endpoint.id), timeout_s=20)
        assert [json.loads(r.body)["type"] for r in receiver.requests("bad")][-1] == "webhook_endpoint.disabled"
        assert (
            await bed.pool.fetchval(
                "SELECT count(*) FROM webhook_deliveries WHERE event_id = $1 AND endpoint_id = $2", disabled_event, gone.endpoint.id
            )
            == 0
        )


async def test_secret_rotation_sends_both_signatures_during_the_overlap(temporal_client, db_pool, unique_id):
    async with WebhookReceiver() as receiver, webhook_test_bed(temporal_client, db_pool, unique_id=unique_id) as bed:
        created = await bed.create_endpoint(receiver.url("rotating"))
        rotated = await rotate_endpoint_secret(
            bed.pool, secret_box=bed.secret_box, tenant_id=bed.tenant_id, endpoint_id=created.endpoint.id, overlap_s=3600
        )
        receiver.expect("rotating", secrets=[created.secret, rotated.secret])
        event_id = await bed.insert_event()
        await bed.wait_delivery(delivery_id(event_id, created.endpoint.id), timeout_s=20)
        [request] = receiver.requests("rotating")
        # A receiver still on the old secret and one already on the new both accept it.
        assert request.verified_with == [0, 1] and len(request.signatures) == 2
        # After an overlap of 0, only the new secret signs.
        latest = await rotate_endpoint_secret(
            bed.pool, secret_box=bed.secret_box, tenant_id=bed.tenant_id, endpoint_id=created.endpoint.id, overlap_s=0
        )
        receiver.set_secrets("rotating", [created.secret, rotated.secret, latest.secret])
        second = await bed.insert_event()
        await bed.wait_delivery(delivery_id(second, created.endpoint.id), timeout_s=20)
        assert receiver.requests("rotating")[-1].verified_with == [2] and len(receiver.requests("rotating")[-1].signatures) == 1


async def test_redelivery_sends_the_same_webhook_id_again_once(temporal_client, db_pool, unique_id):
    async with WebhookReceiver() as receiver, webhook_test_bed(temporal_client, db_pool, unique_id=unique_id) as bed:
        created = await bed.create_endpoint(receiver.url("again"))
        receiver.expect("again", secrets=[created.secret])
        event_id = await bed.insert_event()
        delivery = delivery_id(event_id, created.endpoint.id)
        await bed.wait_delivery(delivery, timeout_s=20)
        first = await request_redelivery(bed.pool, tenant_id=bed.tenant_id, delivery_id=delivery)
        second = await request_redelivery(bed.pool, tenant_id=bed.tenant_id, delivery_id=delivery)
        assert first.round == second.round == 1
        await receiver.wait_for(lambda: len(receiver.requests("again")) >= 2, timeout_s=20, what="the redelivery")
        redelivered = await bed.wait_delivery(delivery, timeout_s=20)
        assert redelivered.status is DeliveryStatus.DELIVERED and redelivered.round == 1
        await asyncio.sleep(0.5)
        assert [r.webhook_id for r in receiver.requests("again")] == [event_id, event_id]


async def test_notify_url_of_an_object_is_delivered_with_the_tenant_notify_secret(temporal_client, db_pool, unique_id):
    async with WebhookReceiver() as receiver, webhook_test_bed(temporal_client, db_pool, unique_id=unique_id) as bed:
        notify = await rotate_notify_secret(bed.pool, secret_box=bed.secret_box, tenant_id=bed.tenant_id, overlap_s=0)
        receiver.expect("ipn", secrets=[notify.secret])
        event_id = await bed.insert_event(data={"id": "pi_9", "object": "payment_intent", "notify_url": receiver.url("ipn")})
        await receiver.wait_for(lambda: receiver.accepted("ipn"), timeout_s=20, what="the notify_url delivery")
        assert receiver.accepted("ipn")[0].webhook_id == event_id


async def test_a_slow_endpoint_never_delays_another_tenant(temporal_client, db_pool, unique_id):
    settings = fast_settings(endpoint_requests_max=2, endpoint_waiting_max=2, slot_wait_s=0.3, read_timeout_s=10, request_timeout_s=10)
    release = asyncio.Event()
    async with WebhookReceiver() as receiver, webhook_test_bed(
        temporal_client, db_pool, unique_id=unique_id, settings=settings, max_concurrent_activities=8
    ) as bed:
        slow = await bed.create_endpoint(receiver.url("slow"))
        receiver.expect("slow", secrets=[slow.secret], replies=[Reply(200, hold=release, hold_s=15) for _ in range(12)])
        other_tenant = f"ten_whother{unique_id}"
        await bed.add_tenant(other_tenant)
        fast = await bed.create_endpoint(receiver.url("fast"), tenant_id=other_tenant)
        receiver.expect("fast", secrets=[fast.secret])
        try:
            slow_events = [await bed.insert_event() for _ in range(12)]
            # The slow endpoint takes its two request slots and holds them.
            await receiver.wait_for(lambda: len(receiver.requests("slow")) >= 2, timeout_s=20, what="the slow endpoint's requests")
            await asyncio.sleep(0.5)
            started = time.monotonic()
            fast_events = [await bed.insert_event(tenant_id=other_tenant) for _ in range(3)]
            for event_id in fast_events:
                delivery = await bed.wait_delivery(delivery_id(event_id, fast.endpoint.id), timeout_s=10, tenant_id=other_tenant)
                assert delivery.status is DeliveryStatus.DELIVERED
            assert time.monotonic() - started < 3.0, "the other tenant waited for the slow endpoint"
            # Meanwhile the slow endpoint never had more than its two requests in flight.
            assert len(receiver.requests("slow")) == 2
        finally:
            release.set()
        for event_id in slow_events:
            delivery = await bed.wait_delivery(delivery_id(event_id, slow.endpoint.id), timeout_s=30)
            assert delivery.status is DeliveryStatus.DELIVERED
        assert sorted(r.webhook_id for r in receiver.accepted("slow")) == sorted(slow_events)


async def test_large_responses_are_truncated_in_the_log(temporal_client, db_pool, unique_id):
    async with WebhookReceiver() as receiver, webhook_test_bed(temporal_client, db_pool, unique_id=unique_id) as bed:
        created = await bed.create_endpoint(receiver.url("chatty"))
        receiver.expect("chatty", secrets=[created.secret], replies=[Reply(500, body="E" * 200_000)])
        event_id = await bed.insert_event()
        delivery = await bed.wait_delivery(delivery_id(event_id, created.endpoint.id), timeout_s=20)
        first = (await attempts_of(bed, delivery.id))[0]
        assert first.status_code == 500 and len(first.response_body) < 1100 and "more characters" in first.response_body
