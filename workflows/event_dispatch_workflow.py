"""EventDispatchWorkflow: the long-running bridge from the events table (the outbox) to the
deliveries. Its activity takes queued events (a trigger queues every inserted event in the same
transaction), creates one delivery per (event, endpoint) and starts one WebhookDeliveryWorkflow
per delivery under a deterministic id, then marks it started. A worker dying anywhere in between
repeats work and never loses it: the queue row goes with the fan-out, the start is idempotent by
id, and a delivery whose start was not marked is started (or found started) again.

One dispatcher per route: 'default' serves every tenant without a dedicated route. It continues
as new before its history grows large.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy, WorkflowIDConflictPolicy

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import ClaimWebhookDeliveriesInput, WebhookActivities

from workflows.retry_policies import NEVER_RETRIED
from workflows.search_attributes import SETTLE_KIND
from workflows.webhook_delivery_workflow import WebhookDeliveryWorkflow

KIND = "webhook_dispatch"
CLAIM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    # The dispatcher must outlive any outage of the database: unlimited, with a capped backoff.
    maximum_attempts=0,
    non_retryable_error_types=NEVER_RETRIED,
)


@dataclass
class EventDispatchInput:
    route: str = "default"
    batch_size_max: int = 100
    # The activity waits for work this long before returning; short values suit tests.
    wait_s: float = 20.0
    heartbeat_timeout_s: float = 15.0
    # Claims per run before continuing as new (the history stays small either way).
    claims_per_run_max: int = 1000


def dispatcher_workflow_id(route: str) -> str:
    return f"webhook-dispatch-{route}"


@workflow.defn
class EventDispatchWorkflow:
    def __init__(self) -> None:
        self._claims = 0
        self._workflows_started = 0

    @workflow.run
    async def run(self, input: EventDispatchInput) -> None:
        workflow.upsert_search_attributes([SETTLE_KIND.value_set(KIND)])
        assert input.claims_per_run_max >= 1
        for _ in range(input.claims_per_run_max):
            result = await workflow.execute_activity_method(
                WebhookActivities.claim_webhook_deliveries,
                ClaimWebhookDeliveriesInput(route=input.route, batch_size_max=input.batch_size_max, wait_s=input.wait_s),
                start_to_close_timeout=timedelta(seconds=input.wait_s + 120),
                heartbeat_timeout=timedelta(seconds=input.heartbeat_timeout_s),
                retry_policy=CLAIM_RETRY,
            )
            self._claims += 1
            self._workflows_started += result.workflows_started
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(input)

    @workflow.query
    def workflows_started(self) -> int:
        return self._workflows_started


WEBHOOK_WORKFLOWS: list = [EventDispatchWorkflow, WebhookDeliveryWorkflow]


async def start_event_dispatcher(client: Client, *, task_queue: str, route: str = "default", **options) -> str:
    """Start the route's dispatcher unless it runs already (safe on every worker start).
    Returns its workflow id."""
    workflow_id = dispatcher_workflow_id(route)
    await client.start_workflow(
        EventDispatchWorkflow.run,
        EventDispatchInput(route=route, **options),
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return workflow_id
