"""The application's accounts: one catalogue of account codes (flags, normal side) and one id
scheme, `{ledger}/{asset}/{code}` for the ledger's own accounts and `/{owner}` appended for one
held for someone else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.ledger import (
    ACCOUNT_CODES,
    Account,
    AccountCode,
    AccountFlags,
    AccountKey,
    NormalSide,
    account_id,
    balance_on_normal_side,
    parse_account_id,
)

LEDGER = "ten_a1b2c3"
ASSET = "evm:31337:usdc"


def test_every_code_has_one_rule():
    assert set(ACCOUNT_CODES) == set(AccountCode)


def test_the_flags_of_accounts_that_exist_are_those_they_were_created_with():
    """Flags are part of an account's identity: these five codes have accounts in PostgreSQL,
    created with these flags, and creating them again with others would be refused."""
    assert {code: ACCOUNT_CODES[code].flags for code in ACCOUNT_CODES if code in _EXISTING} == _EXISTING


_EXISTING = {
    AccountCode.CUSTOMER_DEPOSITS: AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
    AccountCode.TREASURY: AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
    AccountCode.MERCHANT_AVAILABLE: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountCode.PLATFORM_FEES: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountCode.UNALLOCATED: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
}


@pytest.mark.parametrize("code", list(AccountCode))
def test_a_limit_guards_the_normal_side(code):
    """Debit-normal accounts may not be credited beyond their debits, credit-normal ones not
    debited beyond their credits; only rounding swings both ways."""
    rule = ACCOUNT_CODES[code]
    expected = {
        NormalSide.DEBIT: AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
        NormalSide.CREDIT: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    }[rule.normal_side]
    assert rule.flags == (AccountFlags.NONE if code is AccountCode.ROUNDING else expected)


def test_the_ledgers_own_accounts_keep_the_ids_written_before_owners():
    key = AccountKey(ledger=LEDGER, asset=ASSET, code=AccountCode.MERCHANT_AVAILABLE)
    assert key.id == f"{LEDGER}/{ASSET}/merchant_available" == account_id(ledger=LEDGER, asset=ASSET, code="merchant_available")
    # Stored as they always were: the ledger (the tenant) as owner, the code's flags.
    new = key.new_account()
    assert (new.id, new.ledger, new.asset, new.code, new.owner, new.flags) == (
        key.id, LEDGER, ASSET, AccountCode.MERCHANT_AVAILABLE, LEDGER, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    )
    assert AccountKey(ledger=LEDGER, asset=ASSET, code=AccountCode.MERCHANT_AVAILABLE, owner=LEDGER) == key
    assert parse_account_id(key.id) == key


def test_an_account_held_for_someone_names_its_owner():
    key = AccountKey(ledger=LEDGER, asset=ASSET, code=AccountCode.AFFILIATE_PAYABLE, owner="aff_7")
    assert key.id == f"{LEDGER}/{ASSET}/affiliate_payable/aff_7"
    assert key.new_account().owner == "aff_7" and not key.owned_by_ledger
    assert parse_account_id(key.id) == key
    # One account per owner: another owner is another account.
    assert account_id(ledger=LEDGER, asset=ASSET, code=AccountCode.AFFILIATE_PAYABLE, owner="aff_8") != key.id


_PART = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1, max_size=40)


@given(ledger=_PART, asset=_PART, code=st.sampled_from(AccountCode), owner=st.none() | _PART)
def test_every_id_has_one_reading(ledger, asset, code, owner):
    key = AccountKey(ledger=ledger, asset=asset, code=code, owner=owner)
    assert parse_account_id(key.id) == key
    assert key.id.count("/") == (2 if key.owned_by_ledger else 3)


@pytest.mark.parametrize(
    "fields",
    [
        {"ledger": ""},
        {"asset": ""},
        {"owner": ""},
        {"ledger": "ten/1"},
        {"asset": "evm:1/usdc"},
        {"owner": "aff/1"},
        {"owner": "nul\x00"},
        {"owner": "x" * 257},
        # Each part fits, the id does not.
        {"ledger": "l" * 128, "asset": "a" * 128},
    ],
)
def test_parts_that_cannot_form_an_id_are_refused(fields):
    with pytest.raises(ValueError):
        AccountKey(**{"ledger": LEDGER, "asset": ASSET, "code": AccountCode.TREASURY, "owner": None, **fields})


def test_a_code_outside_the_catalogue_is_refused():
    with pytest.raises(TypeError):
        AccountKey(ledger=LEDGER, asset=ASSET, code="treasury")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        account_id(ledger=LEDGER, asset=ASSET, code="vault")


@pytest.mark.parametrize(
    "value",
    [
        "",
        f"{LEDGER}/{ASSET}",
        f"{LEDGER}/{ASSET}/vault",
        f"{LEDGER}/{ASSET}/treasury/aff_1/more",
        f"{LEDGER}//treasury",
        # The ledger's own account leaves its owner out: this spelling would be a second id for it.
        f"{LEDGER}/{ASSET}/treasury/{LEDGER}",
        # What the ledger store's own tests and the bench name their accounts.
        "test-abc/treasury",
        "bench-1/customer/17",
    ],
)
def test_ids_outside_the_scheme_do_not_parse(value):
    with pytest.raises(ValueError):
        parse_account_id(value)


@pytest.mark.parametrize(
    "code, debits, credits, balance",
    [
        (AccountCode.TREASURY, 700, 200, 500),
        (AccountCode.MERCHANT_AVAILABLE, 200, 700, 500),
        (AccountCode.ROUNDING, 3, 1, -2),
    ],
)
def test_a_balance_reads_on_its_codes_normal_side(code, debits, credits, balance):
    account = Account(id="a", ledger=LEDGER, asset=ASSET, code=code, owner=None, flags=AccountFlags.NONE,
                      debits_posted=debits, credits_posted=credits, debits_pending=50, credits_pending=60)
    assert balance_on_normal_side(account) == balance
