"""Request and response models of the webhook endpoint, notify secret and delivery-log routes.
Inputs forbid unknown fields; outputs carry an `object` name; a signing secret appears only in the
responses that create it (create, rotate_secret, the notify secret's rotate and the first intent
with a notify_url), once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictBool

from api.pagination import ListResponse
from api.schemas import Input, NotNull
from db.webhook_deliveries import DeliveryWithAttempts, WebhookAttempt, WebhookDelivery
from db.webhook_endpoints import WebhookEndpoint
from db.webhook_secrets import NotifySecret, RotatedSecret
from domain.webhooks import (
    DESCRIPTION_LENGTH_MAX,
    ENABLED_EVENTS_COUNT_MAX,
    EVENT_TYPE_LENGTH_MAX,
    ROTATION_OVERLAP_S_DEFAULT,
    ROTATION_OVERLAP_S_MAX,
    URL_LENGTH_MAX,
    DeliveryStatus,
    DisabledReason,
    EndpointHealth,
    EndpointKind,
    EndpointStatus,
)

EventType = Annotated[
    str,
    Field(
        min_length=1,
        max_length=EVENT_TYPE_LENGTH_MAX,
        pattern=r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$",
        description="An event type such as `payment_intent.succeeded`, or `*` for every type.",
        examples=["payment_intent.succeeded"],
    ),
]
EnabledEvents = Annotated[list[EventType], Field(min_length=1, max_length=ENABLED_EVENTS_COUNT_MAX)]
TargetUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=URL_LENGTH_MAX,
        description=(
            "Where deliveries are POSTed: https (plain http only in local/test deployments), no credentials, "
            "never a private, loopback or cloud-metadata address outside local/test."
        ),
        examples=["https://example.com/settle/webhooks"],
    ),
]
Description = Annotated[str, Field(max_length=DESCRIPTION_LENGTH_MAX)]


# ---------------------------------------------------------------------------- inputs
class WebhookEndpointCreate(Input):
    url: TargetUrl
    enabled_events: EnabledEvents
    description: Description = ""


class WebhookEndpointUpdate(Input):
    """Fields given are replaced (lists as a whole); fields left out stay as they are."""

    url: Annotated[TargetUrl | None, NotNull] = None
    enabled_events: Annotated[EnabledEvents | None, NotNull] = None
    description: Annotated[Description | None, NotNull] = None
    disabled: Annotated[StrictBool | None, NotNull] = Field(
        default=None, description="`true` stops deliveries to it; `false` enables it again (also after a 410 Gone)."
    )


class WebhookSecretRotate(Input):
    overlap_s: int | None = Field(
        default=None,
        strict=True,
        ge=0,
        le=ROTATION_OVERLAP_S_MAX,
        description=(
            "How long the previous secret keeps signing beside the new one (every delivery carries both "
            f"signatures); 0 stops it now. Default: {ROTATION_OVERLAP_S_DEFAULT} s (24 hours)."
        ),
    )


# ---------------------------------------------------------------------------- outputs
class WebhookEndpointRead(BaseModel):
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    id: str
    url: str
    description: str
    enabled_events: list[str]
    status: EndpointStatus
    disabled_reason: DisabledReason | None = Field(description="`merchant` (disabled through the API) or `gone` (it answered 410).")
    health: EndpointHealth = Field(description="`failing` once every attempt has failed for a while; deliveries continue.")
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> "WebhookEndpointRead":
        return cls(**_endpoint_fields(endpoint))


class WebhookEndpointCreated(WebhookEndpointRead):
    secret: str | None = Field(
        description=(
            "The signing secret (`whsec_...`), shown in this response only: store it now. A replay of this "
            "response (same Idempotency-Key) has null here."
        )
    )

    @classmethod
    def of_created(cls, endpoint: WebhookEndpoint, secret: str) -> "WebhookEndpointCreated":
        return cls(**_endpoint_fields(endpoint), secret=secret)


def _endpoint_fields(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "enabled_events": list(endpoint.enabled_events),
        "status": endpoint.status,
        "disabled_reason": endpoint.disabled_reason,
        "health": endpoint.health,
        "failing_since": endpoint.failing_since,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }


class WebhookSecretRotation(BaseModel):
    object: Literal["webhook_secret_rotation"] = "webhook_secret_rotation"
    webhook_endpoint: WebhookEndpointRead
    secret: str | None = Field(
        description=(
            "The new signing secret (`whsec_...`), shown in this response only: store it now. A replay of this "
            "response (same Idempotency-Key) has null here."
        )
    )
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the previous secret signs beside the new one; null: it stopped at once."
    )

    @classmethod
    def of(cls, endpoint: WebhookEndpoint, rotated: RotatedSecret) -> "WebhookSecretRotation":
        return cls(
            webhook_endpoint=WebhookEndpointRead.of(endpoint),
            secret=rotated.secret,
            previous_secret_expires_at=rotated.previous_expires_at,
        )


class WebhookEndpointDeleted(BaseModel):
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    id: str
    deleted: Literal[True] = True


class WebhookEndpointList(ListResponse[WebhookEndpointRead]):
    pass


class WebhookAttemptRead(BaseModel):
    object: Literal["webhook_attempt"] = "webhook_attempt"
    id: str
    round: int = Field(description="0 for the first delivery, then one more per redelivery.")
    attempt_number: int
    url: str
    created_at: datetime = Field(description="When the request started.")
    status_code: int | None = Field(description="The receiver's HTTP status; null when none came back (see `error`).")
    latency_ms: int
    response_body: str | None = Field(description="The start of the receiver's answer (truncated).")
    error: str | None = Field(description="What went wrong when no status came back: a timeout, a refused address...")
    outcome: Literal["delivered", "retry", "failed", "gone"]

    @classmethod
    def of(cls, attempt: WebhookAttempt) -> "WebhookAttemptRead":
        return cls(
            id=attempt.id,
            round=attempt.round,
            attempt_number=attempt.attempt_number,
            url=attempt.url,
            created_at=attempt.created_at,
            status_code=attempt.status_code,
            latency_ms=attempt.latency_ms,
            response_body=attempt.response_body,
            error=attempt.error,
            outcome=attempt.outcome,  # type: ignore[arg-type]
        )


class WebhookDeliveryRead(BaseModel):
    object: Literal["webhook_delivery"] = "webhook_delivery"
    id: str = Field(description="`whd_<event id>_<endpoint id>`: one delivery per event and endpoint.")
    event_id: str
    endpoint_id: str
    endpoint_kind: EndpointKind = Field(
        description="`endpoint` (registered through /v1/webhook_endpoints) or `notify_url` (the URL an object named itself, "
        "signed with the tenant's notify secret; not listed among the endpoints)."
    )
    event_type: str
    event_created_at: datetime
    status: DeliveryStatus
    round: int
    attempts_count: int = Field(description="Attempts made over every round.")
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    attempts: list[WebhookAttemptRead] = Field(description="The latest attempts, newest first.")
    attempts_has_more: bool = Field(description="Whether older attempts exist beyond `attempts`.")

    @classmethod
    def of(cls, delivery: WebhookDelivery, attempts: list[WebhookAttempt], *, attempts_has_more: bool) -> "WebhookDeliveryRead":
        assert delivery.endpoint_kind is not None, "read the delivery with its endpoint's kind"
        return cls(
            id=delivery.id,
            event_id=delivery.event_id,
            endpoint_id=delivery.endpoint_id,
            endpoint_kind=delivery.endpoint_kind,
            event_type=delivery.event_type,
            event_created_at=delivery.event_created_at,
            status=delivery.status,
            round=delivery.round,
            attempts_count=delivery.attempts_count,
            last_attempt_at=delivery.last_attempt_at,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            next_attempt_at=delivery.next_attempt_at,
            delivered_at=delivery.delivered_at,
            completed_at=delivery.completed_at,
            created_at=delivery.created_at,
            updated_at=delivery.updated_at,
            attempts=[WebhookAttemptRead.of(attempt) for attempt in attempts],
            attempts_has_more=attempts_has_more,
        )


    @classmethod
    def listed(cls, item: DeliveryWithAttempts) -> "WebhookDeliveryRead":
        return cls.of(item.delivery, item.attempts, attempts_has_more=item.attempts_has_more)


class WebhookDeliveryList(ListResponse[WebhookDeliveryRead]):
    pass


# ---------------------------------------------------------------------------- the notify secret
class NotifySecretRead(BaseModel):
    """The tenant's notify secret, which signs every delivery to a `notify_url` its objects name.
    Never the secret itself."""

    object: Literal["notify_secret"] = "notify_secret"
    created_at: datetime | None = Field(
        description="When the current secret was made; null: none yet (the first payment intent with a notify_url, "
        "or POST /v1/notify_secret/rotate, creates it)."
    )
    previous_secret_expires_at: datetime | None = Field(
        description="While a rotated secret still signs beside the current one (both signatures on every delivery): until then."
    )

    @classmethod
    def of(cls, notify_secret: NotifySecret) -> "NotifySecretRead":
        return cls(created_at=notify_secret.created_at, previous_secret_expires_at=notify_secret.previous_expires_at)


class NotifySecretRotation(BaseModel):
    object: Literal["notify_secret_rotation"] = "notify_secret_rotation"
    notify_secret: NotifySecretRead
    secret: str | None = Field(
        description=(
            "The new notify secret (`whsec_...`), shown in this response only: store it now. A replay of this "
            "response (same Idempotency-Key) has null here."
        )
    )
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the previous secret signs beside the new one; null: it stopped at once (or there was none)."
    )


class NotifySecretCreated(BaseModel):
    """The notify secret made by the first payment intent that named a notify_url: shown once."""

    object: Literal["notify_secret"] = "notify_secret"
    secret: str | None = Field(
        description="`whsec_...`: verifies deliveries to every notify_url of this tenant. Store it now; a replay has null here."
    )
