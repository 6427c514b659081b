"""An intent started on the stack's worker the way `POST /v1/payment_intents` starts it, but with
an expiry shorter than the API's minute: for the expired page without waiting a minute."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timezone
from typing import Any

from domain.payment_intents import PaymentIntentInput
from tests.api.conftest import settings_for_stack
from workflows.payment_intent_workflow import expires_at_iso, start_payment_intent


async def start_intent_directly(
    temporal_client: Any,
    stack: dict[str, Any],
    *,
    tenant_id: str,
    amount_base_units: int,
    expires_in_s: int,
    asset: str = "usdc",
    confirmations_required: int = 1,
    description: str | None = None,
    success_url: str | None = None,
    cancel_url: str | None = None,
) -> dict[str, Any]:
    token = settings_for_stack(stack).assets()[asset]
    intent_id = "pi_" + secrets.token_hex(12)
    client_secret = f"{intent_id}_secret_{secrets.token_urlsafe(24)}"
    input = PaymentIntentInput(
        intent_id=intent_id,
        tenant_id=tenant_id,
        ledger_id=tenant_id,
        chain_id=token.chain_id,
        asset=token.code,
        asset_key=token.key,
        token_address=token.token_address,
        decimals=token.decimals,
        amount_base_units=amount_base_units,
        fee_bps=100,
        confirmations_required=confirmations_required,
        expires_at=expires_at_iso(datetime.now(timezone.utc), expires_in_s),
        client_secret_hash=hashlib.sha256(client_secret.encode()).hexdigest(),
        description=description,
        success_url=success_url,
        cancel_url=cancel_url,
    )
    view = await start_payment_intent(temporal_client, input, task_queue=stack["task_queue"])
    return {
        "id": intent_id,
        "client_secret": client_secret,
        "checkout_url": f"{stack['api_url']}/checkout/{intent_id}?client_secret={client_secret}",
        "deposit_address": view.deposit_address,
    }
