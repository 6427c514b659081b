"""What the checkout page shows of an intent, decided in one pure function: the state a customer
understands (waiting, confirming n of m, underpaid, paid, overpaid, expired, canceled), the
amounts in token units, and the payment request to scan or send now (the whole amount, or what
is still due). Never the fee, the net or the metadata: they are not even carried here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum

import segno

from api.schemas_payment_intents import payment_uri
from db.payment_intents import StoredIntent
from domain.events import checksum_address
from domain.money import Asset, format_amount
from domain.payment_intents import IntentStatus

# ERC-20 `transfer(address,uint256)`.
TRANSFER_SELECTOR = "0xa9059cbb"
# Medium error correction: readable off a scratched phone screen, still a small code for a long URI.
QR_ERROR_CORRECTION = "m"
QR_BORDER_MODULES = 4


class CheckoutState(StrEnum):
    WAITING = "waiting"
    CONFIRMING = "confirming"
    UNDERPAID = "underpaid"
    PAID = "paid"
    OVERPAID = "overpaid"
    EXPIRED = "expired"
    CANCELED = "canceled"


TERMINAL_STATES = frozenset({CheckoutState.PAID, CheckoutState.OVERPAID, CheckoutState.EXPIRED, CheckoutState.CANCELED})
# States in which the customer still has something to send.
PAYABLE_STATES = frozenset({CheckoutState.WAITING, CheckoutState.UNDERPAID})


@dataclass(frozen=True)
class PaymentRequest:
    """What to send now: an EIP-681 URI, its QR code, and the ERC-20 calldata for a browser wallet."""

    amount_base_units: int
    uri: str
    qr_svg: str
    transfer_calldata: str


@dataclass(frozen=True)
class CheckoutView:
    intent_id: str
    state: CheckoutState
    merchant: str
    description: str | None
    asset_symbol: str
    decimals: int
    chain_id: int
    token_address: str
    deposit_address: str
    amount_base_units: int
    amount_received_base_units: int
    amount_remaining_base_units: int
    amount_excess_base_units: int
    confirmations_count: int | None
    confirmations_required: int
    expires_at: datetime
    success_url: str | None
    cancel_url: str | None
    payment_request: PaymentRequest | None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def redirect_url(self) -> str | None:
        return self.success_url if self.state in (CheckoutState.PAID, CheckoutState.OVERPAID) else None

    @property
    def leave_url(self) -> str | None:
        return self.cancel_url if self.state in (CheckoutState.EXPIRED, CheckoutState.CANCELED) else None

    def tokens(self, amount_base_units: int) -> str:
        """Base units in token units for people: 2500000 of a 6-decimal token is "2.50"."""
        return format_amount(amount_base_units, decimals=self.decimals)

    @property
    def expires_at_utc(self) -> str:
        return self.expires_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


def transfer_calldata(*, to: str, amount_base_units: int) -> str:
    """ABI-encoded `transfer(to, amount)`: what a wallet sends to the token contract."""
    assert to.startswith("0x") and len(to) == 42
    assert 0 < amount_base_units < 2**256
    return TRANSFER_SELECTOR + to[2:].lower().rjust(64, "0") + format(amount_base_units, "x").rjust(64, "0")


@functools.lru_cache(maxsize=1024)
def qr_svg(uri: str) -> str:
    """An inline SVG QR code of `uri`, sized by CSS (no width/height), hidden from screen readers
    (its container carries the accessible label). Cached: an open page polls every few seconds
    for the same URI, and encoding one takes ~12 ms of the event loop."""
    code = segno.make(uri, error=QR_ERROR_CORRECTION, micro=False)
    svg = code.svg_inline(
        scale=1, border=QR_BORDER_MODULES, omitsize=True, dark="#000", light="#fff", svgclass="qr-code", lineclass="qr-modules"
    )
    return svg.replace("<svg ", '<svg aria-hidden="true" focusable="false" ', 1)


def payment_request(intent: StoredIntent, *, amount_base_units: int) -> PaymentRequest:
    uri = payment_uri(
        token_address=checksum_address(intent.token_address), chain_id=intent.chain_id,
        deposit_address=checksum_address(intent.deposit_address), amount=amount_base_units,
    )
    return PaymentRequest(
        amount_base_units=amount_base_units,
        uri=uri,
        qr_svg=qr_svg(uri),
        transfer_calldata=transfer_calldata(to=intent.deposit_address, amount_base_units=amount_base_units),
    )


def state_of(intent: StoredIntent) -> CheckoutState:
    status = IntentStatus(intent.status)
    if status is IntentStatus.CANCELED:
        return CheckoutState.CANCELED
    if status is IntentStatus.EXPIRED:
        return CheckoutState.EXPIRED
    if status is IntentStatus.SUCCEEDED:
        return CheckoutState.OVERPAID if intent.amount_received > intent.amount else CheckoutState.PAID
    if intent.amount_received <= 0:
        return CheckoutState.WAITING
    if intent.amount_received < intent.amount:
        return CheckoutState.UNDERPAID
    return CheckoutState.CONFIRMING


def confirmations_count(intent: StoredIntent, confirmations: dict[str, int] | None) -> int | None:
    """The least-confirmed live payment's confirmations (capped at the requirement), or None when
    the workflow could not say."""
    live = [payment for payment in intent.payments if not payment.orphaned and not payment.late]
    if confirmations is None or not live:
        return None
    counts = [confirmations.get(f"{payment.tx_hash.lower()}:{payment.log_index}") for payment in live]
    if any(count is None for count in counts):
        return None
    return max(0, min(min(count for count in counts if count is not None), intent.confirmations_required))


def checkout_view(
    intent: StoredIntent, *, merchant: str, asset: Asset | None, confirmations: dict[str, int] | None
) -> CheckoutView:
    """The page's view of `intent`. `asset` gives the symbol and decimals (None: an asset this
    deployment no longer lists, shown in base units); `confirmations` maps `txhash:logindex` to
    each payment's confirmations, or is None when unknown."""
    state = state_of(intent)
    remaining = max(0, intent.amount - intent.amount_received)
    request = None
    if state is CheckoutState.WAITING:
        request = payment_request(intent, amount_base_units=intent.amount)
    elif state is CheckoutState.UNDERPAID:
        request = payment_request(intent, amount_base_units=remaining)
    return CheckoutView(
        intent_id=intent.id,
        state=state,
        merchant=merchant,
        description=intent.description,
        asset_symbol=asset.symbol if asset is not None else intent.asset.upper(),
        decimals=asset.decimals if asset is not None else 0,
        chain_id=intent.chain_id,
        # EIP-55, as the API and the events show them: one spelling of an address everywhere.
        token_address=checksum_address(intent.token_address),
        deposit_address=checksum_address(intent.deposit_address),
        amount_base_units=intent.amount,
        amount_received_base_units=intent.amount_received,
        amount_remaining_base_units=remaining,
        amount_excess_base_units=max(0, intent.amount_received - intent.amount),
        confirmations_count=confirmations_count(intent, confirmations) if state is CheckoutState.CONFIRMING else None,
        confirmations_required=intent.confirmations_required,
        expires_at=intent.expires_at,
        success_url=intent.success_url,
        cancel_url=intent.cancel_url,
        payment_request=request,
    )
