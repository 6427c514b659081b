"""A payment intent's rules, pure: payments seen, confirmed, orphaned by a reorg; expiry; cancel.

The workflow holds one `IntentState` and feeds it chain observations; every call returns the
events to record. Status is derived from the payments, never stored beside them, so it cannot
drift:

    requires_payment → processing (a payment seen, confirming) → succeeded
                     ↘ expired (timer)     ↘ canceled (only while nothing was received)

Each (tx hash, log index) is one payment, matched once: one transaction may carry several
transfers to deposit addresses, and each counts. Once the intent is terminal, a new payment is
recorded as late (refundable), never lost and never settled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from domain.confirmations import confirmations_of
from domain.events import EventType, intent_status_event_type
from domain.money import fee_split

PAYMENTS_PER_INTENT_MAX = 100
# Of those, the last places go only to payments that complete the intent: the watcher keeps them for
# the customer's real payment however much dust arrived first.
PAYMENTS_RESERVED_TO_COMPLETE = 10
# A token transfer's amount is a uint256: anything larger did not come from a chain.
AMOUNT_BASE_UNITS_MAX = 2**256 - 1

class IntentStatus(StrEnum):
    REQUIRES_PAYMENT = "requires_payment"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    EXPIRED = "expired"
    CANCELED = "canceled"


TERMINAL_STATUSES = frozenset({IntentStatus.SUCCEEDED, IntentStatus.EXPIRED, IntentStatus.CANCELED})


class IntentRuleViolation(ValueError):
    """A command the intent's current state does not allow (e.g. cancel after a payment)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Payment:
    tx_hash: str
    log_index: int
    amount_base_units: int
    block_number: int
    block_hash: str
    sender: str
    orphaned: bool = False
    late: bool = False  # arrived after the intent was terminal: refundable, never settled

    @property
    def key(self) -> str:
        return f"{self.tx_hash.lower()}:{self.log_index}"


@dataclass(frozen=True)
class Settlement:
    """What the ledger posts when the intent succeeds. gross == fee + net; excess is refundable."""

    gross_base_units: int
    fee_base_units: int
    net_base_units: int
    excess_base_units: int


@dataclass
class IntentState:
    intent_id: str
    amount_due_base_units: int
    confirmations_required: int
    fee_bps: int
    payments: dict[str, Payment] = field(default_factory=dict)
    head_block_number: int = 0
    terminal_status: IntentStatus | None = None
    settlement: Settlement | None = None
    # Chain input the intent refused without failing: payments beyond PAYMENTS_PER_INTENT_MAX, and
    # reorgs of payments its settlement used (deeper than its confirmations).
    payments_ignored: int = 0
    settled_payments_reorged: int = 0

    def __post_init__(self) -> None:
        assert isinstance(self.amount_due_base_units, int) and self.amount_due_base_units > 0
        assert self.confirmations_required >= 1

    # ---------------------------------------------------------------- derived
    @property
    def status(self) -> IntentStatus:
        if self.terminal_status is not None:
            return self.terminal_status
        if self.amount_received_base_units > 0:
            return IntentStatus.PROCESSING
        return IntentStatus.REQUIRES_PAYMENT

    def _live_payments(self, *, late: bool) -> list[Payment]:
        return [p for p in self.payments.values() if not p.orphaned and p.late == late]

    @property
    def amount_received_base_units(self) -> int:
        """Received toward this intent (not orphaned, not late), confirmed or not."""
        return sum(p.amount_base_units for p in self._live_payments(late=False))

    @property
    def amount_confirmed_base_units(self) -> int:
        return sum(p.amount_base_units for p in self._live_payments(late=False) if self.is_confirmed(p))

    @property
    def amount_remaining_base_units(self) -> int:
        return max(0, self.amount_due_base_units - self.amount_received_base_units)

    @property
    def refundable_base_units(self) -> int:
        """What the customer may get back, counting only confirmed payments: the excess of a
        success, everything an expired intent received, and every late payment."""
        late_confirmed = sum(p.amount_base_units for p in self._live_payments(late=True) if self.is_confirmed(p))
        if self.status is IntentStatus.SUCCEEDED:
            assert self.settlement is not None
            return self.settlement.excess_base_units + late_confirmed
        if self.status in (IntentStatus.EXPIRED, IntentStatus.CANCELED):
            return self.amount_confirmed_base_units + late_confirmed
        return 0

    def is_confirmed(self, payment: Payment) -> bool:
        return self.confirmations(payment) >= self.confirmations_required

    def confirmations(self, payment: Payment) -> int:
        return confirmations_of(block_number=payment.block_number, head_block_number=self.head_block_number)

    # ---------------------------------------------------------------- commands
    def observe_payment(self, payment: Payment) -> list[EventType]:
        """A transfer to the deposit address was seen in a block. Idempotent per (tx hash, log index)."""
        assert payment.amount_base_units > 0
        previous_status = self.status
        known = self.payments.get(payment.key)
        if known is not None:
            if known.orphaned and known.block_hash != payment.block_hash:
                # Re-included in another block after a reorg: it counts again, on its new block.
                known.orphaned, known.block_number, known.block_hash = False, payment.block_number, payment.block_hash
                return self._after_change(previous_status=previous_status)
            return []
        if len(self.payments) >= PAYMENTS_PER_INTENT_MAX:
            # The watcher keeps transfers beyond the cap away from the intent (unattributed money,
            # refundable); one that gets here anyway is counted, never raised on: chain input must
            # not fail the workflow.
            self.payments_ignored += 1
            return []
        if self.terminal_status is not None:
            payment.late = True
            self.payments[payment.key] = payment
            return [EventType.PAYMENT_INTENT_PAYMENT_LATE]
        self.payments[payment.key] = payment
        return self._after_change(previous_status=previous_status)

    def observe_head(self, head_block_number: int) -> list[EventType]:
        if head_block_number <= self.head_block_number:
            return []
        previous_status = self.status
        self.head_block_number = head_block_number
        return self._after_change(previous_status=previous_status)

    def observe_orphaned_block(self, block_hash: str) -> list[EventType]:
        """A reorg replaced this block: its payments no longer count (unless seen again)."""
        previous_status = self.status
        changed = False
        for payment in self.payments.values():
            if payment.block_hash == block_hash and not payment.orphaned:
                if self.terminal_status is IntentStatus.SUCCEEDED and not payment.late:
                    # Settlement only ever uses payments past their confirmation depth: a reorg that
                    # deep is beyond the confirmation policy. The settlement stands (the ledger has
                    # posted it); the intent counts the reorg for reconciliation to flag, and the
                    # chain cannot fail the workflow with it.
                    self.settled_payments_reorged += 1
                    continue
                payment.orphaned = True
                changed = True
        if not changed:
            return []
        events = [EventType.PAYMENT_INTENT_PAYMENT_ORPHANED]
        if self.status != previous_status:
            events.append(intent_status_event_type(self.status))
        return events

    def expire(self) -> list[EventType]:
        if self.terminal_status is not None:
            return []
        self.terminal_status = IntentStatus.EXPIRED
        return [EventType.PAYMENT_INTENT_EXPIRED]

    def cancel(self) -> list[EventType]:
        if self.terminal_status is IntentStatus.CANCELED:
            return []
        if self.terminal_status is not None:
            raise IntentRuleViolation("intent_terminal", f"the intent is already {self.terminal_status.value}")
        if self.payments:
            raise IntentRuleViolation("payment_received", "an intent that has received a payment cannot be canceled")
        self.terminal_status = IntentStatus.CANCELED
        return [EventType.PAYMENT_INTENT_CANCELED]

    # ---------------------------------------------------------------- internals
    def _after_change(self, *, previous_status: IntentStatus) -> list[EventType]:
        events: list[EventType] = []
        if self.terminal_status is None and self.amount_confirmed_base_units >= self.amount_due_base_units:
            gross = self.amount_due_base_units
            fee, net = fee_split(gross, fee_bps=self.fee_bps)
            confirmed = self.amount_confirmed_base_units
            # Payments still confirming when the intent settles are beyond what it needed: they
            # become late (refundable once confirmed), so a reorg of one cannot touch the settlement.
            for payment in self._live_payments(late=False):
                if not self.is_confirmed(payment):
                    payment.late = True
            self.settlement = Settlement(
                gross_base_units=gross, fee_base_units=fee, net_base_units=net, excess_base_units=confirmed - gross
            )
            self.terminal_status = IntentStatus.SUCCEEDED
        status = self.status
        if status != previous_status:
            events.append(intent_status_event_type(status))
        return events


# ---------------------------------------------------------------------- workflow models
# The workflow's input and views live here, with the rules, so activities and the API share them
# without importing the workflow module.
@dataclass
class PaymentIntentInput:
    intent_id: str
    tenant_id: str
    ledger_id: str
    chain_id: int
    asset: str  # "usdc" / "usdt"
    asset_key: str  # ledger asset, e.g. "evm:31337:usdc"
    token_address: str
    decimals: int
    amount_base_units: int
    fee_bps: int
    confirmations_required: int
    expires_at: str  # ISO 8601, UTC
    client_secret_hash: str
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    success_url: str | None = None
    cancel_url: str | None = None
    idempotency_key: str | None = None
    # Last, so workflows started before it existed still decode their input (None: no notify_url).
    notify_url: str | None = None
    # The CREATE2 deposit address (and its salt and factory), computed by whoever creates the intent
    # (the API), so the workflow needs no activity for it; None: the workflow asks its worker.
    deposit_address: str | None = None
    deposit_salt: str | None = None
    deposit_factory: str | None = None


@dataclass
class PaymentView:
    tx_hash: str
    log_index: int
    amount: str
    block_number: int
    block_hash: str
    confirmations: int
    orphaned: bool
    late: bool


@dataclass
class PaymentIntentView:
    id: str
    status: str
    amount: str
    amount_received: str
    amount_remaining: str
    amount_refundable: str
    fee: str | None
    net: str | None
    confirmations_required: int
    deposit_address: str
    payments: list[PaymentView]
    # Sweeping is the chain's sweeper's work: the read model (payment_intents.amount_swept) knows it.
    amount_swept: str | None = None


# ---------------------------------------------------------------------- ledger postings
@dataclass(frozen=True)
class LedgerMove:
    """One transfer of a posting template: `transfer_id` is derived from the intent and the step,
    so a retried step posts nothing twice. Account codes are those of `domain.ledger.AccountCode`."""

    transfer_id: str
    debit_code: str
    credit_code: str
    amount_base_units: int
    transfer_code: str = "intent"  # what kind of movement: settle, refundable, sweep


# Accounts of an intent's postings, per tenant ledger and asset:
#   customer_deposits   confirmed tokens sitting at deposit addresses (debit balance)
#   treasury            tokens swept to the treasury (debit balance)
#   merchant_available  what the merchant earned, net of fees (credit balance)
#   platform_fees       the platform's fees (credit balance)
#   unallocated         confirmed money owed back to customers: excess, expired, late (credit balance)
def settlement_moves(intent_id: str, settlement: Settlement) -> list[LedgerMove]:
    """gross received → merchant, then the platform fee out of it; the merchant keeps the net."""
    moves = [LedgerMove(f"{intent_id}/settle/gross", "customer_deposits", "merchant_available", settlement.gross_base_units, "settle")]
    if settlement.fee_base_units:
        moves.append(LedgerMove(f"{intent_id}/settle/fee", "merchant_available", "platform_fees", settlement.fee_base_units, "settle"))
    return moves


def refundable_moves(intent_id: str, *, posted_before: int, total: int) -> list[LedgerMove]:
    assert total > posted_before >= 0
    return [LedgerMove(f"{intent_id}/refundable/{total}", "customer_deposits", "unallocated", total - posted_before, "refundable")]


def sweep_moves(intent_id: str, *, swept_before: int, total: int) -> list[LedgerMove]:
    assert total > swept_before >= 0
    return [LedgerMove(f"{intent_id}/sweep/{total}", "treasury", "customer_deposits", total - swept_before, "sweep")]


def unattributed_moves(intent_id: str, *, tx_hash: str, log_index: int, amount_base_units: int) -> list[LedgerMove]:
    """A confirmed payment to the intent's deposit address that the intent did not take (beyond its
    payment cap, or after its workflow closed): the customer's money, refundable."""
    assert amount_base_units > 0
    return [
        LedgerMove(f"{intent_id}/unattributed/{tx_hash.lower()}:{log_index}", "customer_deposits", "unallocated", amount_base_units,
                   "refundable")
    ]
