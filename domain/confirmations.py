"""How many confirmations a payment needs, by its value.

Defaults (seed 004): under 100 USD, 1 block; under 10,000 USD, 12 blocks; from 10,000 USD, 19.
The platform admin may replace a tenant's tiers (by amount in base units); that policy is the
floor. An intent may ask for more confirmations than its floor, never fewer: the floor is what the
platform risks on a reorg, so only the platform lowers it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CONFIRMATIONS_MAX = 1_000


@dataclass(frozen=True)
class ConfirmationTier:
    below_usd_cents: int | None  # None: no upper bound (the last tier)
    confirmations_min: int


@dataclass(frozen=True)
class ConfirmationPolicy:
    tiers: tuple[ConfirmationTier, ...] = field(
        default_factory=lambda: (
            ConfirmationTier(below_usd_cents=100_00, confirmations_min=1),
            ConfirmationTier(below_usd_cents=10_000_00, confirmations_min=12),
            ConfirmationTier(below_usd_cents=None, confirmations_min=19),
        )
    )

    def __post_init__(self) -> None:
        if not self.tiers or self.tiers[-1].below_usd_cents is not None:
            raise ValueError("the last confirmation tier must have no upper bound")
        bounds = [tier.below_usd_cents for tier in self.tiers[:-1]]
        if any(bound is None or bound <= 0 for bound in bounds) or bounds != sorted(set(bounds)):
            raise ValueError("confirmation tiers must have increasing positive bounds")
        for tier in self.tiers:
            if not 1 <= tier.confirmations_min <= CONFIRMATIONS_MAX:
                raise ValueError(f"confirmations must be between 1 and {CONFIRMATIONS_MAX}")

    def confirmations_for(self, usd_cents: int, *, override: int | None = None) -> int:
        if override is not None:
            if not 1 <= override <= CONFIRMATIONS_MAX:
                raise ValueError(f"confirmations must be between 1 and {CONFIRMATIONS_MAX}")
            return override
        for tier in self.tiers:
            if tier.below_usd_cents is None or usd_cents < tier.below_usd_cents:
                return tier.confirmations_min
        raise AssertionError("unreachable: the last tier is unbounded")


def confirmations_of(*, block_number: int, head_block_number: int) -> int:
    """A payment in block N has 1 confirmation when the head is N, 2 at N+1, and so on."""
    return max(0, head_block_number - block_number + 1)


class ConfirmationsBelowFloor(ValueError):
    def __init__(self, *, requested: int, floor: int) -> None:
        super().__init__(f"confirmations must be at least {floor} for this amount (the platform's floor); got {requested}")
        self.requested = requested
        self.floor = floor


def tier_confirmations(tiers: list[dict] | None, *, amount_base_units: int) -> int | None:
    """A tenant's own tiers (`amount_base_units_min`, `confirmations_min`): the tier of the largest
    minimum the amount reaches; None without tiers. Zero confirmations means one: the block itself."""
    if not tiers:
        return None
    reached = [tier for tier in tiers if amount_base_units >= int(tier["amount_base_units_min"])]
    if not reached:
        return None
    tier = max(reached, key=lambda tier: int(tier["amount_base_units_min"]))
    return max(1, int(tier["confirmations_min"]))


def confirmations_required(
    *, usd_cents: int, amount_base_units: int, tenant_tiers: list[dict] | None, requested: int | None
) -> int:
    """The confirmations an intent needs: its floor (the tenant's tiers set by the platform, else the
    platform's default by value), or more if the intent asks for more."""
    floor = tier_confirmations(tenant_tiers, amount_base_units=amount_base_units)
    if floor is None:
        floor = ConfirmationPolicy().confirmations_for(usd_cents)
    if requested is None:
        return floor
    if not 1 <= requested <= CONFIRMATIONS_MAX:
        raise ValueError(f"confirmations must be between 1 and {CONFIRMATIONS_MAX}")
    if requested < floor:
        raise ConfirmationsBelowFloor(requested=requested, floor=floor)
    return requested
