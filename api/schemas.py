"""Request and response models of the tenant, API-key and audit routes. Inputs forbid unknown
fields (a typo is a 400, not a silently ignored setting); outputs carry an `object` name."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from api.pagination import ListResponse
from db.api_keys import ApiKey, CreatedApiKey
from db.audit import AuditEvent
from db.tenants import Tenant
from domain.confirmations import CONFIRMATION_TIERS_COUNT_MAX, ConfirmationTier
from domain.confirmations import TIER_CONFIRMATIONS_MAX as CONFIRMATIONS_MAX
from domain.tenants import (
    APPROVERS_COUNT_MAX,
    CHAIN_ID_MAX,
    FEE_BPS_MAX,
    KEY_NAME_LENGTH_MAX,
    KEY_ROTATION_OVERLAP_S_MAX,
    KEY_SCOPES_COUNT_MAX,
    PAYOUT_ADDRESSES_COUNT_MAX,
    TENANT_NAME_LENGTH_MAX,
    ApiKeyStatus,
    ApiKeyType,
    Scope,
    TenantKind,
    TenantStatus,
    check_text,
    require_unique,
    validate_confirmation_tiers,
    validate_evm_address,
)

LABEL_LENGTH_MAX = 100
# Bounds the walk over a request's values; the router already refuses JSON nested deeper.
TEXT_WALK_DEPTH_MAX = 64


def unstorable_text_reason(text: str) -> str | None:
    """Why PostgreSQL could not store `text` (in TEXT or JSONB), or None when it can: NUL is
    refused by both, and a lone surrogate (a JSON `\\ud800` escape unpaired) has no UTF-8 form.
    Left through, either fails the write deep inside a workflow's activity instead of here."""
    if "\x00" in text:
        return "must not contain NUL characters (\\u0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "must not contain unpaired surrogates (invalid \\ud800-\\udfff escapes)"
    return None


def find_unstorable_text(value: Any, *, path: str = "", depth: int = 0) -> tuple[str, str] | None:
    """The first string in `value` (keys of objects included) that PostgreSQL could not store, as
    (where, why); `where` is a param path such as `metadata.order` or `payout_addresses[0].label`.
    A bad key is reported at its object's path: the key itself is never echoed back."""
    if isinstance(value, str):
        reason = unstorable_text_reason(value)
        return (path, reason) if reason else None
    if depth >= TEXT_WALK_DEPTH_MAX:
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                reason = unstorable_text_reason(key)
                if reason:
                    return (path, f"keys {reason}")
            found = find_unstorable_text(item, path=f"{path}.{key}" if path else str(key), depth=depth + 1)
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = find_unstorable_text(item, path=f"{path}[{index}]", depth=depth + 1)
            if found:
                return found
    return None


def _text(param: str, length_max: int) -> AfterValidator:
    return AfterValidator(lambda value: check_text(value, param=param, length_max=length_max))


TenantName = Annotated[str, Field(min_length=1, max_length=TENANT_NAME_LENGTH_MAX), _text("name", TENANT_NAME_LENGTH_MAX)]
KeyName = Annotated[str, Field(min_length=1, max_length=KEY_NAME_LENGTH_MAX), _text("name", KEY_NAME_LENGTH_MAX)]
Label = Annotated[str, Field(min_length=1, max_length=LABEL_LENGTH_MAX), _text("label", LABEL_LENGTH_MAX)]
EvmAddress = Annotated[
    str,
    Field(
        min_length=42,
        max_length=42,
        pattern=r"^0x[0-9a-fA-F]{40}$",
        description="An EIP-55 checksummed EVM address; other casings are refused.",
        examples=["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"],
    ),
    AfterValidator(validate_evm_address),
]
FeeBps = Annotated[int, Strict(), Field(ge=0, le=FEE_BPS_MAX, description="The platform fee in basis points (100 = 1%).")]


class _NotNull:
    """`Annotated[X | None, NotNull] = None`: a field that may be left out (None then stands for
    "left out") but not sent as null. Null is refused in validation and left out of the document,
    so the schema does not call the field nullable while the API refuses null."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(_refuse_null, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        json_schema = handler(schema)
        options = [option for option in json_schema.get("anyOf", []) if option != {"type": "null"}]
        if "anyOf" in json_schema and len(options) == 1:
            del json_schema["anyOf"]
            json_schema.update(options[0])
        return json_schema


def _refuse_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("null_refused", "cannot be null; leave the field out to keep it")
    return value


NotNull = _NotNull()


def _allows_null(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null" or any(_allows_null(option) for option in schema.get("anyOf", []))


def _no_null_defaults(schema: dict[str, Any]) -> None:
    """A field that may be left out but not sent as null (`NotNull`) has no `default: null` in
    the document either: the default would contradict its own schema."""
    for field_schema in schema.get("properties", {}).values():
        if "default" in field_schema and field_schema["default"] is None and not _allows_null(field_schema):
            del field_schema["default"]


class Input(BaseModel):
    """The base of every request body: unknown fields are refused, and so is any text, anywhere in
    the body (object keys included), that PostgreSQL cannot store. Its integer and boolean fields
    are strict (`Strict()` / `Field(strict=True)`): `"5"`, `5.0` and `true` are not coerced to 5;
    tests/api/test_edge_validation.py checks every Input for it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_defaults)

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        found = find_unstorable_text(data)
        if found:
            where, reason = found
            # `field` extends the error's location (see api.errors): the param names the field.
            raise PydanticCustomError("text_unstorable", "{reason}", {"field": where, "reason": reason})
        return data


class PayoutAddress(Input):
    chain_id: int = Field(strict=True, ge=1, le=CHAIN_ID_MAX, description="The EVM chain id (EIP-155).")
    address: EvmAddress
    label: Label | None = None


class Approver(Input):
    address: EvmAddress = Field(description="The address whose EIP-712 signature approves a payout batch.")
    name: Label | None = None


class ConfirmationTierModel(Input):
    # The upper bound (2**256 - 1) is checked by validate_confirmation_tiers: as a JSON Schema
    # `maximum` it would be rounded to a float in the OpenAPI document.
    amount_base_units_min: int = Field(strict=True, ge=0, description="The tier applies from this amount up (base units, below 2**256).")
    confirmations_min: int = Field(strict=True, ge=0, le=CONFIRMATIONS_MAX)


class ConfirmationPolicy(Input):
    """Overrides the platform's confirmation policy: the confirmations a payment needs, by amount."""

    tiers: list[ConfirmationTierModel] = Field(min_length=1, max_length=CONFIRMATION_TIERS_COUNT_MAX)

    @model_validator(mode="after")
    def _tiers_make_sense(self) -> "ConfirmationPolicy":
        validate_confirmation_tiers(
            [ConfirmationTier(tier.amount_base_units_min, tier.confirmations_min) for tier in self.tiers], param="tiers"
        )
        return self


PayoutAddresses = Annotated[list[PayoutAddress], Field(max_length=PAYOUT_ADDRESSES_COUNT_MAX)]
Approvers = Annotated[list[Approver], Field(max_length=APPROVERS_COUNT_MAX)]


def _unique_payout_addresses(values: list[PayoutAddress]) -> list[PayoutAddress]:
    require_unique([f"{value.chain_id}:{value.address}" for value in values], param="payout_addresses")
    return values


def _unique_approvers(values: list[Approver]) -> list[Approver]:
    require_unique([value.address for value in values], param="approvers")
    return values


UniquePayoutAddresses = Annotated[PayoutAddresses, AfterValidator(_unique_payout_addresses)]
UniqueApprovers = Annotated[Approvers, AfterValidator(_unique_approvers)]


# ---------------------------------------------------------------------------- tenants
class TenantCreate(Input):
    kind: TenantKind
    name: TenantName
    fee_bps: FeeBps = 0
    payout_addresses: UniquePayoutAddresses = Field(default_factory=list)
    confirmation_policy: ConfirmationPolicy | None = None
    approvers: UniqueApprovers = Field(default_factory=list)


PLATFORM_SETTING_NOTE = (
    "Set by the platform admin only (`PATCH /v1/tenants/{tenant_id}`, `settle tenants update`): "
    "a tenant's own key sending it gets a 403 `platform_setting`."
)


class TenantUpdate(Input):
    """Fields given are replaced (lists as a whole); fields left out stay as they are.
    `fee_bps` and `confirmation_policy` are the platform's: a tenant's key may not send them."""

    name: Annotated[TenantName | None, NotNull] = None
    fee_bps: Annotated[FeeBps | None, NotNull] = Field(default=None, description=PLATFORM_SETTING_NOTE)
    payout_addresses: Annotated[UniquePayoutAddresses | None, NotNull] = None
    confirmation_policy: ConfirmationPolicy | None = Field(default=None, description=PLATFORM_SETTING_NOTE)
    approvers: Annotated[UniqueApprovers | None, NotNull] = None

    def changes(self) -> dict[str, Any]:
        dumped = self.model_dump(mode="json")
        return {name: dumped[name] for name in self.model_fields_set}


class TenantPlatformUpdate(Input):
    """The platform's settings of a tenant, changed by the platform admin (audited). Fields given
    are replaced; fields left out stay as they are. `confirmation_policy: null` removes the override."""

    fee_bps: Annotated[FeeBps | None, NotNull] = None
    confirmation_policy: ConfirmationPolicy | None = None

    def changes(self) -> dict[str, Any]:
        dumped = self.model_dump(mode="json")
        return {name: dumped[name] for name in self.model_fields_set}


class TenantRead(BaseModel):
    object: Literal["tenant"] = "tenant"
    id: str
    kind: TenantKind
    name: str
    status: TenantStatus
    ledger_id: int = Field(description="The tenant's ledger in the double-entry ledger.")
    livemode: bool
    fee_bps: int
    payout_addresses: list[PayoutAddress]
    confirmation_policy: ConfirmationPolicy | None
    approvers: list[Approver]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, tenant: Tenant) -> "TenantRead":
        return cls(
            id=tenant.id,
            kind=tenant.kind,
            name=tenant.name,
            status=tenant.status,
            ledger_id=tenant.ledger_id,
            livemode=tenant.livemode,
            fee_bps=tenant.fee_bps,
            payout_addresses=[PayoutAddress.model_validate(value) for value in tenant.payout_addresses],
            confirmation_policy=ConfirmationPolicy.model_validate(tenant.confirmation_policy) if tenant.confirmation_policy else None,
            approvers=[Approver.model_validate(value) for value in tenant.approvers],
            created_at=tenant.created_at,
            updated_at=tenant.updated_at,
        )


# ---------------------------------------------------------------------------- api keys
class ApiKeyCreate(Input):
    name: KeyName
    type: Literal["restricted", "publishable"] = Field(
        default="restricted",
        description="`restricted`: the scopes listed (no more than the calling key holds). `publishable`: checkout only.",
    )
    scopes: list[Scope] | None = Field(default=None, max_length=KEY_SCOPES_COUNT_MAX)


class ApiKeyRotate(Input):
    expires_in_s: int | None = Field(
        default=None,
        strict=True,
        ge=0,
        le=KEY_ROTATION_OVERLAP_S_MAX,
        description="How long the old key keeps working (the overlap window); 0 stops it now. Default: 24 hours.",
    )


class ApiKeyRead(BaseModel):
    object: Literal["api_key"] = "api_key"
    id: str
    type: ApiKeyType
    name: str
    scopes: list[Scope]
    livemode: bool
    redacted_key: str = Field(description="The key's prefix and last characters, to recognise it. Never the secret.")
    status: ApiKeyStatus
    created_at: datetime
    expires_at: datetime | None = Field(description="Set when rotated: the key stops working then.")
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="When the key last authenticated a request (to the minute).")
    rotated_from: str | None
    rotated_to: str | None

    @classmethod
    def of(cls, key: ApiKey) -> "ApiKeyRead":
        return cls(**_api_key_fields(key))


class ApiKeyCreated(ApiKeyRead):
    secret: str | None = Field(
        description=(
            "The key itself, shown in this response only: store it now. Settle keeps only its hash; "
            "a replay of this response (same Idempotency-Key) has null here."
        )
    )

    @classmethod
    def of_created(cls, created: CreatedApiKey) -> "ApiKeyCreated":
        return cls(**_api_key_fields(created.api_key), secret=created.secret)


def _api_key_fields(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "type": key.type,
        "name": key.name,
        "scopes": sorted(key.scopes),
        "livemode": key.livemode,
        "redacted_key": key.redacted,
        "status": key.status(now=datetime.now(timezone.utc)),
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
        "rotated_from": key.rotated_from,
        "rotated_to": key.rotated_to,
    }


class ApiKeyRotation(BaseModel):
    object: Literal["api_key_rotation"] = "api_key_rotation"
    api_key: ApiKeyCreated = Field(description="The new key, with its secret (shown once).")
    previous_api_key: ApiKeyRead = Field(description="The rotated key; it works until its `expires_at`.")


class TenantCreated(TenantRead):
    api_key: ApiKeyCreated = Field(description="The tenant's first secret key, with its secret (shown once).")


class TenantList(ListResponse[TenantRead]):
    pass


class ApiKeyList(ListResponse[ApiKeyRead]):
    pass


# ---------------------------------------------------------------------------- audit
class AuditActor(BaseModel):
    type: str = Field(description="`platform_admin`, `api_key`, `cli` or `system`.")
    id: str = Field(description="The API key id, or the platform admin / CLI user.")


class AuditEventRead(BaseModel):
    object: Literal["audit_event"] = "audit_event"
    id: str
    action: str = Field(description="What happened, e.g. `api_key.rotated`, `tenant.settings_updated`.")
    actor: AuditActor
    object_type: str
    object_id: str
    request_id: str | None
    ip: str | None
    data: dict[str, Any] = Field(description="Details: names, scopes, settings before and after. Never a secret.")
    created_at: datetime

    @classmethod
    def of(cls, event: AuditEvent) -> "AuditEventRead":
        return cls(
            id=event.id,
            action=event.action,
            actor=AuditActor(type=event.actor_type, id=event.actor_id),
            object_type=event.object_type,
            object_id=event.object_id,
            request_id=event.request_id,
            ip=event.ip,
            data=event.data,
            created_at=event.created_at,
        )


class AuditEventList(ListResponse[AuditEventRead]):
    pass


class Health(BaseModel):
    status: Literal["ok"]
