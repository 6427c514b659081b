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

Every event Settle writes is named here (`EventType`), its id built here (one function per id
shape; the ids already stored, and those running workflows derive, keep their exact form) and its
payload built here. `db.events` is the only writer of the `events` table.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

_EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


# ---------------------------------------------------------------------------- types
class EventType(StrEnum):
    """Every event type Settle writes. A merchant's endpoint may subscribe to any name of this
    form (domain.webhooks.validate_enabled_events), including ones not written yet."""

    # A payment intent's life: one per status it reaches (domain.payment_intents.IntentStatus)...
    PAYMENT_INTENT_CREATED = "payment_intent.created"
    PAYMENT_INTENT_REQUIRES_PAYMENT = "payment_intent.requires_payment"  # back to waiting after a reorg
    PAYMENT_INTENT_PROCESSING = "payment_intent.processing"
    PAYMENT_INTENT_SUCCEEDED = "payment_intent.succeeded"
    PAYMENT_INTENT_EXPIRED = "payment_intent.expired"
    PAYMENT_INTENT_CANCELED = "payment_intent.canceled"
    # ...and what happens to its money besides.
    PAYMENT_INTENT_PAYMENT_ORPHANED = "payment_intent.payment_orphaned"
    PAYMENT_INTENT_PAYMENT_LATE = "payment_intent.payment_late"
    PAYMENT_INTENT_SWEPT = "payment_intent.swept"
    REFUND_CREATED = "refund.created"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    # About a tenant's own webhook endpoints, delivered through them.
    WEBHOOK_ENDPOINT_FAILING = "webhook_endpoint.failing"
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint.disabled"


def intent_status_event_type(status: str) -> EventType:
    """The event of a payment intent reaching `status` (an IntentStatus value)."""
    return EventType(f"payment_intent.{status}")


# ---------------------------------------------------------------------------- ids
# An event's id is derived from its object and the change, never random: whoever records a change
# twice (a retried activity, a second watcher pass) inserts its event once. Each shape below is
# stored, and the first is also part of running workflows' state: none may change its form.
def _intent_part(intent_id: str) -> str:
    return intent_id.removeprefix("pi_")


def intent_event_id(*, intent_id: str, sequence: int) -> str:
    """The `sequence`-th event (from 1) the intent's workflow records: `evt_<intent>_0001`."""
    assert sequence >= 1, sequence
    return f"evt_{_intent_part(intent_id)}_{sequence:04d}"


def intent_swept_event_id(*, intent_id: str, swept_total_base_units: int) -> str:
    """The sweep that brought the intent's swept total to `swept_total_base_units`."""
    return f"evt_{_intent_part(intent_id)}_swept_{base_units(swept_total_base_units)}"


def intent_late_payment_event_id(*, intent_id: str, tx_hash: str, log_index: int) -> str:
    """A payment that arrived after the intent's workflow closed: one per (transaction, log)."""
    return f"evt_{_intent_part(intent_id)}_late_{tx_hash.removeprefix('0x')[:16]}_{log_index}"


def refund_event_id(*, refund_id: str, status: str) -> str:
    """One event per refund and status: `evt_re_..._succeeded`."""
    return f"evt_{refund_id}_{status}"


def webhook_endpoint_event_id(*, endpoint_id: str, event_type: str, at: datetime) -> str:
    """An endpoint's change (failing, disabled): one per endpoint, change and the moment it happened."""
    assert at.tzinfo is not None
    digest = hashlib.sha256(f"{endpoint_id}/{event_type}/{at.isoformat()}".encode()).hexdigest()[:24]
    return f"evt_{digest}"


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
        # The webhook dispatcher also delivers every event of the intent here (db.webhook_dispatch.fan_out_events).
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


# ---------------------------------------------------------------------------- webhook endpoints
def webhook_endpoint_object(
    *,
    id: str,
    url: str,
    description: str,
    enabled_events: Sequence[str],
    status: str,
    disabled_reason: str | None,
    health: str,
    failing_since: datetime | None,
    created_at: datetime,
) -> dict[str, Any]:
    """An endpoint as the `data` of a `webhook_endpoint.*` event: never a secret. Its timestamps
    keep the form these events have always had (`failing_since` with an offset, `created` in Unix
    seconds), which receivers already parse."""
    return {
        "id": id,
        "object": "webhook_endpoint",
        "url": url,
        "description": description,
        "enabled_events": list(enabled_events),
        "status": str(status),
        "disabled_reason": str(disabled_reason) if disabled_reason else None,
        "health": str(health),
        "failing_since": failing_since.isoformat() if failing_since else None,
        "created": int(created_at.timestamp()),
    }
