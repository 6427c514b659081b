"""The objects Settle shows merchants, built once: the API answers them and events (hence webhook
payloads) carry them, so the two never disagree. Pure: no I/O, no clock.

One form per kind of value, everywhere in these objects:

- amounts: strings of integer base units (`"2500000"`), `"0"` when nothing, never null; null only
  for what does not exist yet (`fee` and `net` before an intent succeeds);
- EVM addresses: EIP-55 checksummed, the form the API asks for in its inputs (domain.tenants,
  domain.refunds); hashes (`tx_hash`, `block_hash`): lower-case hex;
- timestamps: ISO 8601 in UTC with a `Z`, microseconds only when not zero
  (`2030-01-02T03:04:05.123456Z`, `2030-01-02T03:04:05Z`): the form the API's pydantic models
  give every other timestamp, so a client parses one format.

Issue 13 makes this module the home of every event's type, id and payload.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

_EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


# ---------------------------------------------------------------------------- values
def utc_timestamp(moment: datetime) -> str:
    """`moment` in UTC, ISO 8601 with a `Z`. A naive datetime is a programmer's error: its zone is a guess."""
    assert moment.tzinfo is not None, "timestamps are timezone-aware"
    return moment.astimezone(timezone.utc).isoformat().removesuffix("+00:00") + "Z"


@functools.lru_cache(maxsize=4096)
def checksum_address(address: str) -> str:
    """An EVM address in EIP-55 form, whatever case it was stored in. Anything else (another chain
    family's address) is returned as it is: its own form is already canonical."""
    if _EVM_ADDRESS.match(address) is None:
        return address
    from eth_utils import to_checksum_address  # slow to import; only here

    return to_checksum_address(address)


def base_units(amount: int) -> str:
    assert isinstance(amount, int) and not isinstance(amount, bool) and amount >= 0, amount
    return str(amount)


def _optional_base_units(amount: int | None) -> str | None:
    return None if amount is None else base_units(amount)


def _hash(value: str | None) -> str | None:
    return None if value is None else value.lower()


def payment_uri(*, token_address: str, chain_id: int, deposit_address: str, amount: int) -> str:
    """EIP-681: a wallet-readable request to call `transfer(deposit_address, amount)` on the token,
    with the addresses as given (the objects below give them checksummed)."""
    return f"ethereum:{token_address}@{chain_id}/transfer?address={deposit_address}&uint256={amount}"


# ---------------------------------------------------------------------------- payment intents
@dataclass(frozen=True)
class PaymentFacts:
    """One transfer to an intent's deposit address, as the object shows it. `confirmations` is
    None where it is not known right now (the API when the workflow cannot be asked)."""

    tx_hash: str
    log_index: int
    amount_base_units: int
    block_number: int
    block_hash: str
    confirmations: int | None
    orphaned: bool
    late: bool


def payment_object(payment: PaymentFacts) -> dict[str, Any]:
    return {
        "tx_hash": _hash(payment.tx_hash),
        "log_index": payment.log_index,
        "amount": base_units(payment.amount_base_units),
        "block_number": payment.block_number,
        "block_hash": _hash(payment.block_hash),
        "confirmations": payment.confirmations,
        "orphaned": payment.orphaned,
        "late": payment.late,
    }


def payment_intent_object(
    *,
    id: str,
    status: str,
    amount_base_units: int,
    amount_received_base_units: int,
    amount_refundable_base_units: int,
    amount_refunded_base_units: int,
    amount_swept_base_units: int,
    fee_base_units: int | None,
    net_base_units: int | None,
    fee_bps: int,
    asset: str,
    chain_id: int,
    token_address: str,
    deposit_address: str,
    confirmations_required: int,
    description: str | None,
    metadata: Mapping[str, str],
    success_url: str | None,
    cancel_url: str | None,
    notify_url: str | None,
    expires_at: datetime,
    created_at: datetime,
    payments: Sequence[PaymentFacts],
) -> dict[str, Any]:
    """The merchant's view of a payment intent: `GET /v1/payment_intents/{id}` and the `data` of
    every `payment_intent.*` event. The create response adds the client secret to it; the
    checkout page's public view shows a subset. Payments are in chain order, whatever order the
    caller knows them in."""
    token_address, deposit_address = checksum_address(token_address), checksum_address(deposit_address)
    return {
        "object": "payment_intent",
        "id": id,
        "status": str(status),
        "amount": base_units(amount_base_units),
        "amount_received": base_units(amount_received_base_units),
        "amount_remaining": base_units(max(0, amount_base_units - amount_received_base_units)),
        "amount_refundable": base_units(amount_refundable_base_units),
        "amount_refunded": base_units(amount_refunded_base_units),
        "amount_swept": base_units(amount_swept_base_units),
        "fee": _optional_base_units(fee_base_units),
        "net": _optional_base_units(net_base_units),
        "fee_bps": fee_bps,
        "asset": asset,
        "chain_id": chain_id,
        "token_address": token_address,
        "deposit_address": deposit_address,
        "payment_uri": payment_uri(
            token_address=token_address, chain_id=chain_id, deposit_address=deposit_address, amount=amount_base_units
        ),
        "confirmations_required": confirmations_required,
        "description": description,
        "metadata": dict(metadata),
        "success_url": success_url,
        "cancel_url": cancel_url,
        # The webhook dispatcher also delivers every event of the intent here (db.webhooks.fan_out_events).
        "notify_url": notify_url,
        "expires_at": utc_timestamp(expires_at),
        "created_at": utc_timestamp(created_at),
        "payments": [payment_object(payment) for payment in sorted(payments, key=lambda p: (p.block_number, p.log_index))],
    }


# ---------------------------------------------------------------------------- refunds
def refund_object(
    *,
    id: str,
    intent_id: str,
    status: str,
    amount_base_units: int,
    amount_from_refundable_base_units: int,
    amount_from_balance_base_units: int,
    asset: str,
    chain_id: int,
    token_address: str,
    address: str,
    tx_hash: str | None,
    failure_code: str | None,
    failure_message: str | None,
    reason: str | None,
    metadata: Mapping[str, str],
    created_at: datetime,
    updated_at: datetime,
) -> dict[str, Any]:
    """The merchant's view of a refund: `GET /v1/refunds/{id}` and the `data` of every `refund.*` event."""
    return {
        "object": "refund",
        "id": id,
        "payment_intent": intent_id,
        "status": str(status),
        "amount": base_units(amount_base_units),
        "amount_from_refundable": base_units(amount_from_refundable_base_units),
        "amount_from_balance": base_units(amount_from_balance_base_units),
        "asset": asset,
        "chain_id": chain_id,
        "token_address": checksum_address(token_address),
        "address": checksum_address(address),
        "tx_hash": _hash(tx_hash),
        "failure_code": failure_code,
        "failure_message": failure_message,
        "reason": reason,
        "metadata": dict(metadata),
        "created_at": utc_timestamp(created_at),
        "updated_at": utc_timestamp(updated_at),
    }
