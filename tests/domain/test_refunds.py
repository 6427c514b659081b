"""What a payment intent can refund, and from where; where a refund may go."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.refunds import (
    RefundCapacity,
    RefundFunding,
    RefundInput,
    RefundRuleError,
    fund_refund,
    parse_refund_address,
    refund_capacity,
    refund_transfer_key,
    reservation_legs,
)

GROSS = 25_000_000
CUSTOMER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


def funding(refundable: int, balance: int = 0) -> RefundFunding:
    return RefundFunding(from_refundable_base_units=refundable, from_balance_base_units=balance)


def capacity(status: str, refundable: int, *taken: RefundFunding) -> RefundCapacity:
    return refund_capacity(intent_status=status, amount_refundable_base_units=refundable, amount_gross_base_units=GROSS, refunds_not_failed=taken)


def test_an_overpaid_success_refunds_the_excess_then_the_payment():
    left = capacity("succeeded", 5_000_000)
    assert (left.refundable_left_base_units, left.balance_left_base_units, left.total_base_units) == (5_000_000, GROSS, GROSS + 5_000_000)
    assert fund_refund(3_000_000, left) == funding(3_000_000)
    # The excess first, the rest out of the merchant's balance.
    assert fund_refund(7_000_000, left) == funding(5_000_000, 2_000_000)
    assert fund_refund(GROSS + 5_000_000, left) == funding(5_000_000, GROSS)


def test_an_expired_or_canceled_intent_refunds_only_what_it_received():
    for status in ("expired", "canceled"):
        left = capacity(status, 1_000)
        assert left.balance_left_base_units == 0 and left.total_base_units == 1_000
        assert fund_refund(1_000, left) == funding(1_000)
        with pytest.raises(RefundRuleError) as raised:
            fund_refund(1_001, left)
        assert raised.value.code == "amount_too_large" and raised.value.param == "amount" and "1000" in raised.value.message


@pytest.mark.parametrize("status", ["requires_payment", "processing"])
def test_an_open_intent_has_nothing_to_refund(status):
    with pytest.raises(RefundRuleError) as raised:
        fund_refund(1, capacity(status, 0))
    assert raised.value.code == "nothing_to_refund"


def test_refunds_that_did_not_fail_use_up_each_source():
    left = capacity("succeeded", 5_000_000, funding(5_000_000, 1_000_000), funding(0, 4_000_000))
    assert (left.refundable_left_base_units, left.balance_left_base_units) == (0, GROSS - 5_000_000)
    assert fund_refund(GROSS - 5_000_000, left) == funding(0, GROSS - 5_000_000)
    spent = capacity("succeeded", 5_000_000, funding(5_000_000, GROSS))
    with pytest.raises(RefundRuleError) as raised:
        fund_refund(1, spent)
    assert raised.value.code == "nothing_to_refund"


def test_late_money_adds_to_what_is_refundable():
    assert capacity("expired", 3_000, funding(1_000)).total_base_units == 2_000


@given(
    refundable=st.integers(0, 10**9),
    succeeded=st.booleans(),
    amounts=st.lists(st.integers(1, 10**9), max_size=20),
)
def test_refunds_never_exceed_the_capacity_and_each_split_adds_up(refundable, succeeded, amounts):
    status = "succeeded" if succeeded else "expired"
    taken: list[RefundFunding] = []
    for amount in amounts:
        left = capacity(status, refundable, *taken)
        try:
            split = fund_refund(amount, left)
        except RefundRuleError:
            assert amount > left.total_base_units
            continue
        assert split.amount_base_units == amount
        assert split.from_refundable_base_units <= left.refundable_left_base_units
        assert split.from_balance_base_units <= left.balance_left_base_units
        # The refundable money goes first.
        assert split.from_balance_base_units == 0 or split.from_refundable_base_units == left.refundable_left_base_units
        taken.append(split)
    assert sum(t.from_refundable_base_units for t in taken) <= refundable
    assert sum(t.from_balance_base_units for t in taken) <= (GROSS if succeeded else 0)


def test_the_reservation_debits_each_source_and_credits_the_treasury():
    legs = reservation_legs("re_abc", funding(5_000_000, 2_000_000))
    assert [(leg.reserve_transfer_id, leg.debit_code, leg.credit_code, leg.amount_base_units) for leg in legs] == [
        ("re_abc/reserve/refundable", "unallocated", "treasury", 5_000_000),
        ("re_abc/reserve/balance", "merchant_available", "treasury", 2_000_000),
    ]
    assert [(leg.post_transfer_id, leg.void_transfer_id) for leg in legs] == [
        ("re_abc/post/refundable", "re_abc/void/refundable"),
        ("re_abc/post/balance", "re_abc/void/balance"),
    ]
    (only,) = reservation_legs("re_abc", funding(0, 9))
    assert only.debit_code == "merchant_available" and only.amount_base_units == 9


def test_ids_derive_from_the_refund():
    assert refund_transfer_key("re_abc") == "re_abc/transfer"


def test_addresses_checksummed_or_lower_case():
    assert parse_refund_address(CUSTOMER) == CUSTOMER
    assert parse_refund_address(CUSTOMER.lower()) == CUSTOMER


@pytest.mark.parametrize(
    "value, says",
    [
        (CUSTOMER[:-1] + ("6" if CUSTOMER[-1] != "6" else "7"), "checksum"),  # a typo
        (CUSTOMER.replace("F", "f", 1), "checksum"),  # wrong casing
        ("0x" + CUSTOMER[2:].upper(), "checksum"),
        ("0x" + "0" * 40, "zero address"),
        (CUSTOMER[:-1], "20-byte"),
        (CUSTOMER[2:] + "00", "20-byte"),
        ("0x" + "g" * 40, "20-byte"),
        (None, "20-byte"),
        (42, "20-byte"),
    ],
)
def test_bad_addresses_are_refused(value, says):
    with pytest.raises(RefundRuleError) as raised:
        parse_refund_address(value)
    assert says in raised.value.message and raised.value.param == "address"


def test_the_workflow_input_adds_up():
    fields = dict(refund_id="re_x", tenant_id="t", ledger_id="t", intent_id="pi_x", chain_id=1, asset_key="evm:1:usdc",
                  token_address="0x" + "1" * 40, address=CUSTOMER, amount_base_units=10)
    RefundInput(**fields, from_refundable_base_units=4, from_balance_base_units=6)
    with pytest.raises(AssertionError):
        RefundInput(**fields, from_refundable_base_units=4, from_balance_base_units=5)
