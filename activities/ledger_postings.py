"""Posting `LedgerMove`s: the accounts they touch are created (idempotent), then the moves are
posted with ids derived from the business step, so a retried step posts nothing twice. Used by
every activity that moves money in the ledger (intents, sweeps, refunds). Accounts, their ids and
their flags come from domain.ledger's catalogue (`AccountKey`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from temporalio.exceptions import ApplicationError

from db.ledger_store import LedgerStore
from domain.errors import LEDGER_ACCOUNT_REFUSED, LEDGER_TRANSFER_REFUSED
from domain.ledger import AccountCode, AccountKey, CreateAccountResult, CreateTransferResult, NewTransfer, TransferFlags
from domain.payment_intents import LedgerMove


def account_key(*, ledger_id: str, asset_key: str, code: str) -> AccountKey:
    """The key of the ledger's own account of this code; parts that cannot form an account id are a data or programming error,
    refused for good rather than retried."""
    try:
        return AccountKey(ledger=ledger_id, asset=asset_key, code=AccountCode(code))
    except ValueError as error:
        raise ApplicationError(str(error), type=LEDGER_ACCOUNT_REFUSED, non_retryable=True) from error


async def post_moves(ledger: LedgerStore, *, ledger_id: str, asset_key: str, moves: Sequence[LedgerMove], linked: bool) -> None:
    """Create the ledger's own accounts the moves touch and post them; `linked`: all or none. A
    refusal other than `exists` is a programming or data error, never retried."""
    if not moves:
        return
    codes = {m.debit_code for m in moves} | {m.credit_code for m in moves}
    keys = {code: account_key(ledger_id=ledger_id, asset_key=asset_key, code=code) for code in codes}
    await ensure_accounts(ledger, keys=keys.values())
    transfers = [
        NewTransfer(
            id=move.transfer_id,
            debit_account_id=keys[move.debit_code].id,
            credit_account_id=keys[move.credit_code].id,
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
            raise ApplicationError(f"transfer {transfer.id}: {code}", type=LEDGER_TRANSFER_REFUSED, non_retryable=True)


async def ensure_accounts(ledger: LedgerStore, *, keys: Iterable[AccountKey]) -> None:
    """These accounts, each with its code's flags and its owner; creating one that exists is fine,
    any other refusal is a data or programming error, never retried."""
    accounts = [key.new_account() for key in sorted(set(keys), key=lambda key: key.id)]
    for account, result in zip(accounts, await ledger.create_accounts(accounts)):
        if result_code(result) not in (CreateAccountResult.OK, CreateAccountResult.EXISTS):
            raise ApplicationError(f"account {account.id}: {result_code(result)}", type=LEDGER_ACCOUNT_REFUSED, non_retryable=True)


def result_code(result: object) -> object:
    """The code of a ledger result, whether the store answered a typed result or the bare code."""
    return getattr(result, "result", result)
