"""The refunds' read model: created by the API under its intent's row lock (so concurrent requests
never refund more than the intent can), then changed only by the refund's workflow
(activities.refunds). Reads are always scoped to one tenant."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from db.audit import Clause, fetch_page
from db.events import NewEvent, insert_events
from db.payment_intents import PaymentIntentNotFound
from domain.events import EventType, refund_object
from domain.pagination import Page, PageRequest
from domain.refunds import TERMINAL_REFUND_STATUSES, RefundFunding, RefundStatus, fund_refund, refund_capacity

Connection = asyncpg.Pool | asyncpg.Connection

# How long the workflow's first step waits for the API's transaction to let go of the intent row.
CREATION_LOCK_TIMEOUT_MS = 5_000


class RefundNotFound(LookupError):
    def __init__(self, refund_id: str) -> None:
        super().__init__(f"No such refund: {refund_id}")
        self.refund_id = refund_id


@dataclass(frozen=True)
class StoredRefund:
    id: str
    tenant_id: str
    intent_id: str
    chain_id: int
    asset: str
    token_address: str
    amount: int
    amount_from_refundable: int
    amount_from_balance: int
    address: str
    status: str
    failure_code: str | None
    failure_message: str | None
    tx_hash: str | None
    reason: str | None
    metadata: dict[str, str]
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class CreatedRefund:
    refund: StoredRefund
    created: bool  # False: the id existed (the same Idempotency-Key past its retention)


def _refund(row: asyncpg.Record) -> StoredRefund:
    metadata = row["metadata"]
    return StoredRefund(
        id=row["id"],
        tenant_id=row["tenant_id"],
        intent_id=row["intent_id"],
        chain_id=row["chain_id"],
        asset=row["asset"],
        token_address=row["token_address"],
        amount=int(row["amount"]),
        amount_from_refundable=int(row["amount_from_refundable"]),
        amount_from_balance=int(row["amount_from_balance"]),
        address=row["address"],
        status=row["status"],
        failure_code=row["failure_code"],
        failure_message=row["failure_message"],
        tx_hash=row["tx_hash"],
        reason=row["reason"],
        metadata=json.loads(metadata) if isinstance(metadata, str) else dict(metadata or {}),
        idempotency_key=row["idempotency_key"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def stored_refund_object(refund: StoredRefund) -> dict[str, Any]:
    """The refund as merchants see it (domain.events.refund_object): what the API answers and its
    events carry."""
    return refund_object(
        id=refund.id,
        intent_id=refund.intent_id,
        status=refund.status,
        amount_base_units=refund.amount,
        amount_from_refundable_base_units=refund.amount_from_refundable,
        amount_from_balance_base_units=refund.amount_from_balance,
        asset=refund.asset,
        chain_id=refund.chain_id,
        token_address=refund.token_address,
        address=refund.address,
        tx_hash=refund.tx_hash,
        failure_code=refund.failure_code,
        failure_message=refund.failure_message,
        reason=refund.reason,
        metadata=refund.metadata,
        created_at=refund.created_at,
        updated_at=refund.updated_at,
    )


# ------------------------------------------------------------------ creation (the API)
async def is_deposit_address(connection: Connection, *, chain_id: int, address: str) -> bool:
    """Whether `address` is one of Settle's deposit addresses: money sent there would be taken for
    a payment, not reach the customer."""
    return bool(
        await connection.fetchval("SELECT 1 FROM deposit_addresses WHERE chain_id = $1 AND address = $2", chain_id, address.lower())
    )


async def create_refund(
    connection: asyncpg.Connection,
    *,
    refund_id: str,
    tenant_id: str,
    intent_id: str,
    amount_base_units: int,
    address: str,
    reason: str | None,
    metadata: dict[str, str],
    idempotency_key: str | None,
) -> CreatedRefund:
    """Lock the intent's row, check the amount fits what it can still refund, insert the refund
    (`pending`). Run it inside the transaction that also starts the refund's workflow, so the row
    and the workflow exist together or not at all; the lock is held until that commits, so a
    concurrent request for the same intent sees this refund. Raises PaymentIntentNotFound, or
    domain.refunds.RefundRuleError when the amount does not fit."""
    assert connection.is_in_transaction(), "create_refund runs inside the caller's transaction"
    intent = await connection.fetchrow(
        """
        SELECT id, status, amount, amount_refundable, chain_id, asset, token_address
        FROM payment_intents WHERE id = $1 AND tenant_id = $2 FOR UPDATE
        """,
        intent_id,
        tenant_id,
    )
    if intent is None:
        raise PaymentIntentNotFound(intent_id)
    existing = await connection.fetchrow("SELECT * FROM refunds WHERE id = $1", refund_id)
    if existing is not None:
        # Ids carry the tenant (random, or the hash of tenant and Idempotency-Key).
        assert existing["tenant_id"] == tenant_id, refund_id
        return CreatedRefund(refund=_refund(existing), created=False)
    taken = await connection.fetch(
        "SELECT amount_from_refundable, amount_from_balance FROM refunds WHERE intent_id = $1 AND status <> $2",
        intent_id,
        RefundStatus.FAILED.value,
    )
    capacity = refund_capacity(
        intent_status=intent["status"],
        amount_refundable_base_units=int(intent["amount_refundable"]),
        amount_gross_base_units=int(intent["amount"]),
        refunds_not_failed=[
            RefundFunding(
                from_refundable_base_units=int(row["amount_from_refundable"]), from_balance_base_units=int(row["amount_from_balance"])
            )
            for row in taken
        ],
    )
    funding = fund_refund(amount_base_units, capacity)
    row = await connection.fetchrow(
        """
        INSERT INTO refunds (id, tenant_id, intent_id, chain_id, asset, token_address, amount, amount_from_refundable,
            amount_from_balance, address, reason, metadata, idempotency_key)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13)
        RETURNING *
        """,
        refund_id, tenant_id, intent_id, intent["chain_id"], intent["asset"], intent["token_address"].lower(),
        amount_base_units, funding.from_refundable_base_units, funding.from_balance_base_units, address, reason,
        json.dumps(metadata), idempotency_key,
    )
    return CreatedRefund(refund=_refund(row), created=True)


# ------------------------------------------------------------------ changes (the workflow)
async def find_created_refund(pool: asyncpg.Pool, *, refund_id: str, intent_id: str) -> StoredRefund | None:
    """The refund as its creator committed it, or None if its creator rolled back. Waits for the
    creating transaction first: it holds the intent's row lock until it commits or rolls back, and
    it started this refund's workflow while holding it."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(f"SET LOCAL lock_timeout = {CREATION_LOCK_TIMEOUT_MS}")
        await connection.execute("SELECT 1 FROM payment_intents WHERE id = $1 FOR SHARE", intent_id)
        row = await connection.fetchrow("SELECT * FROM refunds WHERE id = $1", refund_id)
        return _refund(row) if row else None


async def record_refund(
    pool: asyncpg.Pool,
    *,
    refund_id: str,
    status: RefundStatus | None = None,
    tx_hash: str | None = None,
    failure_code: str | None = None,
    failure_message: str | None = None,
    events: list[tuple[str, str]] | None = None,
) -> StoredRefund:
    """A change of the refund (its transaction's hash; its final status) and its events, in one
    transaction. Safe to run again: a final status is written once, events by their ids."""
    assert (status is RefundStatus.FAILED) == (failure_code is not None)
    async with pool.acquire() as connection, connection.transaction():
        if status in TERMINAL_REFUND_STATUSES:
            changed = await connection.execute(
                """
                UPDATE refunds SET status = $2, failure_code = $3, failure_message = $4, tx_hash = COALESCE($5, tx_hash),
                    updated_at = now()
                WHERE id = $1 AND status = $6
                """,
                refund_id, status.value, failure_code, failure_message, tx_hash, RefundStatus.PENDING.value,
            )
            if status is RefundStatus.SUCCEEDED and changed == "UPDATE 1":
                # Once, with the status change: a retried call finds the refund no longer pending.
                await connection.execute(
                    """
                    UPDATE payment_intents AS intent SET amount_refunded = intent.amount_refunded + refund.amount, updated_at = now()
                    FROM refunds AS refund WHERE refund.id = $1 AND intent.id = refund.intent_id
                    """,
                    refund_id,
                )
        elif tx_hash is not None:
            await connection.execute(
                "UPDATE refunds SET tx_hash = $2, updated_at = now() WHERE id = $1 AND tx_hash IS DISTINCT FROM $2", refund_id, tx_hash
            )
        row = await connection.fetchrow("SELECT * FROM refunds WHERE id = $1", refund_id)
        if row is None:
            raise RefundNotFound(refund_id)
        refund = _refund(row)
        assert status is None or refund.status == status.value, f"refund {refund_id} is already {refund.status}"
        if events:
            data = stored_refund_object(refund)
            await insert_events(
                connection,
                events=[
                    NewEvent(id=event_id, tenant_id=refund.tenant_id, type=EventType(event_type), object_id=refund.id, data=data)
                    for event_id, event_type in events
                ],
            )
        return refund


# ------------------------------------------------------------------ reads (the API)
async def get_refund(connection: Connection, *, tenant_id: str, refund_id: str) -> StoredRefund:
    row = await connection.fetchrow("SELECT * FROM refunds WHERE id = $1 AND tenant_id = $2", refund_id, tenant_id)
    if row is None:
        raise RefundNotFound(refund_id)
    return _refund(row)


async def list_refunds(
    connection: Connection, *, tenant_id: str, page: PageRequest, intent_id: str | None = None, status: str | None = None
) -> Page[StoredRefund]:
    filters: list[Clause] = []
    if intent_id is not None:
        filters.append(("intent_id = {}", intent_id))
    if status is not None:
        filters.append(("status = {}", status))
    result = await fetch_page(connection, table="refunds", scope=[("tenant_id = {}", tenant_id)], filters=filters, page=page)
    return Page(items=[_refund(row) for row in result.items], has_more=result.has_more)
