"""Request and response models of the refund routes. Amounts travel as strings of base units (never
floats); inputs forbid unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from api.pagination import ListResponse
from api.schemas import Input
from api.schemas_payment_intents import AmountInput, Metadata
from db.refunds import StoredRefund, stored_refund_object
from domain.refunds import RefundReason, parse_refund_address


def _address(value: str) -> str:
    return parse_refund_address(value)  # its RefundRuleError is a ValueError: a 400 on `address`


RefundAddress = Annotated[
    str,
    Field(
        min_length=42,
        max_length=42,
        pattern=r"^0x[0-9a-fA-F]{40}$",
        description="The customer's EVM address the refund is paid to: EIP-55 checksummed, or all lower case. Never assumed "
        "to be the payment's sender (exchanges pay from shared hot wallets): ask the customer.",
        examples=["0x90F79bf6EB2c4f870365E785982E1f101E93b906"],
    ),
    AfterValidator(_address),
]


class RefundCreate(Input):
    amount: AmountInput = Field(
        description="The amount to refund in the token's base units, as a JSON integer or a string of digits "
        '(`"5000000"` is 5.00 USDC). Never a float or a decimal. At most what the payment intent can still refund: '
        "its `amount_refundable` (over-, under- or late-paid money), plus its amount if it succeeded, minus its "
        "refunds that have not failed.",
        json_schema_extra={"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": "^0*[1-9][0-9]*$", "maxLength": 78}]},
    )
    address: RefundAddress
    reason: RefundReason | None = Field(default=None, description="Why: for your records and the events.")
    metadata: Metadata = Field(default_factory=dict)


class RefundRead(BaseModel):
    object: Literal["refund"] = "refund"
    id: str
    payment_intent: str = Field(description="The refunded payment intent's id.")
    status: str = Field(description="`pending`, `succeeded` (the transfer was mined) or `failed` (see `failure_code`).")
    amount: str = Field(description="In base units.")
    amount_from_refundable: str = Field(description="The part paid out of the intent's over-, under- or late-paid money.")
    amount_from_balance: str = Field(
        description="The part paid out of your available balance (a refund of the payment itself; the fee is not returned)."
    )
    asset: str
    chain_id: int
    token_address: str = Field(description="The token's contract, EIP-55 checksummed.")
    address: str = Field(description="Where the refund is paid, EIP-55 checksummed.")
    tx_hash: str | None = Field(description="The token transfer's transaction, once sent.")
    failure_code: str | None = Field(
        description="Why it failed: `insufficient_balance`, `funds_unavailable`, `transfer_failed`, `refunds_unavailable`, "
        "`address_refused` or `ledger_refused`. Nothing left the treasury for a failed refund."
    )
    failure_message: str | None
    reason: str | None
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, refund: StoredRefund) -> "RefundRead":
        return cls(**{key: value for key, value in stored_refund_object(refund).items() if key != "object"})


class RefundList(ListResponse[RefundRead]):
    pass
