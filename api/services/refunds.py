"""Refunds of payment intents. A refund is inserted under its intent's row lock after checking what
the intent can still refund, and its RefundWorkflow is started in that same database transaction,
so two concurrent requests never refund more than the intent can, and a refund row never exists
without its workflow. The workflow reserves, pays and posts; the API never touches the ledger or
the chain."""

from __future__ import annotations

import logging
import secrets

import asyncpg

from api.services.errors import Conflict, InvalidInput, Unavailable
from api.services.payment_intents import amount_of
from api.temporal import TemporalConnector
from db.payment_intents import StoredIntent, get_payment_intent
from db.refunds import StoredRefund, create_refund, is_deposit_address
from db.settings import Settings
from domain.money import Asset
from domain.refunds import RefundInput
from workflows.refund_workflow import start_refund

logger = logging.getLogger("settle.api")

START_UNAVAILABLE_MESSAGE = (
    "Refunds are unavailable for a moment: the workflow engine cannot be reached. Nothing was created; retry later."
)


def _intent_asset(settings: Settings, *, intent: StoredIntent) -> Asset:
    """The asset the intent was paid in, if this deployment still serves it (same chain, same token)."""
    asset = settings.assets().get(intent.asset)
    if asset is None or asset.chain_id != intent.chain_id or (asset.token_address or "").lower() != intent.token_address.lower():
        raise Conflict(f"{intent.asset} on chain {intent.chain_id} is not served here.", code="asset_unavailable")
    return asset


async def _check_destination(*, pool: asyncpg.Pool, settings: Settings, intent: StoredIntent, address: str) -> None:
    """Refuse addresses the money would not reach the customer at: Settle's own contracts, its
    treasury and its deposit addresses (a transfer there counts as someone's payment)."""
    own = {value.lower() for value in settings.contracts.values()} | {intent.token_address.lower()}
    if settings.treasury_address:
        own.add(settings.treasury_address.lower())
    if address.lower() in own:
        raise InvalidInput("address is one of Settle's own contracts or its treasury, not a customer's address", param="address")
    if await is_deposit_address(pool, chain_id=intent.chain_id, address=address):
        raise InvalidInput(
            "address is a Settle deposit address: money sent there would count as a payment, not reach the customer", param="address"
        )


async def create_intent_refund(
    *,
    pool: asyncpg.Pool,
    temporal: TemporalConnector,
    settings: Settings,
    tenant_id: str,
    intent_id: str,
    amount: str,
    address: str,
    reason: str | None,
    metadata: dict[str, str],
    refund_id: str | None,
    idempotency_key: str | None,
) -> StoredRefund:
    """Create a refund of the tenant's intent and start its workflow. A missing intent rises as
    PaymentIntentNotFound, a refund the rules refuse as domain.refunds.RefundRuleError."""
    intent = await get_payment_intent(pool, tenant_id=tenant_id, intent_id=intent_id)
    asset = _intent_asset(settings, intent=intent)
    amount_base_units = amount_of(amount, asset=asset)
    await _check_destination(pool=pool, settings=settings, intent=intent, address=address)
    client = await temporal.get()
    refund_id = refund_id or "re_" + secrets.token_hex(12)
    async with pool.acquire() as connection, connection.transaction():
        created = await create_refund(
            connection,
            refund_id=refund_id,
            tenant_id=tenant_id,
            intent_id=intent.id,
            amount_base_units=amount_base_units,
            address=address,
            reason=reason,
            metadata=dict(metadata),
            idempotency_key=idempotency_key,
        )
        refund = created.refund
        if created.created:
            input = RefundInput(
                refund_id=refund.id,
                tenant_id=tenant_id,
                ledger_id=tenant_id,
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
                raise Unavailable(START_UNAVAILABLE_MESSAGE) from None
    return refund
