import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.confirmations import (
    PLATFORM_TIERS_USD_CENTS,
    ConfirmationTier,
    ConfirmationTiersInvalid,
    confirmations_for,
    confirmations_of,
    validate_tiers,
)
from domain.money import Asset, InvalidAmount, fee_split, format_amount, parse_amount, usd_cents_of_stablecoin

USDC = Asset(code="usdc", chain_id=31337, symbol="USDC", decimals=6)


@pytest.mark.parametrize("value, expected", [(25_000_000, 25_000_000), ("25000000", 25_000_000), ("1", 1)])
def test_parse_amount_accepts_integers_and_digit_strings(value, expected):
    assert parse_amount(value, asset=USDC) == expected


@pytest.mark.parametrize(
    "value, message",
    [
        (0, "greater than zero"),
        (-5, "greater than zero"),
        ("0", "greater than zero"),
        (25.0, "never a float"),
        ("25.00", "whole number of base units"),
        ("-5", "whole number"),
        ("1e6", "whole number"),
        (" 5", "whole number"),
        ("", "whole number"),
        ("٣", "whole number"),  # a non-ASCII digit
        (True, "boolean"),
        (None, "integer or a string"),
        (10**30, "exceeds the maximum"),
        ("9" * 79, "more digits"),
    ],
)
def test_parse_amount_refuses_everything_else(value, message):
    with pytest.raises(InvalidAmount, match=message):
        parse_amount(value, asset=USDC)


def test_format_amount():
    assert format_amount(25_000_000, decimals=6) == "25.00"
    assert format_amount(25_500_001, decimals=6) == "25.500001"
    assert format_amount(1, decimals=6) == "0.000001"
    assert format_amount(7, decimals=0) == "7"


@given(gross=st.integers(min_value=0, max_value=2**256 - 1), fee_bps=st.integers(min_value=0, max_value=10_000))
def test_fee_split_is_exact_and_rounds_the_fee_down(gross, fee_bps):
    fee, net = fee_split(gross, fee_bps=fee_bps)
    assert fee + net == gross
    # Floor: the fee never exceeds the exact fraction, and is within one base unit of it.
    assert fee * 10_000 <= gross * fee_bps < (fee + 1) * 10_000


def test_fee_split_examples():
    assert fee_split(25_000_000, fee_bps=100) == (250_000, 24_750_000)
    assert fee_split(199, fee_bps=100) == (1, 198)  # 1.99 → 1: the merchant keeps the fraction
    assert fee_split(99, fee_bps=100) == (0, 99)


def test_confirmation_tiers_by_value():
    cents = lambda base_units: usd_cents_of_stablecoin(base_units, decimals=6)  # noqa: E731
    by_value = lambda base_units: confirmations_for(PLATFORM_TIERS_USD_CENTS, amount=cents(base_units))  # noqa: E731
    assert by_value(99_999_999) == 1  # 99.999999 USD
    assert by_value(100_000_000) == 12  # 100 USD
    assert by_value(9_999_990_000) == 12
    assert by_value(10_000_000_000) == 19  # 10,000 USD


def test_one_rule_for_every_tier():
    # Zero is accepted in a tier and means one: the payment's own block.
    assert confirmations_for(validate_tiers([ConfirmationTier(0, 0), ConfirmationTier(10, 2)]), amount=5) == 1
    assert confirmations_for([ConfirmationTier(10, 2)], amount=5) is None
    with pytest.raises(ConfirmationTiersInvalid, match="start at"):
        validate_tiers([ConfirmationTier(100, 1)])
    with pytest.raises(ConfirmationTiersInvalid, match="strictly increase"):
        validate_tiers([ConfirmationTier(0, 1), ConfirmationTier(500, 2), ConfirmationTier(100, 3)])
    with pytest.raises(ConfirmationTiersInvalid, match="fewer"):
        validate_tiers([ConfirmationTier(0, 5), ConfirmationTier(500, 2)])


def test_confirmations_count_the_payment_block_itself():
    assert confirmations_of(block_number=10, head_block_number=9) == 0
    assert confirmations_of(block_number=10, head_block_number=10) == 1
    assert confirmations_of(block_number=10, head_block_number=21) == 12


def test_an_intent_may_ask_for_more_confirmations_than_its_floor_never_fewer():
    from domain.confirmations import ConfirmationsBelowFloor, confirmations_required

    tiers = [{"amount_base_units_min": 0, "confirmations_min": 3}, {"amount_base_units_min": 100, "confirmations_min": 7}]
    assert confirmations_required(usd_cents=25_00, amount_base_units=10, tenant_tiers=None, requested=None) == 1
    assert confirmations_required(usd_cents=250_00, amount_base_units=10, tenant_tiers=None, requested=None) == 12
    assert confirmations_required(usd_cents=250_00, amount_base_units=150, tenant_tiers=tiers, requested=None) == 7
    assert confirmations_required(usd_cents=250_00, amount_base_units=150, tenant_tiers=tiers, requested=9) == 9
    for requested, floor, kwargs in ((6, 7, {"tenant_tiers": tiers, "amount_base_units": 150}), (1, 12, {"tenant_tiers": None, "amount_base_units": 10})):
        with pytest.raises(ConfirmationsBelowFloor) as raised:
            confirmations_required(usd_cents=250_00, requested=requested, **kwargs)
        assert raised.value.floor == floor
    zero_tier = [{"amount_base_units_min": 0, "confirmations_min": 0}]
    assert confirmations_required(usd_cents=250_00, amount_base_units=150, tenant_tiers=zero_tier, requested=None) == 1
