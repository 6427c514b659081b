"""Tenants and their API keys: the rules, without I/O.

A tenant is a merchant (a shop taking payments) or a program (an affiliate/membership program).
Each has its own ledger, fee settings, payout addresses, an optional confirmation-policy
override and the approvers of its payout batches. Clients reach the API with keys of three
types:

- secret (`sk_test_...`/`sk_live_...`): every scope a tenant can hold; the first key of a
  tenant is one, and rotating a secret key gives a secret key.
- restricted (`rk_...`): the scopes it was created with, never more than its creator held.
- publishable (`pk_...`): only what the hosted checkout page may read.

A key is `<type>_<mode>_<lookup><secret>`: the lookup part finds the row, the whole token is
hashed and compared in constant time, and only the hash is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from domain.chains import ZERO_EVM_ADDRESS as ZERO_ADDRESS  # noqa: F401 - the name callers know
from domain.chains import AddressProblem, InvalidAddress, parse_evm_address
from domain.confirmations import ConfirmationTier, ConfirmationTiersInvalid, validate_tiers



class TenantRuleError(ValueError):
    """A rule of this module was broken by the caller's input: the API answers 400."""

    def __init__(self, message: str, *, param: str | None = None, code: str = "parameter_invalid") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class TenantKind(StrEnum):
    MERCHANT = "merchant"
    PROGRAM = "program"


class TenantStatus(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"


class ApiKeyType(StrEnum):
    SECRET = "secret"
    RESTRICTED = "restricted"
    PUBLISHABLE = "publishable"


class ApiKeyStatus(StrEnum):
    ACTIVE = "active"
    # Rotated: still accepted until `expires_at`, the overlap window for deploying the new key.
    EXPIRING = "expiring"
    EXPIRED = "expired"
    REVOKED = "revoked"


class KeyMode(StrEnum):
    TEST = "test"
    LIVE = "live"


class Scope(StrEnum):
    """What a key may do. A route names exactly one scope it needs."""

    TENANT_READ = "tenant:read"
    TENANT_WRITE = "tenant:write"
    API_KEYS_READ = "api_keys:read"
    API_KEYS_WRITE = "api_keys:write"
    AUDIT_EVENTS_READ = "audit_events:read"
    PAYMENT_INTENTS_READ = "payment_intents:read"
    PAYMENT_INTENTS_WRITE = "payment_intents:write"
    PAYOUTS_READ = "payouts:read"
    PAYOUTS_WRITE = "payouts:write"
    PAYOUTS_APPROVE = "payouts:approve"
    PROGRAMS_ADMIN = "programs:admin"
    WEBHOOKS_READ = "webhooks:read"
    WEBHOOKS_WRITE = "webhooks:write"
    # The only scope of a publishable key: what the checkout page may read with a client secret.
    CHECKOUT_READ = "checkout:read"


PUBLISHABLE_SCOPES: frozenset[Scope] = frozenset({Scope.CHECKOUT_READ})
SECRET_SCOPES: frozenset[Scope] = frozenset(scope for scope in Scope if scope not in PUBLISHABLE_SCOPES)

# Platform roles are not tenant scopes: the platform admin key is configuration, not a row.
PLATFORM_ADMIN_ROLE = "platform_admin"


class AuditAction(StrEnum):
    """What the audit log records. Later issues add approvals and freezes of their own objects."""

    TENANT_CREATED = "tenant.created"
    TENANT_SETTINGS_UPDATED = "tenant.settings_updated"
    TENANT_FROZEN = "tenant.frozen"
    TENANT_UNFROZEN = "tenant.unfrozen"
    API_KEY_CREATED = "api_key.created"
    API_KEY_ROTATED = "api_key.rotated"
    API_KEY_REVOKED = "api_key.revoked"
    PAYOUT_BATCH_APPROVED = "payout_batch.approved"
    PAYOUT_BATCH_REJECTED = "payout_batch.rejected"
    WEBHOOK_ENDPOINT_CREATED = "webhook_endpoint.created"
    WEBHOOK_ENDPOINT_UPDATED = "webhook_endpoint.updated"
    WEBHOOK_ENDPOINT_DELETED = "webhook_endpoint.deleted"
    WEBHOOK_ENDPOINT_SECRET_ROTATED = "webhook_endpoint.secret_rotated"
    WEBHOOK_DELIVERY_REDELIVERED = "webhook_delivery.redelivered"
    NOTIFY_SECRET_CREATED = "notify_secret.created"
    NOTIFY_SECRET_ROTATED = "notify_secret.rotated"


class ActorType(StrEnum):
    PLATFORM_ADMIN = "platform_admin"
    API_KEY = "api_key"
    CLI = "cli"
    SYSTEM = "system"


# ---------------------------------------------------------------------------- ids
ID_PREFIX_TENANT = "ten"
ID_PREFIX_API_KEY = "key"
ID_PREFIX_AUDIT_EVENT = "aud"
ID_PREFIX_REQUEST = "req"
ID_RANDOM_LENGTH = 24
# Every object id the API accepts in a path or a cursor: a short prefix, "_", then base62.
OBJECT_ID_PATTERN = r"^[a-z]{2,8}_[A-Za-z0-9]{8,64}$"
OBJECT_ID_LENGTH_MAX = 73

BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# ---------------------------------------------------------------------------- api keys
KEY_TYPE_PREFIXES: dict[ApiKeyType, str] = {
    ApiKeyType.SECRET: "sk",
    ApiKeyType.RESTRICTED: "rk",
    ApiKeyType.PUBLISHABLE: "pk",
}
KEY_LOOKUP_LENGTH = 12
# 32 base62 characters: about 190 bits, out of reach of guessing.
KEY_SECRET_LENGTH = 32
_KEY_PATTERN = re.compile(
    r"^(?P<prefix>sk|rk|pk)_(?P<mode>test|live)_"
    rf"(?P<lookup>[0-9A-Za-z]{{{KEY_LOOKUP_LENGTH}}})(?P<secret>[0-9A-Za-z]{{{KEY_SECRET_LENGTH}}})$"
)
KEY_NAME_LENGTH_MAX = 100
KEY_SCOPES_COUNT_MAX = len(Scope)
# How long a rotated key keeps working, at most: a week is enough to roll any deployment.
KEY_ROTATION_OVERLAP_S_MAX = 7 * 24 * 3600

ENVIRONMENTS_TEST_MODE = ("local", "test")


@dataclass(frozen=True)
class ParsedApiKey:
    key_type: ApiKeyType
    mode: KeyMode
    lookup: str


def key_mode_for_env(env: str) -> KeyMode:
    """Local and test deployments issue test keys; staging and production issue live keys."""
    return KeyMode.TEST if env in ENVIRONMENTS_TEST_MODE else KeyMode.LIVE


def format_api_key(*, key_type: ApiKeyType, mode: KeyMode, lookup: str, secret: str) -> str:
    assert len(lookup) == KEY_LOOKUP_LENGTH and all(c in BASE62_ALPHABET for c in lookup)
    assert len(secret) == KEY_SECRET_LENGTH and all(c in BASE62_ALPHABET for c in secret)
    return f"{KEY_TYPE_PREFIXES[key_type]}_{mode.value}_{lookup}{secret}"


def parse_api_key(token: str) -> ParsedApiKey | None:
    """The parts of a well-formed key, or None. Says nothing about whether the key exists."""
    if len(token) > 200:
        return None
    match = _KEY_PATTERN.match(token)
    if match is None:
        return None
    key_type = next(kind for kind, prefix in KEY_TYPE_PREFIXES.items() if prefix == match["prefix"])
    return ParsedApiKey(key_type=key_type, mode=KeyMode(match["mode"]), lookup=match["lookup"])


def hash_secret(value: str) -> bytes:
    """SHA-256 of a random, long secret (an API key, a client secret): no slow hash is needed."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def hash_api_key(token: str) -> bytes:
    return hash_secret(token)


def secret_matches(presented: str, *, stored_hash: bytes) -> bool:
    """Constant-time: how much of the hash matched never shows in the timing."""
    return hmac.compare_digest(hash_secret(presented), stored_hash)


def redact_api_key(token: str) -> str:
    """What may be shown or logged of a key: its prefix, the lookup's first four and the last four."""
    parsed = parse_api_key(token)
    if parsed is None:
        return "[REDACTED]"
    prefix = f"{KEY_TYPE_PREFIXES[parsed.key_type]}_{parsed.mode.value}_"
    return f"{prefix}{parsed.lookup[:4]}...{token[-4:]}"


def api_key_status(*, revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> ApiKeyStatus:
    if revoked_at is not None:
        return ApiKeyStatus.REVOKED
    if expires_at is None:
        return ApiKeyStatus.ACTIVE
    return ApiKeyStatus.EXPIRING if expires_at > now else ApiKeyStatus.EXPIRED


def scopes_for_new_key(
    *, key_type: ApiKeyType, requested: list[Scope] | None, held_by_creator: frozenset[Scope]
) -> frozenset[Scope]:
    """The scopes a new key gets. A key never grants more than its creator holds."""
    if key_type is ApiKeyType.PUBLISHABLE:
        if requested:
            raise TenantRuleError("a publishable key has fixed scopes; omit `scopes`", param="scopes")
        return PUBLISHABLE_SCOPES
    if key_type is ApiKeyType.SECRET:
        raise TenantRuleError(
            "secret keys come with a tenant or from rotating a secret key; create a restricted key instead",
            param="type",
        )
    if not requested:
        raise TenantRuleError("a restricted key needs at least one scope", param="scopes", code="parameter_missing")
    scopes = frozenset(Scope(scope) for scope in requested)
    if scopes & PUBLISHABLE_SCOPES:
        raise TenantRuleError("checkout:read belongs to publishable keys only", param="scopes")
    missing = scopes - held_by_creator
    if missing:
        names = ", ".join(sorted(missing))
        raise TenantRuleError(f"a key cannot grant scopes it does not hold itself: {names}", param="scopes")
    return scopes


def scopes_missing_to_manage(*, key_scopes: frozenset[Scope], held_by_caller: frozenset[Scope]) -> frozenset[Scope]:
    """What the caller lacks to rotate or revoke a key: every scope that key holds. A rotation
    hands out a new secret with the key's scopes, and a revocation can lock its holder out, so a
    narrower key doing either would act beyond its own scopes. Checkout's scope gives no power over
    the tenant: any key that may write keys creates publishable keys, and so may manage them."""
    return frozenset(key_scopes) - PUBLISHABLE_SCOPES - frozenset(held_by_caller)


# ---------------------------------------------------------------------------- client secrets
CLIENT_SECRET_RANDOM_LENGTH = 24
_CLIENT_SECRET_PATTERN = re.compile(r"^(?P<object_id>[a-z]{2,8}_[A-Za-z0-9]{8,64})_secret_(?P<random>[A-Za-z0-9]{24})$")


def format_client_secret(*, object_id: str, random_part: str) -> str:
    """The secret the checkout page holds for one object (a payment intent): `<id>_secret_<random>`."""
    assert len(random_part) == CLIENT_SECRET_RANDOM_LENGTH
    return f"{object_id}_secret_{random_part}"


def parse_client_secret(value: str) -> str | None:
    """The object id a client secret belongs to, or None when it is malformed. Store only
    `hash_secret(client_secret)`; check a presented one with `secret_matches`."""
    match = _CLIENT_SECRET_PATTERN.match(value) if len(value) <= 120 else None
    return match["object_id"] if match else None


# ---------------------------------------------------------------------------- settings
# What a tenant sets for itself (PATCH /v1/tenant with its own key).
TENANT_SETTINGS = ("name", "payout_addresses", "approvers")
# What the platform charges or enforces by: its fee and the confirmations a payment needs before
# it counts. Only a platform admin changes them (PATCH /v1/tenants/{id}, `settle tenants update`),
# audited; a tenant's own key is refused, or a merchant could waive its fee or settle on one block.
PLATFORM_SETTINGS = ("fee_bps", "confirmation_policy")
FEE_BPS_MAX = 10_000
TENANT_NAME_LENGTH_MAX = 200
PAYOUT_ADDRESSES_COUNT_MAX = 20
APPROVERS_COUNT_MAX = 20
# EIP-155 chain ids in use stay far below this; JSON clients keep it exact.
CHAIN_ID_MAX = 2**53 - 1


def validate_fee_bps(fee_bps: int) -> int:
    if isinstance(fee_bps, bool) or not isinstance(fee_bps, int):
        raise TenantRuleError("fee_bps must be an integer number of basis points", param="fee_bps")
    if not 0 <= fee_bps <= FEE_BPS_MAX:
        raise TenantRuleError(f"fee_bps must be between 0 and {FEE_BPS_MAX} (100%)", param="fee_bps")
    return fee_bps


def check_text(value: str, *, param: str, length_max: int, allow_empty: bool = False) -> str:
    """Printable text only: no control characters (NUL included) and no lone surrogates, which
    PostgreSQL cannot store and which no legitimate name contains."""
    if not allow_empty and not value.strip():
        raise TenantRuleError(f"{param} must not be empty", param=param)
    if len(value) > length_max:
        raise TenantRuleError(f"{param} must be at most {length_max} characters", param=param)
    for character in value:
        category = unicodedata.category(character)
        if category in ("Cc", "Cs"):
            raise TenantRuleError(f"{param} must not contain control or invalid characters", param=param)
    return value


def validate_evm_address(address: str, *, param: str = "address") -> str:
    """An EIP-55 checksummed address other than the zero address. Lower- or upper-case hex is
    refused: the checksum is what catches a mistyped payout address before money goes to it. The
    zero address passes every checksum, but what is sent there is burnt, and `ecrecover` answers
    it for a bad signature, so it is never a payout address nor an approver."""
    try:
        return parse_evm_address(address, checksum_required=True)
    except InvalidAddress as error:
        if error.problem is AddressProblem.CHECKSUM:
            message = f"{param} fails its EIP-55 checksum; copy the address exactly (checksummed form: {error.checksummed})"
        elif error.problem is AddressProblem.ZERO:
            message = f"{param} must not be the zero address: nothing sent there can ever be spent"
        else:
            message = f"{param} must be a 0x-prefixed 20-byte hex address"
        raise TenantRuleError(message, param=param) from None


def validate_confirmation_tiers(tiers: list[ConfirmationTier], *, param: str = "confirmation_policy.tiers") -> list[ConfirmationTier]:
    """A tenant's confirmation tiers, by domain.confirmations' rules, as this module's error."""
    try:
        validate_tiers(tiers, param=param)
    except ConfirmationTiersInvalid as error:
        raise TenantRuleError(error.message, param=error.param) from None
    return tiers


def require_unique(values: list[str], *, param: str) -> list[str]:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise TenantRuleError(f"{param} must not repeat {value}", param=f"{param}[{index}]")
        seen.add(value)
    return values
