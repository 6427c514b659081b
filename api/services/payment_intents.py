"""Payment intents: create (update-with-start of the intent's workflow), cancel (an update), the
confirmations the workflow counts (a query), and the read model the workflow writes. The API
never touches the ledger or the chain."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

import asyncpg
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from api.services.errors import Conflict, InvalidInput, Unavailable
from api.temporal import UNAVAILABLE_MESSAGE, TemporalConnector
from contracts.deposit import intent_deposit_address
from db.audit import Actor
from db.secret_box import SecretBox
from db.payment_intents import StoredIntent, find_payment_intent, get_payment_intent
from db.settings import Settings
from db.tenants import get_tenant
from db.webhook_endpoints import prepare_notify_url
from db.settings import WebhookSettings
from domain.confirmations import ConfirmationsBelowFloor, confirmations_required
from domain.errors import INTENT_REGISTRATION_FAILED
from domain.money import Asset, InvalidAmount, parse_amount, usd_cents_of_stablecoin
from domain.payment_intents import TERMINAL_STATUSES, PaymentIntentInput
from domain.tenants import OBJECT_ID_LENGTH_MAX, OBJECT_ID_PATTERN
from domain.webhooks import parse_target_url
from workflows.payment_intent_workflow import PaymentIntentWorkflow, expires_at_iso, start_payment_intent

logger = logging.getLogger("settle.api")

CLIENT_SECRET_LENGTH_MAX = 200
VIEW_QUERY_TIMEOUT_S = 2.0
# What a create may take before it answers 503: registering is one local activity on a healthy stack.
CREATE_TIMEOUT_S = 15.0
# Compared against when no intent matched, so a miss costs what a wrong secret costs.
_DUMMY_SECRET_HASH = hashlib.sha256(b"settle: no such intent").hexdigest()
_INTENT_ID = re.compile(OBJECT_ID_PATTERN)


@dataclass(frozen=True)
class IntentOrder:
    """What a create asks for, as the router parsed it (amounts still as the client wrote them)."""

    asset: str
    amount: str
    confirmations: int | None
    expires_in: int | None
    description: str | None
    metadata: dict[str, str]
    success_url: str | None
    cancel_url: str | None
    notify_url: str | None


@dataclass(frozen=True)
class CreatedIntent:
    intent: StoredIntent
    # None when the id already named an intent (a key retried past its retention): never shown twice.
    client_secret: str | None
    # The notify_url endpoint's secret, if this create made it.
    notify_secret: str | None


def hash_client_secret(secret: str) -> str:
    """What an intent stores of its client secret (create) and checks against (the public view,
    the checkout page)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def served_asset(settings: Settings, *, code: str) -> Asset:
    asset = settings.assets().get(code)
    if asset is None or asset.token_address is None:
        accepted = ", ".join(sorted(settings.assets())) or "none configured"
        raise InvalidInput(f"asset must be one of: {accepted}", param="asset")
    return asset


def amount_of(text: str, *, asset: Asset) -> int:
    try:
        return parse_amount(text, asset=asset)
    except InvalidAmount as error:
        raise InvalidInput(str(error), param="amount") from None


def _deposit_fields(settings: Settings, intent_id: str) -> dict[str, str]:
    """The intent's CREATE2 deposit address, computed here (pure, no node) so the workflow starts
    with it and is findable by it at once."""
    if "DepositFactory" not in settings.contracts or "DepositForwarder" not in settings.contracts:
        return {}
    factory = settings.contracts["DepositFactory"]
    address, salt = intent_deposit_address(intent_id, factory=factory, implementation=settings.contracts["DepositForwarder"])
    return {"deposit_address": address, "deposit_salt": salt, "deposit_factory": factory}


async def create_payment_intent(
    *,
    pool: asyncpg.Pool,
    temporal: TemporalConnector,
    settings: Settings,
    webhook_settings: WebhookSettings,
    secret_box: SecretBox,
    tenant_id: str,
    actor: Actor,
    order: IntentOrder,
    intent_id: str | None,
    idempotency_key: str | None,
) -> CreatedIntent:
    """Validate the order against the domain, start the intent's workflow (bounded: a workflow that
    cannot register the intent in time is `Unavailable`, retry with the same Idempotency-Key) and
    read back what it stored. Webhook rules (`notify_url`) rise as the webhook repository's errors."""
    asset = served_asset(settings, code=order.asset)
    amount = amount_of(order.amount, asset=asset)
    if order.notify_url is not None:
        parse_target_url(order.notify_url, policy=webhook_settings.url_policy, param="notify_url")
    client = await temporal.get()
    tenant = await get_tenant(pool, tenant_id=tenant_id)
    try:
        required = confirmations_required(
            usd_cents=usd_cents_of_stablecoin(amount, decimals=asset.decimals),
            amount_base_units=amount,
            tenant_tiers=(tenant.confirmation_policy or {}).get("tiers"),
            requested=order.confirmations,
        )
    except ConfirmationsBelowFloor as error:
        raise InvalidInput(str(error), param="confirmations") from None
    intent_id = intent_id or "pi_" + secrets.token_hex(12)
    client_secret = f"{intent_id}_secret_{secrets.token_urlsafe(24)}"
    input = PaymentIntentInput(
        intent_id=intent_id,
        tenant_id=tenant_id,
        ledger_id=tenant_id,
        chain_id=asset.chain_id,
        asset=asset.code,
        asset_key=asset.key,
        token_address=asset.token_address,
        decimals=asset.decimals,
        amount_base_units=amount,
        fee_bps=tenant.fee_bps,
        confirmations_required=required,
        expires_at=expires_at_iso(datetime.now(timezone.utc), order.expires_in),
        client_secret_hash=hash_client_secret(client_secret),
        description=order.description,
        metadata=dict(order.metadata),
        success_url=order.success_url,
        cancel_url=order.cancel_url,
        idempotency_key=idempotency_key,
        notify_url=order.notify_url,
        **_deposit_fields(settings, intent_id),
    )
    notify_secret: str | None = None
    if order.notify_url is not None:
        # Before the workflow starts, so its first event finds the endpoint and the secret ready.
        target = await prepare_notify_url(
            pool,
            secret_box=secret_box,
            url_policy=webhook_settings.url_policy,
            tenant_id=tenant_id,
            url=order.notify_url,
            actor=actor,
        )
        notify_secret = target.secret_created
    try:
        await asyncio.wait_for(start_payment_intent(client, input, task_queue=settings.task_queue), timeout=CREATE_TIMEOUT_S)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        if isinstance(cause, ApplicationError) and cause.type == INTENT_REGISTRATION_FAILED:
            # Data the database refused past validation: the same request fails the same way.
            logger.error("payment intent %s could not be stored: %s", intent_id, cause.message)
            raise InvalidInput("The payment intent could not be stored: a field holds a value that cannot be saved.") from None
        logger.warning("could not start payment intent %s: %s", intent_id, type(cause).__name__)
        raise Unavailable(UNAVAILABLE_MESSAGE) from None
    except Exception as error:  # noqa: BLE001 - RPC failures, timeouts: the client may retry
        logger.warning("could not start payment intent %s: %s", intent_id, type(error).__name__)
        raise Unavailable(UNAVAILABLE_MESSAGE) from None
    intent = await get_payment_intent(pool, tenant_id=tenant_id, intent_id=intent_id)
    # The same id again (a key retried past its retention) finds the first intent: its secret
    # is not this one, and is never shown twice.
    shown = client_secret if hmac.compare_digest(intent.client_secret_hash, input.client_secret_hash) else None
    return CreatedIntent(intent=intent, client_secret=shown, notify_secret=notify_secret)


async def cancel_payment_intent(*, pool: asyncpg.Pool, temporal: TemporalConnector, tenant_id: str, intent_id: str) -> StoredIntent:
    """Cancel an intent that has received nothing, through its workflow's update; the intent as it
    is then. A missing intent rises as PaymentIntentNotFound."""
    intent = await get_payment_intent(pool, tenant_id=tenant_id, intent_id=intent_id)
    terminal = Conflict(f"This payment intent is {intent.status}; it can no longer be canceled.", code="intent_terminal")
    received = Conflict(
        "This payment intent has received a payment and cannot be canceled; refund it once it settles.", code="payment_received"
    )
    if intent.status in TERMINAL_STATUSES:
        raise terminal
    if intent.amount_received > 0 or intent.payments:
        raise received
    client = await temporal.get()
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
        raise Unavailable(UNAVAILABLE_MESSAGE) from None
    return await get_payment_intent(pool, tenant_id=tenant_id, intent_id=intent_id)


async def payment_confirmations(
    *, temporal: TemporalConnector, intent: StoredIntent, timeout_s: float = VIEW_QUERY_TIMEOUT_S
) -> dict[str, int] | None:
    """Each payment's confirmations (by `tx_hash:log_index`), from the workflow; None if it cannot
    say right now (never waits for a connection: the read model still answers)."""
    if not intent.payments:
        return {}
    if temporal.client is None:
        return None
    try:
        view = await asyncio.wait_for(
            temporal.client.get_workflow_handle(intent.id).query(PaymentIntentWorkflow.view), timeout=timeout_s
        )
    except Exception:  # noqa: BLE001 - best effort: the read model still answers
        return None
    return {f"{payment.tx_hash.lower()}:{payment.log_index}": payment.confirmations for payment in view.payments}


async def authorized_intent(*, pool: asyncpg.Pool, intent_id: str, client_secret: str | None) -> StoredIntent | None:
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
