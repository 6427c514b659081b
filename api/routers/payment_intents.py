"""Payment intents (create, retrieve, list, cancel, and the checkout page's public view) and the
tenant's events: parse, authorize, serialize. The work is in api/services/payment_intents.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from api.auth import TenantPrincipal, check_ip_rate_limit, tenant_key
from db.settings import TIER_WRITE
from api.deps import PoolDep, SecretBoxDep, SettingsDep, TemporalDep, WebhookSettingsDep
from api.errors import ErrorResponse, not_found
from api.idempotency import Idempotency
from api.pagination import PageParams, page_request_for
from api.routers.webhook_endpoints import webhook_errors
from api.routing import settle_router
from api.schemas_payment_intents import (
    EventList,
    EventRead,
    PaymentIntentCreate,
    PaymentIntentCreated,
    PaymentIntentList,
    PaymentIntentPublic,
    PaymentIntentRead,
)
from api.schemas_webhooks import NotifySecretCreated
from api.services import payment_intents as intents
from api.services.payment_intents import CLIENT_SECRET_LENGTH_MAX, IntentOrder, authorized_intent
from db.events import EventNotFound, get_event, list_events
from db.payment_intents import PaymentIntentNotFound, StoredIntent, get_payment_intent, list_payment_intents
from domain.pagination import PageRequest
from domain.payment_intents import IntentStatus
from domain.tenants import OBJECT_ID_LENGTH_MAX, OBJECT_ID_PATTERN, Scope

router = settle_router(prefix="/v1/payment_intents", tags=["payment intents"])
events_router = settle_router(prefix="/v1/events", tags=["events"])

IntentsRead = Annotated[TenantPrincipal, tenant_key(Scope.PAYMENT_INTENTS_READ)]
IntentsWrite = Annotated[TenantPrincipal, tenant_key(Scope.PAYMENT_INTENTS_WRITE)]
IntentId = Annotated[
    str, Path(pattern=OBJECT_ID_PATTERN, max_length=OBJECT_ID_LENGTH_MAX, description="A payment intent id, `pi_...`.")
]
# Event ids carry the intent's id and a sequence number: `evt_<intent>_<nnnn>`.
EVENT_ID_PATTERN = r"^evt_[A-Za-z0-9_]{8,80}$"
EVENT_ID_LENGTH_MAX = 84
EventId = Annotated[str, Path(pattern=EVENT_ID_PATTERN, max_length=EVENT_ID_LENGTH_MAX, description="An event id, `evt_...`.")]

UNAVAILABLE = {503: {"model": ErrorResponse, "description": "The workflow engine is unreachable for now; retry later (`api_error`)."}}


async def tenant_intent(pool: PoolDep, principal: TenantPrincipal, intent_id: str, *, param: str = "id") -> StoredIntent:
    """The caller's tenant's intent, or a 404 naming `param` (another tenant's intent is not found)."""
    try:
        return await get_payment_intent(pool, tenant_id=principal.tenant_id, intent_id=intent_id)
    except PaymentIntentNotFound as error:
        raise not_found(str(error), param=param) from None


# ---------------------------------------------------------------------------- routes
@router.post(
    "",
    status_code=201,
    response_model=PaymentIntentCreated,
    responses=UNAVAILABLE,
    summary="Create a payment intent: a deposit address and an amount due",
)
async def create_payment_intent(
    request: Request,
    principal: IntentsWrite,
    idempotency: Idempotency,
    body: PaymentIntentCreate,
    pool: PoolDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    webhook_settings: WebhookSettingsDep,
    secret_box: SecretBoxDep,
) -> JSONResponse:
    order = IntentOrder(
        asset=body.asset,
        amount=body.amount,
        confirmations=body.confirmations,
        expires_in=body.expires_in,
        description=body.description,
        metadata=dict(body.metadata),
        success_url=body.success_url,
        cancel_url=body.cancel_url,
        notify_url=body.notify_url,
    )
    with webhook_errors():
        created = await intents.create_payment_intent(
            pool=pool,
            temporal=temporal,
            settings=settings,
            webhook_settings=webhook_settings,
            secret_box=secret_box,
            tenant_id=principal.tenant_id,
            actor=principal.actor(request),
            order=order,
            intent_id=idempotency.workflow_id("pi"),
            idempotency_key=idempotency.key,
        )
    # Shown only to a key that may manage webhooks; others leave it to POST /v1/notify_secret/rotate.
    notify_secret = created.notify_secret if Scope.WEBHOOKS_WRITE in principal.scopes else None
    shown = created.client_secret
    base = str(request.base_url).rstrip("/")
    response = PaymentIntentCreated(
        **PaymentIntentRead.fields_of(created.intent, {}),
        client_secret=shown,
        checkout_url=f"{base}/checkout/{created.intent.id}?client_secret={shown}" if shown else None,
        notify_secret=NotifySecretCreated(secret=notify_secret) if notify_secret else None,
    )
    return JSONResponse(response.model_dump(mode="json"), status_code=201)


@router.get("", response_model=PaymentIntentList, summary="List payment intents")
async def list_intents(
    principal: IntentsRead,
    page: PageParams,
    pool: PoolDep,
    status: Annotated[IntentStatus | None, Query(description="Only intents in this status.")] = None,
) -> PaymentIntentList:
    result = await list_payment_intents(pool, tenant_id=principal.tenant_id, page=page, status=str(status) if status else None)
    return PaymentIntentList.of(result, url="/v1/payment_intents", item=PaymentIntentRead.of)


@router.get("/{intent_id}", response_model=PaymentIntentRead, summary="Retrieve a payment intent")
async def retrieve_intent(principal: IntentsRead, intent_id: IntentId, pool: PoolDep, temporal: TemporalDep) -> PaymentIntentRead:
    intent = await tenant_intent(pool, principal, intent_id)
    confirmations = await intents.payment_confirmations(temporal=temporal, intent=intent)
    return PaymentIntentRead(**PaymentIntentRead.fields_of(intent, confirmations))


@router.post(
    "/{intent_id}/cancel",
    response_model=PaymentIntentRead,
    responses=UNAVAILABLE,
    summary="Cancel a payment intent that has received nothing",
    openapi_extra={"x-rate-limit-tier": TIER_WRITE},
)
async def cancel_intent(
    principal: IntentsWrite, idempotency: Idempotency, intent_id: IntentId, pool: PoolDep, temporal: TemporalDep
) -> PaymentIntentRead:
    try:
        intent = await intents.cancel_payment_intent(pool=pool, temporal=temporal, tenant_id=principal.tenant_id, intent_id=intent_id)
    except PaymentIntentNotFound as error:
        raise not_found(str(error), param="id") from None
    return PaymentIntentRead.of(intent)


@router.get(
    "/{intent_id}/public",
    response_model=PaymentIntentPublic,
    summary="The checkout page's view of an intent (client secret, no API key)",
    description="Needs no API key: the intent's `client_secret` instead. Never shows fees, metadata or the merchant.",
)
async def public_intent(
    request: Request,
    intent_id: IntentId,
    pool: PoolDep,
    temporal: TemporalDep,
    client_secret: Annotated[
        str | None, Query(max_length=CLIENT_SECRET_LENGTH_MAX, description="The `client_secret` of the create response.")
    ] = None,
) -> PaymentIntentPublic:
    check_ip_rate_limit(request)
    intent = await authorized_intent(pool=pool, intent_id=intent_id, client_secret=client_secret)
    if intent is None:
        # One answer for "no such intent" and "wrong secret": the id alone reveals nothing.
        raise not_found(f"No such payment intent: {intent_id}", param="id")
    return PaymentIntentPublic.of(intent, await intents.payment_confirmations(temporal=temporal, intent=intent))


# ---------------------------------------------------------------------------- events
# Event ids are `evt_<intent>_<nnnn>`: wider than the general object id pattern.
event_page_request = page_request_for(id_pattern=EVENT_ID_PATTERN, id_length_max=EVENT_ID_LENGTH_MAX, noun="event")

EventPage = Annotated[PageRequest, Depends(event_page_request)]


@events_router.get("", response_model=EventList, summary="List the tenant's events, newest first")
async def list_tenant_events(
    principal: IntentsRead,
    page: EventPage,
    pool: PoolDep,
    type: Annotated[
        str | None, Query(pattern=r"^[a-z_]{1,40}(\.[a-z_]{1,40}){1,2}$", description="Only this type, e.g. `payment_intent.succeeded`.")
    ] = None,
    object_id: Annotated[
        str | None, Query(pattern=OBJECT_ID_PATTERN, max_length=OBJECT_ID_LENGTH_MAX, description="Only events about this object.")
    ] = None,
) -> EventList:
    result = await list_events(pool, tenant_id=principal.tenant_id, page=page, type=type, object_id=object_id)
    return EventList.of(result, url="/v1/events", item=EventRead.of)


@events_router.get("/{event_id}", response_model=EventRead, summary="Retrieve an event")
async def retrieve_event(principal: IntentsRead, event_id: EventId, pool: PoolDep) -> EventRead:
    try:
        return EventRead.of(await get_event(pool, tenant_id=principal.tenant_id, event_id=event_id))
    except EventNotFound as error:
        raise not_found(str(error), param="id") from None
