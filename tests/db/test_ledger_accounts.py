"""The application's accounts on the session's PostgreSQL: accounts written before owners were
part of the id scheme keep working as they are (no migration: their ids and columns are already
the scheme's), accounts held for someone are created with their owner, and the invariants report
an account whose id, owner or flags stray from the scheme. Each test has its own ledger."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities.ledger_postings import ensure_accounts, post_moves
from db.ledger_invariants import check_ledger_invariants
from db.ledger_store import LedgerStore
from domain.errors import LEDGER_ACCOUNT_REFUSED
from domain.ledger import AccountCode, AccountFlags, AccountKey, CreateAccountResult, CreateTransferResult, NewAccount, NewTransfer
from domain.payment_intents import LedgerMove, Settlement, settlement_moves

ASSET = "evm:31337:usdc"


@pytest.fixture
async def store(db_pool):
    ledger_store = LedgerStore(db_pool)
    yield ledger_store
    await ledger_store.close()


async def test_accounts_written_the_old_way_keep_their_ids_and_balances(store, db_pool, unique_id):
    """Before this scheme, activities.ledger_postings created the tenant's accounts as
    `{ledger}/{asset}/{code}` with the tenant as owner and these flags (tenant id = ledger id)."""
    ledger = f"ten_old{unique_id}"
    old_flags = {
        "customer_deposits": AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
        "merchant_available": AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
        "platform_fees": AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    }
    written = [
        NewAccount(id=f"{ledger}/{ASSET}/{code}", ledger=ledger, asset=ASSET, code=AccountCode(code), owner=ledger, flags=flags)
        for code, flags in old_flags.items()
    ]
    assert await store.create_accounts(written) == [CreateAccountResult.OK] * 3
    deposit = NewTransfer(
        id=f"{ledger}/seed", debit_account_id=f"{ledger}/{ASSET}/customer_deposits", credit_account_id=f"{ledger}/{ASSET}/merchant_available",
        amount=1_000, ledger=ledger, asset=ASSET, code="test",
    )
    assert await store.create_transfers([deposit]) == [CreateTransferResult.OK]
    assert await check_ledger_invariants(db_pool, ledger=ledger) == []

    # Today's code finds the same accounts (creating them again is `exists`, not a different
    # owner or flags) and posts to them.
    moves = settlement_moves(f"pi_{unique_id}", Settlement(gross_base_units=1_000, fee_base_units=10, net_base_units=990, excess_base_units=0))
    await post_moves(store, ledger_id=ledger, asset_key=ASSET, moves=moves, linked=True)
    accounts = {account.id: account for account in await store.lookup_accounts([account.id for account in written])}
    assert len(accounts) == 3
    assert accounts[f"{ledger}/{ASSET}/merchant_available"].credits_posted == 2_000
    assert accounts[f"{ledger}/{ASSET}/platform_fees"].credits_posted == 10
    assert {account.owner for account in accounts.values()} == {ledger}
    assert await check_ledger_invariants(db_pool, ledger=ledger) == []


async def test_an_account_held_for_someone_is_its_own_account(store, db_pool, unique_id):
    ledger = f"ten_own{unique_id}"
    payable = [AccountKey(ledger=ledger, asset=ASSET, code=AccountCode.AFFILIATE_PAYABLE, owner=f"aff_{n}") for n in (1, 2)]
    treasury = AccountKey(ledger=ledger, asset=ASSET, code=AccountCode.TREASURY)
    await ensure_accounts(store, keys=[*payable, treasury, treasury])
    await ensure_accounts(store, keys=payable)  # again: nothing changes
    found = await store.lookup_accounts([key.id for key in (*payable, treasury)])
    assert [(account.id, account.owner, account.flags) for account in found] == [
        (f"{ledger}/{ASSET}/affiliate_payable/aff_1", "aff_1", AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
        (f"{ledger}/{ASSET}/affiliate_payable/aff_2", "aff_2", AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
        (f"{ledger}/{ASSET}/treasury", ledger, AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS),
    ]

    def transfer(name: str, debit: AccountKey, credit: AccountKey, amount: int) -> NewTransfer:
        return NewTransfer(id=f"{ledger}/{name}", debit_account_id=debit.id, credit_account_id=credit.id, amount=amount, ledger=ledger, asset=ASSET, code="test")

    # Owed 5, each affiliate on its own account: the payable account's flag refuses paying out 6.
    results = await store.create_transfers(
        [transfer("owed", treasury, payable[0], 5), transfer("overpaid", payable[0], treasury, 6), transfer("other", payable[1], treasury, 1)]
    )
    assert results == [CreateTransferResult.OK, CreateTransferResult.EXCEEDS_CREDITS, CreateTransferResult.EXCEEDS_CREDITS]
    assert await store.create_transfers([transfer("paid", payable[0], treasury, 5)]) == [CreateTransferResult.OK]
    assert await check_ledger_invariants(db_pool, ledger=ledger) == []


async def test_a_move_to_an_unknown_code_is_refused_for_good(store, unique_id):
    move = LedgerMove(f"pi_{unique_id}/x", "customer_deposits", "vault", 1)
    with pytest.raises(ApplicationError) as raised:
        await post_moves(store, ledger_id=f"ten_{unique_id}", asset_key=ASSET, moves=[move], linked=False)
    assert raised.value.type == LEDGER_ACCOUNT_REFUSED and raised.value.non_retryable


async def test_the_invariants_report_accounts_off_the_scheme(store, db_pool, unique_id):
    ledger = f"ten_off{unique_id}"
    own = f"{ledger}/{ASSET}"
    strays = [
        # No owner stored for the ledger's own account.
        NewAccount(id=f"{own}/unallocated", ledger=ledger, asset=ASSET, code=AccountCode.UNALLOCATED, flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
        # Flags other than its code's.
        NewAccount(id=f"{own}/platform_fees", ledger=ledger, asset=ASSET, code=AccountCode.PLATFORM_FEES, owner=ledger),
        # An owner part that is not its owner.
        NewAccount(id=f"{own}/affiliate_payable/aff_1", ledger=ledger, asset=ASSET, code=AccountCode.AFFILIATE_PAYABLE, owner="aff_2",
                   flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
        # The ledger's own account under a second spelling.
        NewAccount(id=f"{own}/treasury/{ledger}", ledger=ledger, asset=ASSET, code=AccountCode.TREASURY, owner=ledger,
                   flags=AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS),
    ]
    fine = [
        AccountKey(ledger=ledger, asset=ASSET, code=AccountCode.TREASURY).new_account(),
        # Closing an account keeps it in the scheme.
        NewAccount(id=f"{own}/merchant_available", ledger=ledger, asset=ASSET, code=AccountCode.MERCHANT_AVAILABLE, owner=ledger,
                   flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.CLOSED),
        # Named outside the scheme (as the store's tests and the bench do): not the application's.
        NewAccount(id=f"{ledger}/free", ledger=ledger, asset=ASSET, code=AccountCode.ROUNDING, flags=AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS),
        NewAccount(id=f"{own}/treasuryx", ledger=ledger, asset=ASSET, code=AccountCode.TREASURY),
    ]
    assert set(await store.create_accounts(strays + fine)) == {CreateAccountResult.OK}
    violations = await check_ledger_invariants(db_pool, ledger=ledger)
    assert {v.kind for v in violations} == {"account_off_its_scheme"}
    assert sorted(v.account_id for v in violations) == sorted(account.id for account in strays)
