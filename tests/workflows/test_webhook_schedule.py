"""The full Standard Webhooks retry schedule (ten attempts over about three days) under the
Temporal test server's time skipping: the timers are real durable timers, skipped in moments.
The attempts are real ones: the real activities, PostgreSQL, and a receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from activities.webhooks import WebhookDeliveryInput
from db.secret_box import SecretBox
from db.webhook_deliveries import get_delivery
from db.webhook_dispatch import fan_out_events, list_deliveries_to_start
from domain.webhooks import RETRY_AFTER_MAX_S, RETRY_DELAYS_S
from tests.webhooks_receiver import Reply, WebhookReceiver, WebhookTestBed, fast_settings, webhook_worker
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES
from workflows.webhook_delivery_workflow import WebhookDeliveryWorkflow

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"


async def _prepare(db_pool, unique_id: str, receiver: WebhookReceiver, replies: list[Reply]) -> tuple[WebhookTestBed, str, WebhookDeliveryInput]:
    settings = fast_settings(retry_delays_s=list(RETRY_DELAYS_S))
    bed = WebhookTestBed(
        client=None, pool=db_pool, tenant_id=f"ten_whsk{unique_id}", route=f"test-{unique_id}", task_queue=f"skip-{unique_id}", settings=settings
    )
    await bed.add_tenant(bed.tenant_id)
    created = await bed.create_endpoint(receiver.url("hook"))
    receiver.expect("hook", secrets=[created.secret], replies=replies)
    event_id = await bed.insert_event()
    await fan_out_events(db_pool, secret_box=SecretBox(settings.secret_encryption_keys()), route=bed.route, batch_size_max=10)
    [delivery] = await list_deliveries_to_start(db_pool, route=bed.route, limit=10)
    workflow_input = WebhookDeliveryInput(
        delivery_id=delivery.delivery_id,
        tenant_id=bed.tenant_id,
        event_id=event_id,
        endpoint_id=created.endpoint.id,
        retry_delays_s=list(RETRY_DELAYS_S),
        heartbeat_timeout_s=10,
    )
    return bed, event_id, workflow_input


async def _run(bed: WebhookTestBed, workflow_input: WebhookDeliveryInput):
    async with await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(TEST_SERVER)) as env:
        # The workflow files itself under Settle's search attributes, as on the dev server.
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in ALL_SEARCH_ATTRIBUTES},
            )
        )
        async with webhook_worker(env.client, bed.pool, task_queue=bed.task_queue, settings=bed.settings):
            handle = await env.client.start_workflow(
                WebhookDeliveryWorkflow.run, workflow_input, id=workflow_input.delivery_id, task_queue=bed.task_queue
            )
            result = await asyncio.wait_for(handle.result(), timeout=60)
            timers = [
                event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
                async for event in handle.fetch_history_events()
                if event.HasField("timer_started_event_attributes")
            ]
    return result, timers


async def test_the_full_schedule_runs_in_moments_and_ends_failed(db_pool, unique_id):
    started = time.monotonic()
    async with WebhookReceiver() as receiver:
        bed, event_id, workflow_input = await _prepare(db_pool, unique_id, receiver, [Reply(500)] * 10)
        result, timers = await _run(bed, workflow_input)
        assert result.status == "failed" and result.attempts == 10 and result.last_status_code == 500
        # Nine waits, each the specification's delay +-10% jitter, and not all the same draw.
        assert len(timers) == 9
        for waited, scheduled in zip(timers, RETRY_DELAYS_S):
            assert scheduled * 0.9 - 0.001 <= waited <= scheduled * 1.1 + 0.001, (waited, scheduled)
        assert len({round(w / s, 6) for w, s in zip(timers, RETRY_DELAYS_S)}) > 1
        assert 2.9 * 86400 < sum(timers) < 3.5 * 86400  # about three days
        # Ten real requests, one webhook-id, every one signed fresh and verified.
        requests = receiver.requests("hook")
        assert len(requests) == 10 and {r.webhook_id for r in requests} == {event_id} and all(r.verified for r in requests)
        delivery = await get_delivery(db_pool, tenant_id=bed.tenant_id, delivery_id=workflow_input.delivery_id)
        assert delivery.status.value == "failed" and delivery.attempts_count == 10 and delivery.next_attempt_at is None
        numbers = await db_pool.fetch(
            "SELECT attempt_number, outcome FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt_number", delivery.id
        )
        assert [(r["attempt_number"], r["outcome"]) for r in numbers] == [(n, "retry") for n in range(1, 10)] + [(10, "failed")]
    assert time.monotonic() - started < 60  # three days, skipped


async def test_retry_after_is_honoured_and_capped(db_pool, unique_id):
    async with WebhookReceiver() as receiver:
        replies = [Reply(503, headers={"retry-after": "7200"}), Reply(429, headers={"retry-after": str(30 * 86400)}), Reply(200)]
        bed, _event_id, workflow_input = await _prepare(db_pool, unique_id, receiver, replies)
        result, timers = await _run(bed, workflow_input)
        assert result.status == "delivered" and result.attempts == 3
        # 5 s stretched to the receiver's 2 h; 5 min stretched to the 24 h cap, not 30 days.
        assert timers == [7200.0, RETRY_AFTER_MAX_S]
