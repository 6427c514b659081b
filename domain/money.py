"""Money in integer base units. No float touches money, anywhere.

An amount arrives at the edge as a JSON integer or a string of digits in base units ("25000000"
is 25.00 USDC). Everything else — floats, decimals, signs, exponents, whitespace — is refused
with a reason, so a caller never guesses what was meant.
"""

from __future__ import annotations

from dataclasses import dataclass

# The largest value an ERC-20 `uint256` can hold; NUMERIC(78,0) holds it too.
UINT256_MAX = 2**256 - 1
# No single payment in Settle may exceed this many whole tokens (a typo guard, not a chain limit).
WHOLE_TOKENS_PER_AMOUNT_MAX = 10**12
BPS_DENOMINATOR = 10_000


class InvalidAmount(ValueError):
    """The amount is not a positive integer of base units within bounds."""


def asset_key(*, chain_id: int, code: str) -> str:
    """The ledger's asset key: chain + token."""
    return f"evm:{chain_id}:{code}"


@dataclass(frozen=True)
class Asset:
    """A token on a chain: `code` is what API callers write (e.g. "usdc")."""

    code: str
    chain_id: int
    symbol: str
    decimals: int
    token_address: str | None = None

    @property
    def key(self) -> str:
        return asset_key(chain_id=self.chain_id, code=self.code)

    @property
    def amount_max_base_units(self) -> int:
        return WHOLE_TOKENS_PER_AMOUNT_MAX * 10**self.decimals


def parse_amount(value: object, *, asset: Asset) -> int:
    """An amount in base units from a JSON integer or a digit string; `InvalidAmount` otherwise."""
    if isinstance(value, bool):
        raise InvalidAmount("amount must be an integer number of base units, not a boolean")
    if isinstance(value, int):
        amount = value
    elif isinstance(value, str):
        if not value or not value.isascii() or not value.isdigit():
            raise InvalidAmount(
                f"amount must be a whole number of base units as digits (e.g. \"25000000\" for 25 {asset.symbol}), got {value[:40]!r}"
            )
        if len(value) > 78:
            raise InvalidAmount("amount has more digits than any uint256")
        amount = int(value)
    elif isinstance(value, float):
        raise InvalidAmount(
            f"amount must be an integer of base units, never a float: write {asset.symbol} amounts in base units "
            f"({asset.decimals} decimals)"
        )
    else:
        raise InvalidAmount("amount must be an integer or a string of digits")
    if amount <= 0:
        raise InvalidAmount("amount must be greater than zero")
    if amount > asset.amount_max_base_units:
        raise InvalidAmount(f"amount exceeds the maximum of {asset.amount_max_base_units} base units for {asset.symbol}")
    return amount


def format_amount(amount_base_units: int, *, decimals: int) -> str:
    """Base units as a decimal string for people: 25000000 with 6 decimals is "25.00"."""
    assert isinstance(amount_base_units, int) and amount_base_units >= 0
    whole, fraction = divmod(amount_base_units, 10**decimals)
    fraction_digits = str(fraction).rjust(decimals, "0").rstrip("0") if decimals else ""
    fraction_digits = fraction_digits.ljust(2, "0") if decimals >= 2 else fraction_digits
    return f"{whole}.{fraction_digits}" if fraction_digits else str(whole)


def fee_split(gross_base_units: int, *, fee_bps: int) -> tuple[int, int]:
    """(fee, net) of a gross amount.

    Rounding rule: the fee is rounded DOWN to a whole base unit (floor of gross × bps / 10,000), so
    the merchant receives any fractional remainder; fee + net == gross always, exactly.
    """
    assert isinstance(gross_base_units, int) and gross_base_units >= 0
    assert isinstance(fee_bps, int) and 0 <= fee_bps <= BPS_DENOMINATOR
    fee = gross_base_units * fee_bps // BPS_DENOMINATOR
    net = gross_base_units - fee
    assert fee + net == gross_base_units and fee >= 0 and net >= 0
    return fee, net


def usd_cents_of_stablecoin(amount_base_units: int, *, decimals: int) -> int:
    """A USD-pegged stablecoin amount in whole US cents, rounded down (1 token = 1 USD)."""
    assert decimals >= 2
    return amount_base_units // 10 ** (decimals - 2)
