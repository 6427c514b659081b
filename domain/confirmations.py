"""How many confirmations a payment needs, by its value.

Defaults (seed 004): under 100 USD, 1 block; under 10,000 USD, 12 blocks; from 10,000 USD, 19.
A merchant may override the tiers, and an intent may fix its own number.
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
