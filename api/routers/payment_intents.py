"""Payment intents (create, retrieve, list, cancel, and the checkout page's public view) and the
tenant's events. Creating and canceling go through the intent's workflow (update-with-start,
update); reads come from the read model the workflow writes. The API never touches the ledger
or the chain.

The Temporal client is connected in the background (`TemporalConnector`): while Temporal is
unreachable the app still serves everything else, and the routes that need it answer 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from api.auth import Principal, check_ip_rate_limit, tenant_key
from db.settings import TIER_WRITE
from api.errors import ApiError, ErrorResponse, ErrorType, invalid_request, not_found
from api.idempotency import Idempotency
from api.pagination import PageParams, page_request_for
from api.routers.webhook_endpoints import secret_box, webhook_errors, webhook_settings
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
from contracts.deposit import intent_deposit_address
from db.events import EventNotFound, get_event, list_events
from db.payment_intents import (
    PaymentIntentNotFound,
    StoredIntent,
    find_payment_intent,
    get_payment_intent,
    list_payment_intents,
)
from db.settings import Settings
from db.tenants import get_tenant
from db.webhook_endpoints import prepare_notify_url
from domain.confirmations import ConfirmationsBelowFloor, confirmations_required
from domain.money import InvalidAmount, parse_amount, usd_cents_of_stablecoin
from domain.pagination import PageRequest
from domain.errors import INTENT_REGISTRATION_FAILED
from domain.payment_intents import TERMINAL_STATUSES, IntentStatus, PaymentIntentInput
from domain.tenants import OBJECT_ID_LENGTH_MAX, OBJECT_ID_PATTERN, Scope
from domain.webhooks import parse_target_url
from workflows.payment_intent_workflow import PaymentIntentWorkflow, expires_at_iso, start_payment_intent

logger = logging.getLogger("settle.api")

router = settle_router(prefix="/v1/payment_intents", tags=["payment intents"])
events_router = settle_router(prefix="/v1/events", tags=["events"])

IntentsRead = Annotated[Principal, tenant_key(Scope.PAYMENT_INTENTS_READ)]
IntentsWrite = Annotated[Principal, tenant_key(Scope.PAYMENT_INTENTS_WRITE)]
IntentId = Annotated[
    str, Path(pattern=OBJECT_ID_PATTERN, max_length=OBJECT_ID_LENGTH_MAX, description="A payment intent id, `pi_...`.")
]
# Event ids carry the intent's id and a sequence number: `evt_<intent>_<nnnn>`.
EVENT_ID_PATTERN = r"^evt_[A-Za-z0-9_]{8,80}$"
EVENT_ID_LENGTH_MAX = 84
EventId = Annotated[str, Path(pattern=EVENT_ID_PATTERN, max_length=EVENT_ID_LENGTH_MAX, description="An event id, `evt_...`.")]

CLIENT_SECRET_LENGTH_MAX = 200
TEMPORAL_CONNECT_TIMEOUT_S = 5.0
TEMPORAL_RETRY_INTERVAL_S = 2.0
TEMPORAL_WAIT_S = 5.0
VIEW_QUERY_TIMEOUT_S = 2.0
UNAVAILABLE = {503: {"model": ErrorResponse, "description": "The workflow engine is unreachable for now; retry later (`api_error`)."}}
# Compared against when no intent matched, so a miss costs what a wrong secret costs.
_DUMMY_SECRET_HASH = hashlib.sha256(b"settle: no such intent").hexdigest()
_INTENT_ID = re.compile(OBJECT_ID_PATTERN)


# ---------------------------------------------------------------------------- temporal
class TemporalConnector:
    """The API's Temporal client: injected, or connected in the background and retried until it
    succeeds. `await get()` waits briefly for a connection, then answers 503."""

    def __init__(self, settings: Settings, *, client: Any | None = None) -> None:
        self._settings = settings
        self.client = client
        self._task: asyncio.Task | None = None
        self._connected: asyncio.Event | None = None

    def start(self) -> None:
        self._connected = asyncio.Event()
        if self.client is not None:
            self._connected.set()
            return
        self._task = asyncio.create_task(self._connect_until_connected(), name="temporal-connect")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _connect_until_connected(self) -> None:
        from temporalio.client import Client

        assert self._connected is not None
        while self.client is None:
            try:
                self.client = await asyncio.wait_for(
                    Client.connect(self._settings.temporal_address, namespace=self._settings.temporal_namespace),
                    timeout=TEMPORAL_CONNECT_TIMEOUT_S,
                )
                self._connected.set()
                return
            except Exception:  # noqa: BLE001 - unreachable, refused, timed out: retry
                logger.warning("Temporal unreachable at %s; will retry", self._settings.temporal_address)
                await asyncio.sleep(TEMPORAL_RETRY_INTERVAL_S)

    async def get(self) -> Any:
        if self.client is None and self._connected is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._connected.wait()), timeout=TEMPORAL_WAIT_S)
        if self.client is None:
            raise unavailable()
        return self.client


# What a create may take before it answers 503: registering is one local activity on a healthy stack.
CREATE_TIMEOUT_S = 15.0


def unavailable(
    message: str = "Payment intents are unavailable for a moment: the workflow engine cannot be reached. Retry later.",
) -> ApiError:
    return ApiError(503, type=ErrorType.API, code="temporal_unavailable", message=message, headers={"Retry-After": "5"})


# ---------------------------------------------------------------------------- helpers
def hash_client_secret(secret: str) -> str:
    """What an intent stores of its client secret (the create route) and checks against (the public
    view, the checkout page)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


async def _payment_confirmations(request: Request, intent: StoredIntent) -> dict[str, int] | None:
    """Each payment's confirmations, from the workflow; None if it cannot say right now."""
    if not intent.payments:
        return {}
    connector: TemporalConnector = request.app.state.temporal
    if connector.client is None:
        return None
    try:
        view = await asyncio.wait_for(
            connector.client.get_workflow_handle(intent.id).query(PaymentIntentWorkflow.view), timeout=VIEW_QUERY_TIMEOUT_S
        )
    except Exception:  # noqa: BLE001 - best effort: the read model still answers
        return None
    return {f"{payment.tx_hash.lower()}:{payment.log_index}": payment.confirmations for payment in view.payments}


async def authorized_intent(pool: Any, *, intent_id: str, client_secret: str | None) -> StoredIntent | None:
    """The intent, if `client_secret` is its secret; None for every other case alike (no such
    intent, wrong or missing secret, malformed input), at the same cost: a miss is compared against
    a dummy hash. The public view and the checkout page open an intent only through this."""
    valid_shape = (
        len(intent_id) <= OBJECT_ID_LENGTH_MAX
        and _INTENT_ID.match(intent_id) is not None
        and intent_id.startswith("pi_")
        and client_secret is not None
        and 0 < len(client_secret) <= CLIENT_SECRET_LENGTH_MAX
    )
    intent = await find_payment_intent(pool, intent_id=intent_id) if valid_shape else None
    stored = intent.client_secret_hash if intent is not None else _DUMMY_SECRET_HASH
    given = hash_client_secret(client_secret or "")
    if not hmac.compare_digest(stored.encode(), given.encode()) or intent is None or not valid_shape:
        return None
    return intent


async def tenant_intent(request: Request, principal: Principal, intent_id: str, *, param: str = "id") -> StoredIntent:
    """The caller's tenant's intent, or a 404 naming `param` (another tenant's intent is not found)."""
    assert principal.tenant_id is not None
    try:
        return await get_payment_intent(request.app.state.pool, tenant_id=principal.tenant_id, intent_id=intent_id)
    except PaymentIntentNotFound as error:
        raise not_found(str(error), param=param) from None


def _deposit_fields(settings: Settings, intent_id: str) -> dict[str, str]:
    """The intent's CREATE2 deposit address, computed here (pure, no node) so the workflow starts
    with it and is findable by it at once."""
    if "DepositFactory" not in settings.contracts or "DepositForwarder" not in settings.contracts:
        return {}
    factory = settings.contracts["DepositFactory"]
    address, salt = intent_deposit_address(intent_id, factory=factory, implementation=settings.contracts["DepositForwarder"])
    return {"deposit_address": address, "deposit_salt": salt, "deposit_factory": factory}


def _conflict(code: str, message: str) -> ApiError:
    return ApiError(409, type=ErrorType.INVALID_REQUEST, code=code, message=message)


# ---------------------------------------------------------------------------- routes
@router.post(
    "",
    status_code=201,
    response_model=PaymentIntentCreated,
    responses=UNAVAILABLE,
    summary="Create a payment intent: a deposit address and an amount due",
)
async def create_payment_intent(
    request: Request, principal: IntentsWrite, idempotency: Idempotency, body: PaymentIntentCreate
) -> JSONResponse:
    assert principal.tenant_id is not None
    settings: Settings = request.app.state.settings
    asset = settings.assets().get(body.asset)
    if asset is None or asset.token_address is None:
        accepted = ", ".join(sorted(settings.assets())) or "none configured"
        raise invalid_request(f"asset must be one of: {accepted}", param="asset")
    try:
        amount = parse_amount(body.amount, asset=asset)
    except InvalidAmount as error:
        raise invalid_request(str(error), param="amount") from None
    url_policy = webhook_settings(request).url_policy
    if body.notify_url is not None:
        with webhook_errors():
            parse_target_url(body.notify_url, policy=url_policy, param="notify_url")
    client = await request.app.state.temporal.get()
    tenant = await get_tenant(request.app.state.pool, tenant_id=principal.tenant_id)
    try:
        required = confirmations_required(
            usd_cents=usd_cents_of_stablecoin(amount, decimals=asset.decimals),
            amount_base_units=amount,
            tenant_tiers=(tenant.confirmation_policy or {}).get("tiers"),
            requested=body.confirmations,
        )
    except ConfirmationsBelowFloor as error:
        raise invalid_request(str(error), param="confirmations") from None
    intent_id = idempotency.workflow_id("pi") or "pi_" + secrets.token_hex(12)
    client_secret = f"{intent_id}_secret_{secrets.token_urlsafe(24)}"
    input = PaymentIntentInput(
        intent_id=intent_id,
        tenant_id=principal.tenant_id,
        ledger_id=principal.tenant_id,
        chain_id=asset.chain_id,
        asset=asset.code,
        asset_key=asset.key,
        token_address=asset.token_address,
        decimals=asset.decimals,
        amount_base_units=amount,
        fee_bps=tenant.fee_bps,
        confirmations_required=required,
        expires_at=expires_at_iso(datetime.now(timezone.utc), body.expires_in),
        client_secret_hash=hash_client_secret(client_secret),
        description=body.description,
        metadata=dict(body.metadata),
        success_url=body.success_url,
        cancel_url=body.cancel_url,
        idempotency_key=idempotency.key,
        notify_url=body.notify_url,
        **_deposit_fields(settings, intent_id),
    )
    notify_secret: str | None = None
    if body.notify_url is not None:
        # Before the workflow starts, so its first event finds the endpoint and the secret ready.
        with webhook_errors():
            target = await prepare_notify_url(
                request.app.state.pool,
                secret_box=secret_box(request),
                url_policy=url_policy,
                tenant_id=principal.tenant_id,
                url=body.notify_url,
                actor=principal.actor(request),
            )
        # Shown only to a key that may manage webhooks; others leave it to POST /v1/notify_secret/rotate.
        notify_secret = target.secret_created if Scope.WEBHOOKS_WRITE in principal.scopes else None
    try:
        # Bounded: a workflow that cannot register the intent in time answers 503 (retry with the
        # same Idempotency-Key), never a request that hangs.
        await asyncio.wait_for(start_payment_intent(client, input, task_queue=settings.task_queue), timeout=CREATE_TIMEOUT_S)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        if isinstance(cause, ApplicationError) and cause.type == INTENT_REGISTRATION_FAILED:
            # Data the database refused past validation: the same request fails the same way.
            logger.error("payment intent %s could not be stored: %s", intent_id, cause.message)
            raise invalid_request("The payment intent could not be stored: a field holds a value that cannot be saved.") from None
        logger.warning("could not start payment intent %s: %s", intent_id, type(cause).__name__)
        raise unavailable() from None
    except Exception as error:  # noqa: BLE001 - RPC failures, timeouts: the client may retry
        logger.warning("could not start payment intent %s: %s", intent_id, type(error).__name__)
        raise unavailable() from None
    intent = await get_payment_intent(request.app.state.pool, tenant_id=principal.tenant_id, intent_id=intent_id)
    # The same id again (a key retried past its retention) finds the first intent: its secret
    # is not this one, and is never shown twice.
    shown = client_secret if hmac.compare_digest(intent.client_secret_hash, input.client_secret_hash) else None
    base = str(request.base_url).rstrip("/")
    created = PaymentIntentCreated(
        **PaymentIntentRead.fields_of(intent, {}),
        client_secret=shown,
        checkout_url=f"{base}/checkout/{intent.id}?client_secret={shown}" if shown else None,
        notify_secret=NotifySecretCreated(secret=notify_secret) if notify_secret else None,
    )
    return JSONResponse(created.model_dump(mode="json"), status_code=201)


@router.get("", response_model=PaymentIntentList, summary="List payment intents")
async def list_intents(
    request: Request,
    principal: IntentsRead,
    page: PageParams,
    status: Annotated[IntentStatus | None, Query(description="Only intents in this status.")] = None,
) -> PaymentIntentList:
    assert principal.tenant_id is not None
    result = await list_payment_intents(
        request.app.state.pool, tenant_id=principal.tenant_id, page=page, status=str(status) if status else None
    )
    return PaymentIntentList.of(result, url="/v1/payment_intents", item=PaymentIntentRead.of)


@router.get("/{intent_id}", response_model=PaymentIntentRead, summary="Retrieve a payment intent")
async def retrieve_intent(request: Request, principal: IntentsRead, intent_id: IntentId) -> PaymentIntentRead:
    intent = await tenant_intent(request, principal, intent_id)
    return PaymentIntentRead(**PaymentIntentRead.fields_of(intent, await _payment_confirmations(request, intent)))


@router.post(
    "/{intent_id}/cancel",
    response_model=PaymentIntentRead,
    responses=UNAVAILABLE,
    summary="Cancel a payment intent that has received nothing",
    openapi_extra={"x-rate-limit-tier": TIER_WRITE},
)
async def cancel_intent(request: Request, principal: IntentsWrite, idempotency: Idempotency, intent_id: IntentId) -> PaymentIntentRead:
    intent = await tenant_intent(request, principal, intent_id)
    terminal = _conflict("intent_terminal", f"This payment intent is {intent.status}; it can no longer be canceled.")
    received = _conflict(
        "payment_received", "This payment intent has received a payment and cannot be canceled; refund it once it settles."
    )
    if intent.status in TERMINAL_STATUSES:
        raise terminal
    if intent.amount_received > 0 or intent.payments:
        raise received
    client = await request.app.state.temporal.get()
    try:
        await client.get_workflow_handle(intent.id).execute_update(PaymentIntentWorkflow.cancel)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        code = getattr(cause, "type", None) if isinstance(cause, ApplicationError) else None
        if code == "intent_terminal":
            raise terminal from None
        raise received from None
    except Exception as error:  # noqa: BLE001
        from temporalio.service import RPCError, RPCStatusCode

        if isinstance(error, RPCError) and error.status == RPCStatusCode.NOT_FOUND:
            # The workflow finished between our read and the update.
            raise terminal from None
        logger.warning("could not cancel payment intent %s: %s", intent.id, type(error).__name__)
        raise unavailable() from None
    return PaymentIntentRead.of(await tenant_intent(request, principal, intent_id))


@router.get(
    "/{intent_id}/public",
    response_model=PaymentIntentPublic,
    summary="The checkout page's view of an intent (client secret, no API key)",
    description="Needs no API key: the intent's `client_secret` instead. Never shows fees, metadata or the merchant.",
)
async def public_intent(
    request: Request,
    intent_id: IntentId,
    client_secret: Annotated[
        str | None, Query(max_length=CLIENT_SECRET_LENGTH_MAX, description="The `client_secret` of the create response.")
    ] = None,
) -> PaymentIntentPublic:
    check_ip_rate_limit(request)
    intent = await authorized_intent(request.app.state.pool, intent_id=intent_id, client_secret=client_secret)
    if intent is None:
        # One answer for "no such intent" and "wrong secret": the id alone reveals nothing.
        raise not_found(f"No such payment intent: {intent_id}", param="id")
    return PaymentIntentPublic.of(intent, await _payment_confirmations(request, intent))


# ---------------------------------------------------------------------------- events
# Event ids are `evt_<intent>_<nnnn>`: wider than the general object id pattern.
event_page_request = page_request_for(id_pattern=EVENT_ID_PATTERN, id_length_max=EVENT_ID_LENGTH_MAX, noun="event")

EventPage = Annotated[PageRequest, Depends(event_page_request)]


@events_router.get("", response_model=EventList, summary="List the tenant's events, newest first")
async def list_tenant_events(
    request: Request,
    principal: IntentsRead,
    page: EventPage,
    type: Annotated[
        str | None, Query(pattern=r"^[a-z_]{1,40}(\.[a-z_]{1,40}){1,2}$", description="Only this type, e.g. `payment_intent.succeeded`.")
    ] = None,
    object_id: Annotated[
        str | None, Query(pattern=OBJECT_ID_PATTERN, max_length=OBJECT_ID_LENGTH_MAX, description="Only events about this object.")
    ] = None,
) -> EventList:
    assert principal.tenant_id is not None
    result = await list_events(request.app.state.pool, tenant_id=principal.tenant_id, page=page, type=type, object_id=object_id)
    return EventList.of(result, url="/v1/events", item=EventRead.of)


@events_router.get("/{event_id}", response_model=EventRead, summary="Retrieve an event")
async def retrieve_event(request: Request, principal: IntentsRead, event_id: EventId) -> EventRead:
    assert principal.tenant_id is not None
    try:
        return EventRead.of(await get_event(request.app.state.pool, tenant_id=principal.tenant_id, event_id=event_id))
    except EventNotFound as error:
        raise not_found(str(error), param="id") from None
