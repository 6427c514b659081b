"""Payment intents' side effects: the read model and events (one transaction per change), ledger
postings (ids derived from the intent and step), and the sweep call's calldata."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.ledger_store import LedgerStore
from domain.ledger import (
    AccountCode,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    NewAccount,
    NewTransfer,
    TransferFlags,
)
from contracts.deposit import deposit_salt, predict_deposit_address
from domain.payment_intents import LedgerMove, PaymentIntentInput, PaymentIntentView

SWEEP_SELECTOR = function_signature_to_4byte_selector("sweep(bytes32,address)")
# Asset-side accounts hold tokens: they may never send more than they received.
ACCOUNT_FLAGS_BY_CODE = {
    AccountCode.CUSTOMER_DEPOSITS: AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
    AccountCode.TREASURY: AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
    AccountCode.MERCHANT_AVAILABLE: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountCode.PLATFORM_FEES: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountCode.UNALLOCATED: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
}


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


@dataclass(frozen=True)
class PostIntentLedgerInput:
    ledger_id: str
    asset_key: str
    tenant_id: str
    moves: list[LedgerMove]


@dataclass(frozen=True)
class SweepCallInput:
    salt: str
    token: str


def ledger_account_id(*, ledger_id: str, asset_key: str, code: str) -> str:
    return f"{ledger_id}/{asset_key}/{code}"


def intent_object(input: PaymentIntentInput, view: PaymentIntentView) -> dict[str, Any]:  # noqa: D401
    """The merchant's view of an intent, as events carry it (amounts as strings of base units)."""
    return {
        "id": input.intent_id,
        "object": "payment_intent",
        "status": view.status,
        "amount": view.amount,
        "amount_received": view.amount_received,
        "amount_remaining": view.amount_remaining,
        "amount_refundable": view.amount_refundable,
        "amount_swept": view.amount_swept,
        "fee": view.fee,
        "net": view.net,
        "asset": input.asset,
        "chain_id": input.chain_id,
        "token_address": input.token_address,
        "deposit_address": view.deposit_address,
        "confirmations_required": view.confirmations_required,
        "description": input.description,
        "metadata": input.metadata,
        "expires_at": input.expires_at,
        "payments": [asdict(p) for p in view.payments],
    }


class PaymentIntentActivities:
    def __init__(self, pool: asyncpg.Pool, ledger: LedgerStore, *, chain_id: int, deposit_factory: str, deposit_implementation: str) -> None:
        self._pool = pool
        self._ledger = ledger
        self._chain_id = chain_id
        self._deposit_factory = deposit_factory
        self._deposit_implementation = deposit_implementation

    @activity.defn
    async def assign_deposit_address(self, input: AssignDepositInput) -> DepositAssignment:
        """The intent's CREATE2 address: computed, not generated; no key exists for it."""
        assert input.chain_id == self._chain_id, f"this worker serves chain {self._chain_id}"
        salt = deposit_salt(input.intent_id)
        address = predict_deposit_address(factory=self._deposit_factory, implementation=self._deposit_implementation, salt=salt)
        return DepositAssignment(address=address, salt="0x" + salt.hex(), factory=self._deposit_factory)

    @activity.defn
    async def record_payment_intent(self, record: IntentRecord) -> None:
        """Read model + payments' flags + events, in one transaction; safe to run again."""
        input, view = record.input, record.view
        data = intent_object(input, view)
        async with self._pool.acquire() as connection, connection.transaction():
            if record.register:
                await connection.execute(
                    """
                    INSERT INTO payment_intents (id, tenant_id, status, chain_id, asset, token_address, deposit_address, amount,
                        fee_bps, confirmations_required, description, metadata, success_url, cancel_url, client_secret_hash,
                        idempotency_key, expires_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14, $15, $16, $17::timestamptz)
                    ON CONFLICT (id) DO NOTHING
                    """,
                    input.intent_id, input.tenant_id, view.status, input.chain_id, input.asset, input.token_address.lower(),
                    record.deposit.address.lower(), input.amount_base_units, input.fee_bps, input.confirmations_required,
                    input.description, json.dumps(input.metadata), input.success_url, input.cancel_url,
                    input.client_secret_hash, input.idempotency_key, datetime.fromisoformat(input.expires_at),
                )
                await connection.execute(
                    """
                    INSERT INTO deposit_addresses (chain_id, address, intent_id, token_address, salt) VALUES ($1, $2, $3, $4, $5)
                    ON CONFLICT (chain_id, address) DO NOTHING
                    """,
                    input.chain_id, record.deposit.address.lower(), input.intent_id, input.token_address.lower(), record.deposit.salt,
                )
            await connection.execute(
                """
                UPDATE payment_intents SET status = $2, amount_received = $3, amount_refundable = $4, fee = $5, net = $6,
                    updated_at = now()
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
            if record.events:
                await connection.executemany(
                    """
                    INSERT INTO events (id, tenant_id, type, object_id, data) VALUES ($1, $2, $3, $4, $5::jsonb)
                    ON CONFLICT (id) DO NOTHING
                    """,
                    [(event_id, input.tenant_id, event_type, input.intent_id, json.dumps(data)) for event_id, event_type in record.events],
                )
        if record.events:
            activity.logger.info("intent %s: %s", input.intent_id, ", ".join(t for _, t in record.events))

    @activity.defn
    async def post_intent_ledger(self, input: PostIntentLedgerInput) -> None:
        """Create the accounts (idempotent) and post the moves as one linked chain: all or none."""
        codes = sorted({m.debit_code for m in input.moves} | {m.credit_code for m in input.moves})
        accounts = [
            NewAccount(
                id=ledger_account_id(ledger_id=input.ledger_id, asset_key=input.asset_key, code=code),
                ledger=input.ledger_id,
                asset=input.asset_key,
                code=AccountCode(code),
                owner=input.tenant_id,
                flags=ACCOUNT_FLAGS_BY_CODE.get(AccountCode(code), AccountFlags.NONE),
            )
            for code in codes
        ]
        for account, result in zip(accounts, await self._ledger.create_accounts(accounts)):
            if _result_code(result) not in (CreateAccountResult.OK, CreateAccountResult.EXISTS):
                raise ApplicationError(f"account {account.id}: {_result_code(result)}", type="LedgerAccountRefused", non_retryable=True)
        transfers = [
            NewTransfer(
                id=move.transfer_id,
                debit_account_id=ledger_account_id(ledger_id=input.ledger_id, asset_key=input.asset_key, code=move.debit_code),
                credit_account_id=ledger_account_id(ledger_id=input.ledger_id, asset_key=input.asset_key, code=move.credit_code),
                amount=move.amount_base_units,
                ledger=input.ledger_id,
                asset=input.asset_key,
                code=move.transfer_code,
                flags=TransferFlags.LINKED if index < len(input.moves) - 1 else TransferFlags.NONE,
            )
            for index, move in enumerate(input.moves)
        ]
        results = await self._ledger.create_transfers(transfers)
        for transfer, result in zip(transfers, results):
            code = _result_code(result)
            if code not in (CreateTransferResult.OK, CreateTransferResult.EXISTS):
                # Same id with other fields, or a flag broken: a programming or data error, not a retry.
                raise ApplicationError(f"transfer {transfer.id}: {code}", type="LedgerTransferRefused", non_retryable=True)

    @activity.defn
    async def build_sweep_call(self, input: SweepCallInput) -> str:
        salt = bytes.fromhex(input.salt.removeprefix("0x"))
        assert len(salt) == 32
        return "0x" + (SWEEP_SELECTOR + abi_encode(["bytes32", "address"], [salt, input.token])).hex()


def _result_code(result: object) -> object:
    return getattr(result, "result", result)
