"""Refunds' rules, pure: what a payment intent can still refund, where each refund's money comes
from, where it may go, and the refund's states.

What is refundable, per intent (Stripe's rule for the whole payment):

- the intent's `amount_refundable`: confirmed money the merchant did not earn — the excess of an
  overpaid intent, everything an expired or canceled intent received, every late payment. It sits
  in the tenant's `unallocated` account;
- if the intent succeeded, also its gross amount (a "whole payment" refund). That is funded from
  the merchant's available balance, and the fee is not returned: refunding a 25.00 payment debits
  the merchant 25.00 although it was credited 24.75 net.

minus every refund of the intent that has not failed (pending or succeeded). A refund takes from
the refundable part first, then from the merchant's balance; the split is fixed when the refund is
created, so later refunds see exactly what earlier ones took. Checked under the intent's row lock
(db.refunds), so concurrent requests never refund more than this.

States:

    pending → succeeded   (reserved in the ledger, transfer mined, reservation posted)
            ↘ failed      (reservation refused, or transfer reverted: reservation voided)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from domain.chains import AddressProblem, InvalidAddress, parse_evm_address
from domain.payment_intents import IntentStatus



class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


TERMINAL_REFUND_STATUSES = frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED})


class RefundRunOutcome(StrEnum):
    """What RefundWorkflow's view can say besides a RefundStatus. Never stored, never an API
    object's status: no refund exists."""

    # The API's transaction rolled back after it started the workflow.
    ABANDONED = "abandoned"


class RefundFailureCode(StrEnum):
    # The ledger refused the reservation: the merchant's available balance (or the intent's
    # unallocated money) cannot cover it. Nothing was sent.
    INSUFFICIENT_BALANCE = "insufficient_balance"
    # The intent's money did not reach the treasury (its sweep) within the wait. Nothing was sent.
    FUNDS_UNAVAILABLE = "funds_unavailable"
    # The token transfer would revert or reverted on chain (treasury allowance or balance short).
    # The reservation was voided.
    TRANSFER_FAILED = "transfer_failed"
    # This deployment cannot pay refunds (no treasury configured). Nothing was reserved or sent.
    REFUNDS_UNAVAILABLE = "refunds_unavailable"
    # The address is the treasury itself. Nothing was reserved or sent.
    ADDRESS_REFUSED = "address_refused"
    # The ledger refused for another reason: a bug or corrupt data, for an operator to look at.
    LEDGER_REFUSED = "ledger_refused"


class RefundReason(StrEnum):
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    OVERPAYMENT = "overpayment"
    EXPIRED = "expired"
    LATE_PAYMENT = "late_payment"


class RefundRuleError(ValueError):
    """A refund the rules do not allow; `code` and `param` say which, for the API to answer."""

    def __init__(self, code: str, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


# ---------------------------------------------------------------------- capacity
@dataclass(frozen=True)
class RefundFunding:
    """Where a refund's money comes from, in base units."""

    from_refundable_base_units: int
    from_balance_base_units: int

    def __post_init__(self) -> None:
        assert type(self.from_refundable_base_units) is int and self.from_refundable_base_units >= 0
        assert type(self.from_balance_base_units) is int and self.from_balance_base_units >= 0

    @property
    def amount_base_units(self) -> int:
        return self.from_refundable_base_units + self.from_balance_base_units


@dataclass(frozen=True)
class RefundCapacity:
    """What an intent can still refund, per source."""

    refundable_left_base_units: int
    balance_left_base_units: int

    @property
    def total_base_units(self) -> int:
        return self.refundable_left_base_units + self.balance_left_base_units


def refund_capacity(
    *,
    intent_status: str,
    amount_refundable_base_units: int,
    amount_gross_base_units: int,
    refunds_not_failed: Iterable[RefundFunding],
) -> RefundCapacity:
    """What is left to refund: the refundable amount, plus the gross if the intent succeeded,
    minus what the intent's pending and succeeded refunds took from each."""
    assert type(amount_refundable_base_units) is int and amount_refundable_base_units >= 0
    assert type(amount_gross_base_units) is int and amount_gross_base_units > 0
    balance_max = amount_gross_base_units if intent_status == IntentStatus.SUCCEEDED else 0
    taken = list(refunds_not_failed)
    refundable_taken = sum(refund.from_refundable_base_units for refund in taken)
    balance_taken = sum(refund.from_balance_base_units for refund in taken)
    # Refundable money only grows (a reorg deeper than the confirmation depth is the policy's
    # failure), and a succeeded intent stays succeeded: the splits made earlier still fit.
    assert refundable_taken <= amount_refundable_base_units, (refundable_taken, amount_refundable_base_units)
    assert balance_taken <= balance_max, (balance_taken, balance_max)
    return RefundCapacity(
        refundable_left_base_units=amount_refundable_base_units - refundable_taken,
        balance_left_base_units=balance_max - balance_taken,
    )


def fund_refund(amount_base_units: int, capacity: RefundCapacity) -> RefundFunding:
    """The split of a new refund: the intent's refundable money first, then the merchant's
    balance. Raises RefundRuleError when the amount does not fit."""
    assert type(amount_base_units) is int and amount_base_units > 0
    if capacity.total_base_units == 0:
        raise RefundRuleError("nothing_to_refund", "This payment intent has nothing left to refund.", param="amount")
    if amount_base_units > capacity.total_base_units:
        raise RefundRuleError(
            "amount_too_large",
            f"amount exceeds what this payment intent can still refund: at most {capacity.total_base_units} base units.",
            param="amount",
        )
    from_refundable = min(amount_base_units, capacity.refundable_left_base_units)
    funding = RefundFunding(from_refundable_base_units=from_refundable, from_balance_base_units=amount_base_units - from_refundable)
    assert funding.from_balance_base_units <= capacity.balance_left_base_units
    return funding


# ---------------------------------------------------------------------- ledger
@dataclass(frozen=True)
class ReservationLeg:
    """One pending transfer of a refund's reservation, and the ids that later post or void it.
    Account codes are those of `domain.ledger.AccountCode`."""

    reserve_transfer_id: str
    post_transfer_id: str
    void_transfer_id: str
    debit_code: str
    credit_code: str
    amount_base_units: int


def reservation_legs(refund_id: str, funding: RefundFunding) -> list[ReservationLeg]:
    """The money leaves the treasury: its refundable part out of `unallocated`, the rest out of the
    merchant's available balance. Pending until the transfer is mined, then posted (or voided).
    The accounts' flags refuse an overdraft: `merchant_available` and `unallocated` may not be
    debited beyond their credits, `treasury` not credited beyond what was swept into it."""
    legs = []
    for source, debit_code, amount in (
        ("refundable", "unallocated", funding.from_refundable_base_units),
        ("balance", "merchant_available", funding.from_balance_base_units),
    ):
        if amount:
            legs.append(
                ReservationLeg(
                    reserve_transfer_id=f"{refund_id}/reserve/{source}",
                    post_transfer_id=f"{refund_id}/post/{source}",
                    void_transfer_id=f"{refund_id}/void/{source}",
                    debit_code=debit_code,
                    credit_code="treasury",
                    amount_base_units=amount,
                )
            )
    assert legs and sum(leg.amount_base_units for leg in legs) == funding.amount_base_units
    return legs


# ---------------------------------------------------------------------- destination
def parse_refund_address(value: object, *, param: str = "address") -> str:
    """The customer's address, checksummed. Lower-case hex (no checksum claimed) or a correct
    EIP-55 checksum; any other casing is a typo the checksum caught. The zero address burns."""
    try:
        return parse_evm_address(value)
    except InvalidAddress as error:
        if error.problem is AddressProblem.CHECKSUM:
            message = (
                f"{param} fails its EIP-55 checksum; copy the address exactly, or give it in lower case "
                f"(checksummed: {error.checksummed})"
            )
        elif error.problem is AddressProblem.ZERO:
            message = f"{param} must not be the zero address: tokens sent there are lost"
        else:
            message = f"{param} must be a 0x-prefixed 20-byte hex address"
        raise RefundRuleError("parameter_invalid", message, param=param) from None


# ---------------------------------------------------------------------- workflow models
# The workflow's input and view live here, with the rules, so activities and the API share them
# without importing the workflow module.
@dataclass
class RefundInput:
    refund_id: str
    tenant_id: str
    ledger_id: str
    intent_id: str
    chain_id: int
    asset_key: str  # ledger asset, e.g. "evm:31337:usdc"
    token_address: str
    address: str  # the customer's, checksummed
    amount_base_units: int
    from_refundable_base_units: int
    from_balance_base_units: int

    def __post_init__(self) -> None:
        assert self.amount_base_units > 0
        assert self.amount_base_units == self.from_refundable_base_units + self.from_balance_base_units


@dataclass
class RefundView:
    id: str
    status: str
    tx_hash: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


def refund_transfer_key(refund_id: str) -> str:
    """The outbox key of the refund's one token transfer: one transaction per refund, ever."""
    return f"{refund_id}/transfer"

