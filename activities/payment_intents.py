"""Payment intents' side effects: per change, the ledger postings it calls for (ids derived from
the intent and step), then the read model, the events and the sweep request, in one transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from temporalio import activity

from activities.ledger_postings import post_moves
from contracts.deposit import intent_deposit_address
from db.chain import DepositAddress, register_deposit_address
from db.events import NewEvent, insert_events
from db.ledger_store import LedgerStore
from db.payment_intents import find_payment_intent, stored_intent_object
from db.sweeps import SweepRequest, request_sweep
from domain.events import EventType
from domain.payment_intents import LedgerMove, PaymentIntentInput, PaymentIntentView


@dataclass(frozen=True)
class AssignDepositInput:
    intent_id: str
    chain_id: int


@dataclass(frozen=True)
class DepositAssignment:
    address: str  # checksum
    salt: str  # 0x-hex bytes32
    factory: str


@dataclass
class IntentRecord:
    input: PaymentIntentInput
    deposit: DepositAssignment
    view: PaymentIntentView
    events: list[tuple[str, str]]  # (event id, event type)
    register: bool = False
    # Posted before the read model changes, so an event never announces money the ledger lacks.
    moves: list[LedgerMove] = field(default_factory=list)
    # What the deposit address holds per the ledger after `moves`; raising it asks for a sweep.
    held_base_units: int = 0


def deposit_assignment(intent_id: str, *, factory: str, implementation: str) -> DepositAssignment:
    """The intent's CREATE2 address: computed, not generated; no key exists for it."""
    address, salt = intent_deposit_address(intent_id, factory=factory, implementation=implementation)
    return DepositAssignment(address=address, salt=salt, factory=factory)


async def intent_object(connection: asyncpg.Connection, *, intent_id: str, view: PaymentIntentView) -> dict[str, Any]:
    """What the intent's events carry: its read model as this transaction just wrote it, through
    the serializer the API answers with (domain.events.payment_intent_object), each payment's
    confirmations as the workflow counts them. So an event's `data` is what GET answered then."""
    stored = await find_payment_intent(connection, intent_id=intent_id)
    assert stored is not None, f"intent {intent_id} is recorded before its events"
    return stored_intent_object(stored, confirmations={f"{p.tx_hash.lower()}:{p.log_index}": p.confirmations for p in view.payments})


class PaymentIntentActivities:
    def __init__(self, pool: asyncpg.Pool, ledger: LedgerStore, *, chain_id: int, deposit_factory: str, deposit_implementation: str) -> None:
        self._pool = pool
        self._ledger = ledger
        self._chain_id = chain_id
        self._deposit_factory = deposit_factory
        self._deposit_implementation = deposit_implementation

    @activity.defn
    async def assign_deposit_address(self, input: AssignDepositInput) -> DepositAssignment:
        assert input.chain_id == self._chain_id, f"this worker serves chain {self._chain_id}"
        return deposit_assignment(input.intent_id, factory=self._deposit_factory, implementation=self._deposit_implementation)

    @activity.defn
    async def record_payment_intent(self, record: IntentRecord) -> None:
        """Read model + payments' flags + events, in one transaction; safe to run again."""
        input, view = record.input, record.view
        await post_moves(
            self._ledger, ledger_id=input.ledger_id, asset_key=input.asset_key, moves=record.moves, linked=True
        )
        async with self._pool.acquire() as connection, connection.transaction():
            if record.register:
                await connection.execute(
                    """
                    INSERT INTO payment_intents (id, tenant_id, status, chain_id, asset, token_address, deposit_address, amount,
                        fee_bps, confirmations_required, description, metadata, success_url, cancel_url, client_secret_hash,
                        idempotency_key, expires_at, notify_url)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14, $15, $16, $17::timestamptz, $18)
                    ON CONFLICT (id) DO NOTHING
                    """,
                    input.intent_id, input.tenant_id, view.status, input.chain_id, input.asset, input.token_address.lower(),
                    record.deposit.address.lower(), input.amount_base_units, input.fee_bps, input.confirmations_required,
                    input.description, json.dumps(input.metadata), input.success_url, input.cancel_url,
                    input.client_secret_hash, input.idempotency_key, datetime.fromisoformat(input.expires_at), input.notify_url,
                )
                await register_deposit_address(
                    connection,
                    deposit=DepositAddress(
                        chain_id=input.chain_id, address=record.deposit.address, intent_id=input.intent_id, token_address=input.token_address
                    ),
                    salt=record.deposit.salt,
                )
            await connection.execute(
                """
                UPDATE payment_intents SET status = $2, amount_received = $3, amount_refundable = $4 + amount_unattributed,
                    fee = $5, net = $6, updated_at = now()
                WHERE id = $1
                """,
                input.intent_id, view.status, int(view.amount_received), int(view.amount_refundable),
                int(view.fee) if view.fee is not None else None, int(view.net) if view.net is not None else None,
            )
            late_payments = [(input.chain_id, p.tx_hash, p.log_index) for p in view.payments if p.late]
            if late_payments:
                await connection.executemany(
                    "UPDATE intent_payments SET late = true WHERE chain_id = $1 AND tx_hash = $2 AND log_index = $3", late_payments
                )
            if record.held_base_units > 0:
                await request_sweep(
                    connection,
                    request=SweepRequest(
                        intent_id=input.intent_id, tenant_id=input.tenant_id, ledger_id=input.ledger_id, asset_key=input.asset_key,
                        chain_id=input.chain_id, token_address=input.token_address, salt=record.deposit.salt,
                        held_base_units=record.held_base_units,
                    ),
                )
            if record.events:
                data = await intent_object(connection, intent_id=input.intent_id, view=view)
                await insert_events(
                    connection,
                    events=[
                        NewEvent(id=event_id, tenant_id=input.tenant_id, type=EventType(event_type), object_id=input.intent_id, data=data)
                        for event_id, event_type in record.events
                    ],
                )
        if record.events:
            activity.logger.info("intent %s: %s", input.intent_id, ", ".join(t for _, t in record.events))
