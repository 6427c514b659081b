"""How many confirmations a payment needs, by its value.

One kind of tier and one set of rules for both policies: the platform's default (by USD value:
under 100 USD, 1 block; under 10,000 USD, 12 blocks; from 10,000 USD, 19) and the tiers the
platform admin may set for a tenant (by amount in base units); that policy is the floor. An
intent may ask for more confirmations than its floor, never fewer: the floor is what the platform
risks on a reorg, so only the platform lowers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain.money import UINT256_MAX

CONFIRMATIONS_MAX = 1_000
# A tenant's tiers may ask for more than an intent's own request may (the API's accepted input).
TIER_CONFIRMATIONS_MAX = 10_000
CONFIRMATION_TIERS_COUNT_MAX = 10


class ConfirmationTiersInvalid(ValueError):
    """Tiers that break the rules of `validate_tiers`; `param` names the tier at fault."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True)
class ConfirmationTier:
    """From `amount_min` up (in its policy's unit: USD cents for the platform's default, base units
    for a tenant's own tiers), a payment needs `confirmations_min`. Zero is accepted and means one:
    a payment is confirmed by its own block at the earliest (`effective_confirmations`)."""

    amount_min: int
    confirmations_min: int


def effective_confirmations(confirmations_min: int) -> int:
    """The one rule for a tier of 0: the payment's own block is its first confirmation."""
    return max(1, confirmations_min)


def validate_tiers(tiers: Sequence[ConfirmationTier], *, param: str = "tiers") -> tuple[ConfirmationTier, ...]:
    """Tiers by amount: the first starts at 0, amounts strictly increase, and a larger amount
    never needs fewer confirmations than a smaller one."""
    if not 1 <= len(tiers) <= CONFIRMATION_TIERS_COUNT_MAX:
        raise ConfirmationTiersInvalid(f"between 1 and {CONFIRMATION_TIERS_COUNT_MAX} tiers are needed", param=param)
    if tiers[0].amount_min != 0:
        raise ConfirmationTiersInvalid("the first tier must start at amount_base_units_min 0", param=param)
    for index, tier in enumerate(tiers):
        if not 0 <= tier.amount_min <= UINT256_MAX:
            raise ConfirmationTiersInvalid("amount_base_units_min must fit in 256 bits", param=f"{param}[{index}]")
        if not 0 <= tier.confirmations_min <= TIER_CONFIRMATIONS_MAX:
            raise ConfirmationTiersInvalid(
                f"confirmations_min must be between 0 and {TIER_CONFIRMATIONS_MAX}", param=f"{param}[{index}]"
            )
    for index, (lower, upper) in enumerate(zip(tiers, tiers[1:]), start=1):
        if upper.amount_min <= lower.amount_min:
            raise ConfirmationTiersInvalid("tier amounts must strictly increase", param=f"{param}[{index}]")
        if upper.confirmations_min < lower.confirmations_min:
            raise ConfirmationTiersInvalid("a larger amount must not need fewer confirmations", param=f"{param}[{index}]")
    return tuple(tiers)


def confirmations_for(tiers: Sequence[ConfirmationTier], *, amount: int) -> int | None:
    """The confirmations of the tier with the largest minimum `amount` reaches; None if it reaches none."""
    reached = [tier for tier in tiers if amount >= tier.amount_min]
    if not reached:
        return None
    return effective_confirmations(max(reached, key=lambda tier: tier.amount_min).confirmations_min)


# The platform's default floor, by value: under 100 USD, 1 block; under 10,000 USD, 12; from 10,000 USD, 19.
PLATFORM_TIERS_USD_CENTS = validate_tiers(
    (
        ConfirmationTier(amount_min=0, confirmations_min=1),
        ConfirmationTier(amount_min=100_00, confirmations_min=12),
        ConfirmationTier(amount_min=10_000_00, confirmations_min=19),
    )
)


def confirmations_of(*, block_number: int, head_block_number: int) -> int:
    """A payment in block N has 1 confirmation when the head is N, 2 at N+1, and so on."""
    return max(0, head_block_number - block_number + 1)


class ConfirmationsBelowFloor(ValueError):
    def __init__(self, *, requested: int, floor: int) -> None:
        super().__init__(f"confirmations must be at least {floor} for this amount (the platform's floor); got {requested}")
        self.requested = requested
        self.floor = floor


def tier_confirmations(tiers: list[dict] | None, *, amount_base_units: int) -> int | None:
    """A tenant's own tiers as stored (`amount_base_units_min`, `confirmations_min`): None without tiers."""
    if not tiers:
        return None
    parsed = [ConfirmationTier(int(tier["amount_base_units_min"]), int(tier["confirmations_min"])) for tier in tiers]
    return confirmations_for(parsed, amount=amount_base_units)


def confirmations_required(
    *, usd_cents: int, amount_base_units: int, tenant_tiers: list[dict] | None, requested: int | None
) -> int:
    """The confirmations an intent needs: its floor (the tenant's tiers set by the platform, else the
    platform's default by value), or more if the intent asks for more."""
    floor = tier_confirmations(tenant_tiers, amount_base_units=amount_base_units)
    if floor is None:
        floor = confirmations_for(PLATFORM_TIERS_USD_CENTS, amount=usd_cents)
        assert floor is not None  # the platform's first tier starts at 0
    if requested is None:
        return floor
    if not 1 <= requested <= CONFIRMATIONS_MAX:
        raise ValueError(f"confirmations must be between 1 and {CONFIRMATIONS_MAX}")
    if requested < floor:
        raise ConfirmationsBelowFloor(requested=requested, floor=floor)
    return requested
