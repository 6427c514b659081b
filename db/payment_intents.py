"""The payment intents' read model, as the API reads it: always scoped to one tenant. The workflow
writes it (activities.payment_intents); the API only reads. Their events: db.events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from db.audit import Clause, fetch_page
from domain.events import PaymentFacts, payment_intent_object
from domain.pagination import Page, PageRequest

Connection = asyncpg.Pool | asyncpg.Connection


class PaymentIntentNotFound(LookupError):
    def __init__(self, intent_id: str) -> None:
        super().__init__(f"No such payment intent: {intent_id}")
        self.intent_id = intent_id


@dataclass(frozen=True)
class IntentPayment:
    tx_hash: str
    log_index: int
    amount: int
    block_number: int
    block_hash: str
    sender: str
    orphaned: bool
    late: bool


@dataclass(frozen=True)
class StoredIntent:
    id: str
    tenant_id: str
    status: str
    chain_id: int
    asset: str
    token_address: str
    deposit_address: str
    amount: int
    amount_received: int
    amount_refundable: int
    amount_refunded: int
    amount_swept: int
    fee: int | None
    net: int | None
    fee_bps: int
    confirmations_required: int
    description: str | None
    metadata: dict[str, str]
    success_url: str | None
    cancel_url: str | None
    client_secret_hash: str
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    payments: tuple[IntentPayment, ...] = ()
    # Where every event of the intent is also delivered (signed with the tenant's notify secret).
    notify_url: str | None = None


def _intent(row: asyncpg.Record, payments: tuple[IntentPayment, ...] = ()) -> StoredIntent:
    metadata = row["metadata"]
    return StoredIntent(
        id=row["id"],
        tenant_id=row["tenant_id"],
        status=row["status"],
        chain_id=row["chain_id"],
        asset=row["asset"],
        token_address=row["token_address"],
        deposit_address=row["deposit_address"],
        amount=int(row["amount"]),
        amount_received=int(row["amount_received"]),
        amount_refundable=int(row["amount_refundable"]),
        amount_refunded=int(row["amount_refunded"]),
        amount_swept=int(row["amount_swept"]),
        fee=int(row["fee"]) if row["fee"] is not None else None,
        net=int(row["net"]) if row["net"] is not None else None,
        fee_bps=row["fee_bps"],
        confirmations_required=row["confirmations_required"],
        description=row["description"],
        metadata=json.loads(metadata) if isinstance(metadata, str) else dict(metadata or {}),
        success_url=row["success_url"],
        cancel_url=row["cancel_url"],
        client_secret_hash=row["client_secret_hash"],
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        payments=payments,
        notify_url=row["notify_url"],
    )


def stored_intent_object(intent: StoredIntent, *, confirmations: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The intent as merchants see it (domain.events.payment_intent_object), from its read model:
    what the API answers, and what an event written from the read model carries. `confirmations`
    maps `<tx_hash in lower case>:<log_index>` to a count (the workflow knows it); a payment it
    does not name, or None, shows null."""
    return payment_intent_object(
        id=intent.id,
        status=intent.status,
        amount_base_units=intent.amount,
        amount_received_base_units=intent.amount_received,
        amount_refundable_base_units=intent.amount_refundable,
        amount_refunded_base_units=intent.amount_refunded,
        amount_swept_base_units=intent.amount_swept,
        fee_base_units=intent.fee,
        net_base_units=intent.net,
        fee_bps=intent.fee_bps,
        asset=intent.asset,
        chain_id=intent.chain_id,
        token_address=intent.token_address,
        deposit_address=intent.deposit_address,
        confirmations_required=intent.confirmations_required,
        description=intent.description,
        metadata=intent.metadata,
        success_url=intent.success_url,
        cancel_url=intent.cancel_url,
        notify_url=intent.notify_url,
        expires_at=intent.expires_at,
        created_at=intent.created_at,
        payments=[
            PaymentFacts(
                tx_hash=payment.tx_hash,
                log_index=payment.log_index,
                amount_base_units=payment.amount,
                block_number=payment.block_number,
                block_hash=payment.block_hash,
                confirmations=(confirmations or {}).get(f"{payment.tx_hash.lower()}:{payment.log_index}"),
                orphaned=payment.orphaned,
                late=payment.late,
            )
            for payment in intent.payments
        ],
    )


async def _payments(connection: Connection, *, intent_ids: list[str]) -> dict[str, tuple[IntentPayment, ...]]:
    if not intent_ids:
        return {}
    rows = await connection.fetch(
        """
        SELECT intent_id, tx_hash, log_index, amount, block_number, block_hash, sender, orphaned, late
        FROM intent_payments WHERE intent_id = ANY($1::text[]) ORDER BY block_number, log_index
        """,
        intent_ids,
    )
    found: dict[str, list[IntentPayment]] = {}
    for row in rows:
        found.setdefault(row["intent_id"], []).append(
            IntentPayment(
                tx_hash=row["tx_hash"],
                log_index=row["log_index"],
                amount=int(row["amount"]),
                block_number=row["block_number"],
                block_hash=row["block_hash"],
                sender=row["sender"],
                orphaned=row["orphaned"],
                late=row["late"],
            )
        )
    return {intent_id: tuple(payments) for intent_id, payments in found.items()}


async def find_payment_intent(connection: Connection, *, intent_id: str) -> StoredIntent | None:
    """Any tenant's intent: only for the public (client-secret) view, which checks the secret."""
    row = await connection.fetchrow("SELECT * FROM payment_intents WHERE id = $1", intent_id)
    if row is None:
        return None
    return _intent(row, (await _payments(connection, intent_ids=[intent_id])).get(intent_id, ()))


async def get_payment_intent(connection: Connection, *, tenant_id: str, intent_id: str) -> StoredIntent:
    row = await connection.fetchrow("SELECT * FROM payment_intents WHERE id = $1 AND tenant_id = $2", intent_id, tenant_id)
    if row is None:
        raise PaymentIntentNotFound(intent_id)
    return _intent(row, (await _payments(connection, intent_ids=[intent_id])).get(intent_id, ()))


async def list_payment_intents(
    connection: Connection, *, tenant_id: str, page: PageRequest, status: str | None = None
) -> Page[StoredIntent]:
    filters: list[Clause] = []
    if status is not None:
        filters.append(("status = {}", status))
    result = await fetch_page(connection, table="payment_intents", scope=[("tenant_id = {}", tenant_id)], filters=filters, page=page)
    payments = await _payments(connection, intent_ids=[row["id"] for row in result.items])
    return Page(items=[_intent(row, payments.get(row["id"], ())) for row in result.items], has_more=result.has_more)


async def count_payment_intents(connection: Connection, *, tenant_id: str) -> int:
    return await connection.fetchval("SELECT count(*) FROM payment_intents WHERE tenant_id = $1", tenant_id)
