"""Request and response models of the payment-intent and event routes. Amounts travel as strings
of base units (never floats); inputs forbid unknown fields. An intent's fields are those of
domain.events.payment_intent_object, which also builds the `data` of its events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, StrictStr

from api.pagination import ListResponse
from api.schemas import Input
from api.schemas_webhooks import NotifySecretCreated, TargetUrl
from db.events import Event
from db.payment_intents import StoredIntent, stored_intent_object
from domain.events import payment_uri  # noqa: F401 - the checkout page imports it from here

DESCRIPTION_LENGTH_MAX = 500
METADATA_KEYS_MAX = 20
METADATA_KEY_LENGTH_MAX = 40
METADATA_VALUE_LENGTH_MAX = 500
URL_LENGTH_MAX = 2048
EXPIRES_IN_S_MIN = 60
EXPIRES_IN_S_MAX = 7 * 86400
EXPIRES_IN_S_DEFAULT = 3600
CONFIRMATIONS_OVERRIDE_MAX = 1000
# The asset codes the API knows (db.settings.Settings.assets); a deployment accepts those whose
# token contract it has, and answers 400 for the others.
AssetCode = Literal["usdc", "usdt"]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in value):
        raise ValueError("must not contain spaces or control characters")
    return value


def _metadata(value: dict[str, str]) -> dict[str, str]:
    for key, item in value.items():
        if not key or len(key) > METADATA_KEY_LENGTH_MAX:
            raise ValueError(f"keys must be 1 to {METADATA_KEY_LENGTH_MAX} characters")
        if len(item) > METADATA_VALUE_LENGTH_MAX:
            raise ValueError(f"values must be at most {METADATA_VALUE_LENGTH_MAX} characters")
    return value


def _amount_not_null(value: Any) -> Any:
    # Checked in full (digits, bounds, never a float) by domain.money.parse_amount, which needs the asset.
    if value is None:
        raise ValueError("must be an integer or a string of digits, not null")
    return value


# An amount in base units as the client wrote it: a JSON integer or a string of digits.
AmountInput = Annotated[Any, AfterValidator(_amount_not_null)]
HttpUrl = Annotated[str, Field(min_length=1, max_length=URL_LENGTH_MAX, description="An http(s) URL."), AfterValidator(_http_url)]
Metadata = Annotated[
    dict[StrictStr, StrictStr],
    Field(
        max_length=METADATA_KEYS_MAX,
        description=f"Your own key-value pairs: at most {METADATA_KEYS_MAX} keys of ≤ {METADATA_KEY_LENGTH_MAX} characters, "
        f"string values of ≤ {METADATA_VALUE_LENGTH_MAX}.",
    ),
    AfterValidator(_metadata),
]


class PaymentIntentCreate(Input):
    amount: AmountInput = Field(
        description="The amount due in the token's base units, as a JSON integer or a string of digits "
        '(`"25000000"` is 25.00 USDC). Never a float or a decimal.',
        json_schema_extra={"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": "^0*[1-9][0-9]*$", "maxLength": 78}]},
    )
    asset: AssetCode = Field(description="The stablecoin due: `usdc` or `usdt` (6 decimals each).")
    description: Annotated[str | None, Field(max_length=DESCRIPTION_LENGTH_MAX)] = None
    metadata: Metadata = Field(default_factory=dict)
    expires_in: Annotated[
        int, Field(strict=True, ge=EXPIRES_IN_S_MIN, le=EXPIRES_IN_S_MAX, description="Seconds until the intent expires (60 s to 7 days).")
    ] = EXPIRES_IN_S_DEFAULT
    success_url: HttpUrl | None = None
    cancel_url: HttpUrl | None = None
    confirmations: Annotated[
        int | None,
        Field(strict=True, ge=1, le=CONFIRMATIONS_OVERRIDE_MAX, description="Overrides the confirmations a payment needs."),
    ] = None
    notify_url: Annotated[
        TargetUrl | None,
        Field(
            description="Also deliver every event of this intent here, as a webhook (same envelope, retries and delivery log) "
            "signed with the tenant's notify secret. Checked like a webhook endpoint's URL: https (plain http only in "
            "local/test deployments), no credentials, never a private, loopback or cloud-metadata address outside local/test."
        ),
    ] = None


class PaymentRead(BaseModel):
    tx_hash: str
    log_index: int
    amount: str
    block_number: int
    block_hash: str
    confirmations: int | None = Field(description="Blocks on top of the payment's, its own included; null if unknown now.")
    orphaned: bool
    late: bool = Field(description="Arrived after the intent was final: refundable, never settled.")


class PaymentIntentRead(BaseModel):
    object: Literal["payment_intent"] = "payment_intent"
    id: str
    status: str = Field(description="`requires_payment`, `processing`, `succeeded`, `expired` or `canceled`.")
    amount: str = Field(description="Due, in base units.")
    amount_received: str
    amount_remaining: str
    amount_refundable: str = Field(description="Confirmed money the merchant did not earn (excess, expired, late): the customer's.")
    amount_refunded: str = Field(description="Sent back to the customer by succeeded refunds.")
    amount_swept: str = Field(description="Moved from the deposit address to the treasury; `\"0\"` until then.")
    fee: str | None = Field(description="The platform's fee, once the intent succeeded.")
    net: str | None = Field(description="What the merchant is credited, once the intent succeeded.")
    fee_bps: int
    asset: str
    chain_id: int
    token_address: str = Field(description="The token's contract, EIP-55 checksummed.")
    deposit_address: str = Field(description="Where the customer pays, EIP-55 checksummed.")
    payment_uri: str = Field(description="An EIP-681 payment request for wallets.")
    confirmations_required: int
    description: str | None
    metadata: dict[str, str]
    success_url: str | None
    cancel_url: str | None
    notify_url: str | None = Field(description="Where every event of this intent is also delivered, signed with the notify secret.")
    expires_at: datetime
    created_at: datetime
    payments: list[PaymentRead]

    @classmethod
    def fields_of(cls, intent: StoredIntent, confirmations: dict[str, int] | None = None) -> dict[str, Any]:
        """The one serializer's object (the same as its events' `data`), as this model's fields."""
        return {key: value for key, value in stored_intent_object(intent, confirmations=confirmations).items() if key != "object"}

    @classmethod
    def of(cls, intent: StoredIntent) -> "PaymentIntentRead":
        return cls(**cls.fields_of(intent))


class PaymentIntentCreated(PaymentIntentRead):
    client_secret: str | None = Field(
        description="Lets the checkout page read this intent's public view. Shown in the create response only; "
        "Settle keeps only its hash. Give it to the customer's browser, never log it."
    )
    checkout_url: str | None = Field(description="The hosted checkout page for this intent (carries the client secret).")
    notify_secret: NotifySecretCreated | None = Field(
        default=None,
        description="Set once: on the first intent naming a notify_url, when the tenant had no notify secret yet and the key "
        "may manage webhooks (`webhooks:write`). Otherwise null: POST /v1/notify_secret/rotate gives a new one.",
    )


class PaymentIntentPublic(BaseModel):
    """What the customer's checkout page may see: no fee, no net, no metadata, no tenant."""

    object: Literal["payment_intent_public"] = "payment_intent_public"
    id: str
    status: str
    amount: str
    amount_received: str
    amount_remaining: str
    asset: str
    chain_id: int
    token_address: str
    deposit_address: str
    payment_uri: str
    expires_at: datetime
    confirmations_required: int
    payments: list[PaymentRead]
    success_url: str | None
    cancel_url: str | None

    @classmethod
    def of(cls, intent: StoredIntent, confirmations: dict[str, int] | None = None) -> "PaymentIntentPublic":
        fields = PaymentIntentRead.fields_of(intent, confirmations)
        return cls(**{name: fields[name] for name in cls.model_fields if name in fields})


class PaymentIntentList(ListResponse[PaymentIntentRead]):
    pass


class EventRead(BaseModel):
    object: Literal["event"] = "event"
    id: str
    type: str = Field(description="What happened, e.g. `payment_intent.succeeded`.")
    object_id: str
    api_version: str
    data: dict[str, Any] = Field(description="The object as of this event.")
    created_at: datetime

    @classmethod
    def of(cls, event: Event) -> "EventRead":
        return cls(
            id=event.id, type=event.type, object_id=event.object_id, api_version=event.api_version, data=event.data, created_at=event.created_at
        )


class EventList(ListResponse[EventRead]):
    pass
