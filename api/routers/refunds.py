"""Refunds of payment intents: create one (to an address the customer gives), retrieve, list. A
refund is inserted under its intent's row lock after checking what the intent can still refund,
and its RefundWorkflow is started in that same database transaction, so two concurrent requests
never refund more than the intent can, and a refund row never exists without its workflow. The
workflow reserves, pays and posts; the API never touches the ledger or the chain."""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

from fastapi import Path, Query, Request
from fastapi.responses import JSONResponse

from api.auth import Principal, tenant_key
from api.errors import ApiError, ErrorType, invalid_request, not_found
from api.idempotency import Idempotency
from api.pagination import PageParams
from api.routers.payment_intents import UNAVAILABLE, IntentId, tenant_intent, unavailable
from api.routing import settle_router
from api.schemas_refunds import RefundCreate, RefundList, RefundRead
from db.payment_intents import PaymentIntentNotFound, StoredIntent
from db.refunds import RefundNotFound, create_refund, get_refund, is_deposit_address, list_refunds
from db.settings import Settings
from domain.money import InvalidAmount, parse_amount
from domain.refunds import RefundInput, RefundRuleError, RefundStatus
from domain.tenants import OBJECT_ID_LENGTH_MAX, OBJECT_ID_PATTERN, Scope
from workflows.refund_workflow import start_refund

logger = logging.getLogger("settle.api")

router = settle_router(tags=["refunds"])

# Refunds move a payment intent's money: the intents' scopes govern them.
RefundsRead = Annotated[Principal, tenant_key(Scope.PAYMENT_INTENTS_READ)]
RefundsWrite = Annotated[Principal, tenant_key(Scope.PAYMENT_INTENTS_WRITE)]
RefundId = Annotated[str, Path(pattern=OBJECT_ID_PATTERN, max_length=OBJECT_ID_LENGTH_MAX, description="A refund id, `re_...`.")]


async def _check_destination(request: Request, settings: Settings, intent: StoredIntent, address: str) -> None:
    """Refuse addresses the money would not reach the customer at: Settle's own contracts, its
    treasury and its deposit addresses (a transfer there counts as someone's payment)."""
    own = {value.lower() for value in settings.contracts.values()} | {intent.token_address.lower()}
    if settings.treasury_address:
        own.add(settings.treasury_address.lower())
    if address.lower() in own:
        raise invalid_request("address is one of Settle's own contracts or its treasury, not a customer's address", param="address")
    if await is_deposit_address(request.app.state.pool, chain_id=intent.chain_id, address=address):
        raise invalid_request(
            "address is a Settle deposit address: money sent there would count as a payment, not reach the customer", param="address"
        )


@router.post(
    "/v1/payment_intents/{intent_id}/refunds",
    status_code=201,
    response_model=RefundRead,
    responses=UNAVAILABLE,
    summary="Refund a payment intent to an address the customer gives",
    description="Refunds over-, under- or late-paid money, or (once the intent succeeded) the payment itself out of your "
    "available balance, fee not returned. The refund is `pending` until its transfer is mined; watch `refund.succeeded` "
    "and `refund.failed` events.",
)
async def create_intent_refund(
    request: Request, principal: RefundsWrite, idempotency: Idempotency, intent_id: IntentId, body: RefundCreate
) -> JSONResponse:
    assert principal.tenant_id is not None
    settings: Settings = request.app.state.settings
    intent = await tenant_intent(request, principal, intent_id, param="intent_id")
    asset = settings.assets().get(intent.asset)
    if asset is None or asset.chain_id != intent.chain_id or (asset.token_address or "").lower() != intent.token_address.lower():
        message = f"{intent.asset} on chain {intent.chain_id} is not served here."
        raise ApiError(409, type=ErrorType.INVALID_REQUEST, code="asset_unavailable", message=message)
    try:
        amount = parse_amount(body.amount, asset=asset)
    except InvalidAmount as error:
        raise invalid_request(str(error), param="amount") from None
    await _check_destination(request, settings, intent, body.address)
    client = await request.app.state.temporal.get()
    refund_id = idempotency.workflow_id("re") or "re_" + secrets.token_hex(12)
    try:
        async with request.app.state.pool.acquire() as connection, connection.transaction():
            created = await create_refund(
                connection,
                refund_id=refund_id,
                tenant_id=principal.tenant_id,
                intent_id=intent.id,
                amount_base_units=amount,
                address=body.address,
                reason=body.reason.value if body.reason else None,
                metadata=dict(body.metadata),
                idempotency_key=idempotency.key,
            )
            refund = created.refund
            if created.created:
                input = RefundInput(
                    refund_id=refund.id,
                    tenant_id=principal.tenant_id,
                    ledger_id=principal.tenant_id,
                    intent_id=intent.id,
                    chain_id=intent.chain_id,
                    asset_key=asset.key,
                    token_address=asset.token_address or intent.token_address,
                    address=refund.address,
                    amount_base_units=refund.amount,
                    from_refundable_base_units=refund.amount_from_refundable,
                    from_balance_base_units=refund.amount_from_balance,
                )
                try:
                    # Started before the commit: if the commit fails, the workflow finds no row and ends.
                    await start_refund(client, input, task_queue=settings.task_queue)
                except Exception as error:  # noqa: BLE001 - RPC failures, timeouts: nothing is committed, retry
                    logger.warning("could not start refund %s: %s", refund_id, type(error).__name__)
                    raise unavailable(
                        "Refunds are unavailable for a moment: the workflow engine cannot be reached. Nothing was created; retry later."
                    ) from None
    except PaymentIntentNotFound as error:
        raise not_found(str(error), param="intent_id") from None
    except RefundRuleError as error:
        raise ApiError(409, type=ErrorType.INVALID_REQUEST, code=error.code, message=error.message, param=error.param) from None
    return JSONResponse(RefundRead.of(refund).model_dump(mode="json"), status_code=201)


@router.get(
    "/v1/payment_intents/{intent_id}/refunds", response_model=RefundList, summary="List a payment intent's refunds, newest first"
)
async def list_intent_refunds(request: Request, principal: RefundsRead, page: PageParams, intent_id: IntentId) -> RefundList:
    assert principal.tenant_id is not None
    intent = await tenant_intent(request, principal, intent_id, param="intent_id")
    result = await list_refunds(request.app.state.pool, tenant_id=principal.tenant_id, page=page, intent_id=intent.id)
    return RefundList.of(result, url=f"/v1/payment_intents/{intent.id}/refunds", item=RefundRead.of)


@router.get("/v1/refunds", response_model=RefundList, summary="List refunds, newest first")
async def list_tenant_refunds(
    request: Request,
    principal: RefundsRead,
    page: PageParams,
    payment_intent: Annotated[
        str | None, Query(pattern=OBJECT_ID_PATTERN, max_length=OBJECT_ID_LENGTH_MAX, description="Only this payment intent's refunds.")
    ] = None,
    status: Annotated[RefundStatus | None, Query(description="Only refunds in this status.")] = None,
) -> RefundList:
    assert principal.tenant_id is not None
    result = await list_refunds(
        request.app.state.pool,
        tenant_id=principal.tenant_id,
        page=page,
        intent_id=payment_intent,
        status=status.value if status else None,
    )
    return RefundList.of(result, url="/v1/refunds", item=RefundRead.of)


@router.get("/v1/refunds/{refund_id}", response_model=RefundRead, summary="Retrieve a refund")
async def retrieve_refund(request: Request, principal: RefundsRead, refund_id: RefundId) -> RefundRead:
    assert principal.tenant_id is not None
    try:
        return RefundRead.of(await get_refund(request.app.state.pool, tenant_id=principal.tenant_id, refund_id=refund_id))
    except RefundNotFound as error:
        raise not_found(str(error), param="refund_id") from None
