"""Webhook delivery's side effects: fanning queued events out into deliveries and starting one
workflow per delivery, and sending one signed attempt.

Sending: the body is the event's canonical envelope; the headers follow Standard Webhooks
(signed with the specification's own package, every live secret of the endpoint, so a rotation's
overlap carries both signatures). The request goes through the SSRF-guarded client
(activities.webhook_transport). Redirects are never followed; connect, read and whole-request
timeouts are explicit; response bodies are read up to a bound and truncated when logged.
Concurrency is bounded per endpoint and worker (activities.webhook_slots).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator, Awaitable, TypeVar

import asyncpg
import httpx
from prometheus_client import Counter, Histogram
from standardwebhooks.webhooks import Webhook
from temporalio import activity
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities.webhook_slots import EndpointSlots
from activities.webhook_transport import GuardedClient, TargetBlocked, webhook_timeout
from db.secret_box import SecretBox
from db.webhook_attempts import AttemptRecord, cancel_delivery, load_attempt_context, record_attempt
from db.webhook_dispatch import NOTIFY_CHANNEL, DeliveryToStart, fan_out_events, list_deliveries_to_start, mark_deliveries_started
from db.settings import WebhookSettings, get_settings
from domain.webhooks import (
    DELIVERY_STATUSES_FINAL,
    JITTER_FRACTION,
    RETRY_DELAYS_S,
    RESPONSE_BODY_LOGGED_MAX,
    RESPONSE_BODY_STORED_MAX,
    Decision,
    DeliveryStatus,
    ErrorKind,
    WebhookRuleError,
    build_envelope,
    decide,
    delivery_workflow_id,
    envelope_body,
    parse_retry_after,
    parse_target_url,
    retry_delay_s,
    status_class,
    throttle_delay_s,
    truncate_text,
)

# The delivery workflow's registered name: the dispatch activity starts it by name (activities do
# not import workflows); workflows/webhook_delivery_workflow.py registers it under this name.
DELIVERY_WORKFLOW_NAME = "WebhookDeliveryWorkflow"
# Starting workflows for one batch: this many start calls in flight at once.
_STARTS_IN_FLIGHT_MAX = 32

T = TypeVar("T")

# ---------------------------------------------------------------------------- metrics
DELIVERIES = Counter("settle_webhook_deliveries_total", "Webhook deliveries that reached a final status.", ["outcome"])
ATTEMPTS = Counter(
    "settle_webhook_attempts_total",
    "Webhook HTTP attempts by result: 2xx/3xx/4xx/5xx, timeout, network, blocked, invalid_url, throttled.",
    ["result"],
)
EVENT_TO_DELIVERED = Histogram(
    "settle_webhook_event_to_delivered_seconds",
    "From an event's creation to its first 2xx, per (event, endpoint).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 36000, 86400, 259200),
)
ATTEMPT_LATENCY = Histogram(
    "settle_webhook_attempt_latency_seconds",
    "From sending a webhook to its response's headers (or the error).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


# ---------------------------------------------------------------------------- models
@dataclass
class WebhookDeliveryInput:
    """The delivery workflow's input (the dispatch activity starts it, so it lives here)."""

    delivery_id: str
    tenant_id: str
    event_id: str
    endpoint_id: str
    round: int = 0
    retry_delays_s: list[float] = field(default_factory=lambda: list(RETRY_DELAYS_S))
    jitter_fraction: float = JITTER_FRACTION
    # One attempt's whole time (request timeout plus reading and recording) and its heartbeat.
    attempt_timeout_s: float = 60.0
    heartbeat_timeout_s: float = 10.0


@dataclass
class ClaimWebhookDeliveriesInput:
    route: str = "default"
    batch_size_max: int = 100
    # Wait this long for work (NOTIFY, or a poll) when there is none; 0 returns at once.
    wait_s: float = 20.0


@dataclass
class ClaimWebhookDeliveriesResult:
    events_fanned_out: int
    workflows_started: int
    workflows_already_started: int


@dataclass
class AttemptWebhookDeliveryInput:
    delivery_id: str
    endpoint_id: str
    round: int
    attempt_number: int
    retry_delays_s: list[float]
    jitter_fraction: float
    # A uniform draw in [0, 1) from the workflow's deterministic random.
    jitter_unit: float
    # How many times this attempt already found the endpoint busy.
    throttled_waits: int = 0
    # Found busy too often: no more waiting, this attempt counts as failed.
    throttle_exhausted: bool = False


@dataclass
class AttemptWebhookDeliveryResult:
    # delivered | retry | failed | cancelled | throttled
    kind: str
    attempt_number: int
    retry_in_s: float | None = None
    status_code: int | None = None
    error: str | None = None


# ---------------------------------------------------------------------------- sending
@dataclass(frozen=True)
class _Response:
    status_code: int | None
    body: str | None
    retry_after: str | None
    error_kind: ErrorKind | None
    error: str | None
    latency_s: float


def sign_headers(*, secrets: list[bytes], message_id: str, timestamp_s: int, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers, signed by the specification's own package with every secret
    given (space-separated), so a receiver on either side of a rotation accepts the delivery."""
    assert secrets, "an endpoint without a signing secret is not usable"
    moment = datetime.fromtimestamp(timestamp_s, tz=timezone.utc)
    text = body.decode("utf-8")
    signatures = " ".join(Webhook(secret).sign(msg_id=message_id, timestamp=moment, data=text) for secret in secrets)
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": signatures,
    }


async def _heartbeating(awaitable: Awaitable[T], *, interval_s: float) -> T:
    """Await while heartbeating, so a worker that dies mid-request is noticed within the
    heartbeat timeout and the attempt retried elsewhere."""
    task = asyncio.ensure_future(awaitable)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval_s)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        if not task.done():
            task.cancel()


class WebhookActivities:
    def __init__(self, pool: asyncpg.Pool, http_client: httpx.AsyncClient, *, settings: WebhookSettings | None = None) -> None:
        self._settings = settings or get_settings().webhooks
        if not isinstance(http_client, GuardedClient):
            raise ValueError("webhook activities need the SSRF-guarded client of create_webhook_http_client()")
        if http_client.allow_private_targets != self._settings.allow_private_targets:
            raise ValueError("the http client's allow_private_targets differs from the settings'")
        self._pool = pool
        self._http = http_client
        self._secret_box = SecretBox(self._settings.secret_encryption_keys())
        self._slots = EndpointSlots(running_max=self._settings.endpoint_requests_max, waiting_max=self._settings.endpoint_waiting_max)

    # ------------------------------------------------------------------ dispatch
    @activity.defn
    async def claim_webhook_deliveries(self, input: ClaimWebhookDeliveriesInput) -> ClaimWebhookDeliveriesResult:
        """Fan queued events out into deliveries and start a workflow for each delivery round
        that has none. Waits up to `wait_s` for work (woken by NOTIFY), heartbeating."""
        settings = self._settings
        deadline = time.monotonic() + input.wait_s
        wake = asyncio.Event()
        async with self._listening(wake):
            while True:
                wake.clear()
                fanned_out = await fan_out_events(
                    self._pool, secret_box=self._secret_box, route=input.route, batch_size_max=input.batch_size_max
                )
                to_start = await list_deliveries_to_start(self._pool, route=input.route, limit=input.batch_size_max)
                if fanned_out or to_start or time.monotonic() >= deadline:
                    break
                activity.heartbeat()
                try:
                    await asyncio.wait_for(wake.wait(), timeout=min(settings.dispatch_poll_interval_s, max(deadline - time.monotonic(), 0)))
                except asyncio.TimeoutError:
                    pass
        started, already, failures = await self._start_delivery_workflows(to_start)
        # Only what is known to run is marked: a failed start is found and tried again.
        await mark_deliveries_started(self._pool, started=[(d.delivery_id, d.round) for d in to_start if d.delivery_id not in failures])
        if failures:
            delivery_id, error = next(iter(failures.items()))
            raise RuntimeError(f"{len(failures)} delivery workflows did not start, e.g. {delivery_id}: {error}") from error
        return ClaimWebhookDeliveriesResult(events_fanned_out=fanned_out, workflows_started=started, workflows_already_started=already)

    @asynccontextmanager
    async def _listening(self, wake: asyncio.Event) -> AsyncIterator[None]:
        def notified(*_args: Any) -> None:
            wake.set()

        async with self._pool.acquire() as connection:
            await connection.add_listener(NOTIFY_CHANNEL, notified)
            try:
                yield
            finally:
                await connection.remove_listener(NOTIFY_CHANNEL, notified)

    async def _start_delivery_workflows(self, to_start: list[DeliveryToStart]) -> tuple[int, int, dict[str, BaseException]]:
        client = activity.client()
        task_queue = activity.info().task_queue
        settings = self._settings
        gate = asyncio.Semaphore(_STARTS_IN_FLIGHT_MAX)
        counts = {"started": 0, "already": 0}

        async def start(delivery: DeliveryToStart) -> None:
            workflow_input = WebhookDeliveryInput(
                delivery_id=delivery.delivery_id,
                tenant_id=delivery.tenant_id,
                event_id=delivery.event_id,
                endpoint_id=delivery.endpoint_id,
                round=delivery.round,
                retry_delays_s=list(settings.retry_delays_s),
                jitter_fraction=settings.jitter_fraction,
                attempt_timeout_s=settings.request_timeout_s + 30.0,
                heartbeat_timeout_s=settings.attempt_heartbeat_timeout_s,
            )
            async with gate:
                try:
                    await client.start_workflow(
                        DELIVERY_WORKFLOW_NAME,
                        workflow_input,
                        id=delivery_workflow_id(delivery_id=delivery.delivery_id, round_number=delivery.round),
                        task_queue=task_queue,
                        # A closed delivery is never started again under its id: a redelivery is a
                        # new round with its own id.
                        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                        # This worker polls that task queue: its first task comes back with the
                        # start, sparing the server a dispatch round trip per delivery.
                        request_eager_start=True,
                    )
                    counts["started"] += 1
                except WorkflowAlreadyStartedError:
                    counts["already"] += 1

        outcomes = await _heartbeating(asyncio.gather(*(start(d) for d in to_start), return_exceptions=True), interval_s=1.0)
        failures = {d.delivery_id: outcome for d, outcome in zip(to_start, outcomes) if isinstance(outcome, BaseException)}
        return counts["started"], counts["already"], failures

    # ------------------------------------------------------------------ one attempt
    @activity.defn
    async def attempt_webhook_delivery(self, input: AttemptWebhookDeliveryInput) -> AttemptWebhookDeliveryResult:
        """One signed POST and its record. HTTP outcomes are results, never exceptions: only
        infrastructure failures (the database) raise, and Temporal retries those."""
        settings = self._settings
        wait_s = 0.0 if input.throttle_exhausted else settings.slot_wait_s
        async with self._slots.slot(input.endpoint_id, wait_s=wait_s) as acquired:
            if not acquired and not input.throttle_exhausted:
                ATTEMPTS.labels(result=str(ErrorKind.THROTTLED)).inc()
                return AttemptWebhookDeliveryResult(
                    kind="throttled",
                    attempt_number=input.attempt_number,
                    retry_in_s=throttle_delay_s(throttled_waits=input.throttled_waits, jitter_unit=input.jitter_unit),
                )
            context = await load_attempt_context(self._pool, secret_box=self._secret_box, delivery_id=input.delivery_id)
            if context is None:
                raise ApplicationError(f"no webhook delivery {input.delivery_id}", type="WebhookDeliveryNotFound", non_retryable=True)
            if context.round != input.round or context.delivery_status in DELIVERY_STATUSES_FINAL:
                # Already settled (a retried activity whose first run recorded, or a newer round).
                kind = "delivered" if context.delivery_status == DeliveryStatus.DELIVERED else "cancelled"
                return AttemptWebhookDeliveryResult(kind=kind, attempt_number=input.attempt_number)
            if not context.endpoint_usable or not context.event_found:
                reason = "endpoint deleted or disabled" if context.event_found else "event no longer exists"
                if await cancel_delivery(self._pool, delivery_id=input.delivery_id, round_number=input.round, reason=reason):
                    DELIVERIES.labels(outcome="cancelled").inc()
                return AttemptWebhookDeliveryResult(kind="cancelled", attempt_number=input.attempt_number, error=reason)
            body = envelope_body(
                build_envelope(
                    event_id=context.event_id,
                    event_type=context.event_type,
                    created_at=context.event_created_at,
                    tenant_id=context.tenant_id,
                    api_version=context.event_api_version,
                    data=context.event_data,
                )
            )
            started_at = datetime.now(timezone.utc)
            timestamp_s = int(started_at.timestamp())
            if acquired:
                headers = sign_headers(secrets=context.secrets, message_id=context.event_id, timestamp_s=timestamp_s, body=body)
                response = await self._send(context.url, body=body, headers=headers)
            else:
                timestamp_s = None
                response = _Response(
                    status_code=None,
                    body=None,
                    retry_after=None,
                    error_kind=ErrorKind.THROTTLED,
                    error="throttled: the endpoint had no free slot for too long",
                    latency_s=0.0,
                )
        return await self._record(input, context=context, response=response, started_at=started_at, timestamp_s=timestamp_s)

    async def _send(self, url: str, *, body: bytes, headers: dict[str, str]) -> _Response:
        settings = self._settings
        try:
            parse_target_url(url, policy=settings.url_policy)
        except WebhookRuleError as error:
            kind = ErrorKind.BLOCKED if error.code == "url_not_allowed" else ErrorKind.INVALID_URL
            return _Response(None, None, None, kind, f"{kind}: {error.message}", 0.0)
        started = time.perf_counter()
        interval_s = max((activity.info().heartbeat_timeout or timedelta(seconds=30)).total_seconds() / 3, 0.2)
        try:
            status_code, text, retry_after, latency_s = await _heartbeating(
                asyncio.wait_for(self._post(url, body=body, headers=headers, started=started), settings.request_timeout_s),
                interval_s=interval_s,
            )
        except TargetBlocked as error:
            return _Response(None, None, None, ErrorKind.BLOCKED, f"blocked: {error}", time.perf_counter() - started)
        except (httpx.TimeoutException, asyncio.TimeoutError) as error:
            detail = type(error).__name__ if isinstance(error, httpx.TimeoutException) else "request_timeout_s elapsed"
            return _Response(None, None, None, ErrorKind.TIMEOUT, f"timeout: {detail}", time.perf_counter() - started)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
            return _Response(None, None, None, ErrorKind.INVALID_URL, f"invalid_url: {error}", time.perf_counter() - started)
        except (httpx.TransportError, OSError) as error:
            return _Response(
                None, None, None, ErrorKind.NETWORK, f"network: {type(error).__name__}: {error}", time.perf_counter() - started
            )
        return _Response(status_code, text, retry_after, None, None, latency_s)

    async def _post(self, url: str, *, body: bytes, headers: dict[str, str], started: float) -> tuple[int, str, str | None, float]:
        async with self._http.stream(
            "POST", url, content=body, headers=headers, timeout=webhook_timeout(self._settings), follow_redirects=False
        ) as response:
            latency_s = time.perf_counter() - started
            collected = bytearray()
            # Read a bounded prefix only: a receiver answering with a huge page costs nothing.
            async for chunk in response.aiter_raw():
                collected += chunk
                if len(collected) > RESPONSE_BODY_STORED_MAX:
                    break
            text = bytes(collected[: RESPONSE_BODY_STORED_MAX + 1]).decode("utf-8", errors="replace")
            return response.status_code, text, response.headers.get("retry-after"), latency_s

    async def _record(
        self,
        input: AttemptWebhookDeliveryInput,
        *,
        context,
        response: _Response,
        started_at: datetime,
        timestamp_s: int | None,
    ) -> AttemptWebhookDeliveryResult:
        settings = self._settings
        decision = decide(status_code=response.status_code, error_kind=response.error_kind)
        retry_in_s: float | None = None
        if decision is Decision.RETRY:
            retry_in_s = retry_delay_s(
                attempt_number=input.attempt_number,
                retry_delays_s=input.retry_delays_s,
                jitter_fraction=input.jitter_fraction,
                jitter_unit=input.jitter_unit,
                retry_after_s=parse_retry_after(response.retry_after, now=started_at),
                retry_after_max_s=settings.retry_after_max_s,
            )
        if decision is Decision.DELIVERED:
            outcome = "delivered"
        elif decision is Decision.GONE:
            outcome = "gone"
        elif retry_in_s is not None:
            outcome = "retry"
        else:
            outcome = "failed"
        recorded = await record_attempt(
            self._pool,
            record=AttemptRecord(
                delivery_id=input.delivery_id,
                round=input.round,
                attempt_number=input.attempt_number,
                url=context.url,
                webhook_timestamp=timestamp_s,
                started_at=started_at,
                latency_ms=int(response.latency_s * 1000),
                status_code=response.status_code,
                response_body=response.body,
                error=response.error,
                outcome=outcome,
                next_attempt_at=started_at + timedelta(seconds=retry_in_s) if retry_in_s is not None else None,
                endpoint_failed=response.error_kind not in (ErrorKind.BLOCKED, ErrorKind.INVALID_URL, ErrorKind.THROTTLED),
            ),
            failing_after_s=settings.failing_after_s,
        )
        result_label = status_class(response.status_code) if response.status_code is not None else str(response.error_kind)
        ATTEMPTS.labels(result=result_label).inc()
        if response.status_code is not None or response.error_kind in (ErrorKind.TIMEOUT, ErrorKind.NETWORK):
            ATTEMPT_LATENCY.observe(response.latency_s)
        if recorded.completed:
            DELIVERIES.labels(outcome="delivered" if outcome == "delivered" else "failed").inc()
            if outcome == "delivered" and input.round == 0:
                EVENT_TO_DELIVERED.observe(max((datetime.now(timezone.utc) - context.event_created_at).total_seconds(), 0.0))
        activity.logger.info(
            "webhook %s attempt %d round %d: %s%s",
            input.delivery_id,
            input.attempt_number,
            input.round,
            outcome,
            f" status={response.status_code} body={truncate_text(response.body or '', RESPONSE_BODY_LOGGED_MAX)!r}"
            if response.status_code is not None
            else f" error={response.error}",
        )
        kind = "failed" if outcome == "gone" else outcome
        return AttemptWebhookDeliveryResult(
            kind=kind, attempt_number=input.attempt_number, retry_in_s=retry_in_s, status_code=response.status_code, error=response.error
        )


def webhook_activities(pool: asyncpg.Pool, http_client: httpx.AsyncClient, *, settings: WebhookSettings | None = None) -> list:
    """The activities to register on a worker; `http_client` from create_webhook_http_client()."""
    activities = WebhookActivities(pool, http_client, settings=settings)
    return [activities.claim_webhook_deliveries, activities.attempt_webhook_delivery]
