"""Refunds of payment intents: create one (to an address the customer gives), retrieve, list:
parse, authorize, serialize. The work is in api/services/refunds.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from fastapi.responses import JSONResponse

from api.auth import TenantPrincipal, tenant_key
from api.deps import PoolDep, SettingsDep, TemporalDep
from api.errors import ApiError, ErrorType, not_found
from api.idempotency import Idempotency
from api.pagination import PageParams
from api.routers.payment_intents import UNAVAILABLE, IntentId, tenant_intent
from api.routing import settle_router
from api.schemas_refunds import RefundCreate, RefundList, RefundRead
from api.services import refunds
from db.payment_intents import PaymentIntentNotFound
from db.refunds import RefundNotFound, get_refund, list_refunds
from domain.refunds import RefundRuleError, RefundStatus
from domain.tenants import OBJECT_ID_LENGTH_MAX, OBJECT_ID_PATTERN, Scope

router = settle_router(tags=["refunds"])

# Refunds move a payment intent's money: the intents' scopes govern them.
RefundsRead = Annotated[TenantPrincipal, tenant_key(Scope.PAYMENT_INTENTS_READ)]
RefundsWrite = Annotated[TenantPrincipal, tenant_key(Scope.PAYMENT_INTENTS_WRITE)]
RefundId = Annotated[str, Path(pattern=OBJECT_ID_PATTERN, max_length=OBJECT_ID_LENGTH_MAX, description="A refund id, `re_...`.")]


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
    principal: RefundsWrite,
    idempotency: Idempotency,
    intent_id: IntentId,
    body: RefundCreate,
    pool: PoolDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> JSONResponse:
    try:
        refund = await refunds.create_intent_refund(
            pool=pool,
            temporal=temporal,
            settings=settings,
            tenant_id=principal.tenant_id,
            intent_id=intent_id,
            amount=body.amount,
            address=body.address,
            reason=body.reason.value if body.reason else None,
            metadata=dict(body.metadata),
            refund_id=idempotency.workflow_id("re"),
            idempotency_key=idempotency.key,
        )
    except PaymentIntentNotFound as error:
        raise not_found(str(error), param="intent_id") from None
    except RefundRuleError as error:
        raise ApiError(409, type=ErrorType.INVALID_REQUEST, code=error.code, message=error.message, param=error.param) from None
    return JSONResponse(RefundRead.of(refund).model_dump(mode="json"), status_code=201)


@router.get(
    "/v1/payment_intents/{intent_id}/refunds", response_model=RefundList, summary="List a payment intent's refunds, newest first"
)
async def list_intent_refunds(principal: RefundsRead, page: PageParams, intent_id: IntentId, pool: PoolDep) -> RefundList:
    intent = await tenant_intent(pool, principal, intent_id, param="intent_id")
    result = await list_refunds(pool, tenant_id=principal.tenant_id, page=page, intent_id=intent.id)
    return RefundList.of(result, url=f"/v1/payment_intents/{intent.id}/refunds", item=RefundRead.of)


@router.get("/v1/refunds", response_model=RefundList, summary="List refunds, newest first")
async def list_tenant_refunds(
    principal: RefundsRead,
    page: PageParams,
    pool: PoolDep,
    payment_intent: Annotated[
        str | None, Query(pattern=OBJECT_ID_PATTERN, max_length=OBJECT_ID_LENGTH_MAX, description="Only this payment intent's refunds.")
    ] = None,
    status: Annotated[RefundStatus | None, Query(description="Only refunds in this status.")] = None,
) -> RefundList:
    result = await list_refunds(
        pool,
        tenant_id=principal.tenant_id,
        page=page,
        intent_id=payment_intent,
        status=status.value if status else None,
    )
    return RefundList.of(result, url="/v1/refunds", item=RefundRead.of)


@router.get("/v1/refunds/{refund_id}", response_model=RefundRead, summary="Retrieve a refund")
async def retrieve_refund(principal: RefundsRead, refund_id: RefundId, pool: PoolDep) -> RefundRead:
    try:
        return RefundRead.of(await get_refund(pool, tenant_id=principal.tenant_id, refund_id=refund_id))
    except RefundNotFound as error:
        raise not_found(str(error), param="refund_id") from None
