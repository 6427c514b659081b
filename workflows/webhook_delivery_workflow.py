"""WebhookDeliveryWorkflow: one (event, endpoint) delivery round, attempt after attempt on the
Standard Webhooks schedule (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h,
jittered, stretched to `Retry-After`), over days if need be, on durable timers.

Its id is the delivery's (`whd_<event id>_<endpoint id>`, `_r<n>` for redelivery round n), so a
dispatcher that starts it twice starts it once. Every attempt carries the same `webhook-id` (the
event id): receivers dedupe on it. When the endpoint is busy (its bounded concurrency is taken),
the workflow waits on a timer, holding no worker slot, and asks again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import (
        DELIVERY_WORKFLOW_NAME,
        AttemptWebhookDeliveryInput,
        AttemptWebhookDeliveryResult,
        WebhookActivities,
        WebhookDeliveryInput,
    )
    from domain.errors import WEBHOOK_DELIVERY_NOT_FOUND
    from domain.webhooks import THROTTLED_WAITS_PER_ATTEMPT_MAX, AttemptKind, DeliveryRunStatus

from workflows.retry_policies import NEVER_RETRIED
from workflows.search_attributes import SETTLE_KIND, SETTLE_STATUS, SETTLE_TENANT

__all__ = ["WebhookDeliveryInput", "WebhookDeliveryResult", "WebhookDeliveryState", "WebhookDeliveryWorkflow"]

KIND = "webhook_delivery"
# Infrastructure failures (the database down) are retried for hours; HTTP outcomes never raise.
ATTEMPT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=100,
    non_retryable_error_types=[WEBHOOK_DELIVERY_NOT_FOUND, *NEVER_RETRIED],
)


@dataclass
class WebhookDeliveryResult:
    delivery_id: str
    round: int
    status: str  # DeliveryStatus: delivered, failed or cancelled
    attempts: int
    last_status_code: int | None
    last_error: str | None


@dataclass
class WebhookDeliveryState:
    status: str  # DeliveryRunStatus
    attempt_number: int
    throttled_waits: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_in_s: float | None


# Not sandboxed: one run per (event, endpoint) makes this the most numerous workflow, and building
# a sandbox per run cost ~40% more worker CPU and doubled event-to-2xx latency in bench/webhooks.py.
# It stays deterministic by construction: no I/O, time only from workflow.sleep, randomness only
# from workflow.random(), and it imports nothing but temporalio, the activity types and domain.
@workflow.defn(name=DELIVERY_WORKFLOW_NAME, sandboxed=False)
class WebhookDeliveryWorkflow:
    def __init__(self) -> None:
        self._state = WebhookDeliveryState(
            status=DeliveryRunStatus.PENDING.value, attempt_number=0, throttled_waits=0, last_status_code=None, last_error=None, next_attempt_in_s=None
        )

    @workflow.run
    async def run(self, input: WebhookDeliveryInput) -> WebhookDeliveryResult:
        workflow.upsert_search_attributes(
            [SETTLE_KIND.value_set(KIND), SETTLE_TENANT.value_set(input.tenant_id), SETTLE_STATUS.value_set(DeliveryRunStatus.PENDING.value)]
        )
        state = self._state
        attempts_max = 1 + len(input.retry_delays_s)
        attempt_number = 1
        throttled_waits = 0
        result: AttemptWebhookDeliveryResult | None = None
        while True:
            assert attempt_number <= attempts_max
            state.attempt_number = attempt_number
            state.throttled_waits = throttled_waits
            state.status = DeliveryRunStatus.ATTEMPTING.value
            result = await workflow.execute_activity_method(
                WebhookActivities.attempt_webhook_delivery,
                AttemptWebhookDeliveryInput(
                    delivery_id=input.delivery_id,
                    endpoint_id=input.endpoint_id,
                    round=input.round,
                    attempt_number=attempt_number,
                    retry_delays_s=input.retry_delays_s,
                    jitter_fraction=input.jitter_fraction,
                    jitter_unit=workflow.random().random(),
                    throttled_waits=throttled_waits,
                    throttle_exhausted=throttled_waits >= THROTTLED_WAITS_PER_ATTEMPT_MAX,
                ),
                start_to_close_timeout=timedelta(seconds=input.attempt_timeout_s),
                heartbeat_timeout=timedelta(seconds=input.heartbeat_timeout_s),
                retry_policy=ATTEMPT_RETRY,
            )
            if result.kind == AttemptKind.THROTTLED:
                assert result.retry_in_s is not None
                throttled_waits += 1
                state.status = DeliveryRunStatus.WAITING_FOR_SLOT.value
                state.next_attempt_in_s = result.retry_in_s
                await workflow.sleep(timedelta(seconds=result.retry_in_s))
                continue
            state.last_status_code = result.status_code
            state.last_error = result.error
            if result.kind != AttemptKind.RETRY:
                break
            assert result.retry_in_s is not None and attempt_number < attempts_max
            state.status = DeliveryRunStatus.RETRYING.value
            state.next_attempt_in_s = result.retry_in_s
            await workflow.sleep(timedelta(seconds=result.retry_in_s))
            attempt_number += 1
            throttled_waits = 0
        state.status = result.kind
        state.next_attempt_in_s = None
        workflow.upsert_search_attributes([SETTLE_STATUS.value_set(result.kind)])
        return WebhookDeliveryResult(
            delivery_id=input.delivery_id,
            round=input.round,
            status=result.kind,
            attempts=attempt_number,
            last_status_code=result.status_code,
            last_error=result.error,
        )

    @workflow.query
    def state(self) -> WebhookDeliveryState:
        return self._state
