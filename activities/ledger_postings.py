"""Posting `LedgerMove`s: the accounts they touch are created (idempotent), then the moves are
posted with ids derived from the business step, so a retried step posts nothing twice. Used by
every activity that moves money in the ledger (intents, sweeps)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
from domain.payment_intents import LedgerMove

# Asset-side accounts hold tokens: they may never send more than they received.
ACCOUNT_FLAGS_BY_CODE = {
    AccountCode.CUSTOMER_DEPOSITS: AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
    AccountCode.TREASURY: AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
    AccountCode.MERCHANT_AVAILABLE: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountCode.PLATFORM_FEES: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountCode.UNALLOCATED: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
}


def ledger_account_id(*, ledger_id: str, asset_key: str, code: str) -> str:
    return f"{ledger_id}/{asset_key}/{code}"


async def post_moves(
    ledger: LedgerStore, *, ledger_id: str, asset_key: str, tenant_id: str, moves: Sequence[LedgerMove], linked: bool
) -> None:
    """Create the accounts and post the moves; `linked`: all or none. A refusal other than
    `exists` is a programming or data error, never retried."""
    if not moves:
        return
    codes = {m.debit_code for m in moves} | {m.credit_code for m in moves}
    await ensure_accounts(ledger, ledger_id=ledger_id, asset_key=asset_key, tenant_id=tenant_id, codes=codes)
    transfers = [
        NewTransfer(
            id=move.transfer_id,
            debit_account_id=ledger_account_id(ledger_id=ledger_id, asset_key=asset_key, code=move.debit_code),
            credit_account_id=ledger_account_id(ledger_id=ledger_id, asset_key=asset_key, code=move.credit_code),
            amount=move.amount_base_units,
            ledger=ledger_id,
            asset=asset_key,
            code=move.transfer_code,
            flags=TransferFlags.LINKED if linked and index < len(moves) - 1 else TransferFlags.NONE,
        )
        for index, move in enumerate(moves)
    ]
    for transfer, result in zip(transfers, await ledger.create_transfers(transfers)):
        code = result_code(result)
        if code not in (CreateTransferResult.OK, CreateTransferResult.EXISTS):
            raise ApplicationError(f"transfer {transfer.id}: {code}", type="LedgerTransferRefused", non_retryable=True)


async def ensure_accounts(ledger: LedgerStore, *, ledger_id: str, asset_key: str, tenant_id: str, codes: Iterable[str]) -> None:
    """The tenant's accounts of these codes for one asset, each with its code's flags; creating
    one that exists is fine, any other refusal is a data or programming error, never retried."""
    accounts = [
        NewAccount(
            id=ledger_account_id(ledger_id=ledger_id, asset_key=asset_key, code=code),
            ledger=ledger_id,
            asset=asset_key,
            code=AccountCode(code),
            owner=tenant_id,
            flags=ACCOUNT_FLAGS_BY_CODE.get(AccountCode(code), AccountFlags.NONE),
        )
        for code in sorted(codes)
    ]
    for account, result in zip(accounts, await ledger.create_accounts(accounts)):
        if result_code(result) not in (CreateAccountResult.OK, CreateAccountResult.EXISTS):
            raise ApplicationError(f"account {account.id}: {result_code(result)}", type="LedgerAccountRefused", non_retryable=True)


def result_code(result: object) -> object:
    """The code of a ledger result, whether the store answered a typed result or the bare code."""
    return getattr(result, "result", result)
