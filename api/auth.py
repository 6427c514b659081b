"""Bearer authentication, scopes and rate limits: one dependency per route.

    @router.get("/v1/things")
    async def list_things(principal: Annotated[TenantPrincipal, tenant_key(Scope.THINGS_READ)]): ...

`tenant_key(scope)` admits a tenant's key holding `scope`; `PlatformAdmin` admits the platform
admin key (configuration, `SETTLE_ADMIN_API_KEY`). Both first take a token from the client IP's
bucket (so guessing keys is throttled too), then authenticate, then take one from the key's
bucket, then check the scope. The OpenAPI document lists the scope on every operation.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from api.errors import ApiError, ErrorType
from api.ratelimit import TokenBuckets, tighter
from db.api_keys import find_key_for_authentication, touch_last_used
from db.audit import Actor
from db.settings import TIER_CREATE, TIER_READ, TIER_WRITE, ApiSettings
from domain.tenants import (
    PLATFORM_ADMIN_ROLE,
    ActorType,
    ApiKeyStatus,
    ApiKeyType,
    Scope,
    TenantKind,
    hash_api_key,
    parse_api_key,
    redact_api_key,
)

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="BearerAuth",
    bearerFormat="API key",
    description=(
        "`Authorization: Bearer <key>`. Tenant keys are `sk_test_...`/`sk_live_...` (secret), "
        "`rk_...` (restricted) or `pk_...` (publishable); the platform admin key is configuration. "
        "Each operation lists the scope it needs."
    ),
)

PLATFORM_OWNER = "platform"
# Compared against when no key row matched, so a miss costs the same as a wrong secret.
_DUMMY_HASH = hashlib.sha256(b"settle: no such key").digest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the platform admin, or one key of one tenant."""

    kind: Literal["platform_admin", "tenant"]
    tenant_id: str | None = None
    tenant_kind: TenantKind | None = None
    api_key_id: str | None = None
    key_type: ApiKeyType | None = None
    scopes: frozenset[Scope] = field(default_factory=frozenset)
    livemode: bool = False

    @property
    def idempotency_owner(self) -> str:
        return self.tenant_id or PLATFORM_OWNER

    @property
    def rate_limit_subject(self) -> str:
        return self.api_key_id or PLATFORM_ADMIN_ROLE

    def actor(self, request: Request) -> Actor:
        if self.kind == "platform_admin":
            actor_type, actor_id = ActorType.PLATFORM_ADMIN, PLATFORM_ADMIN_ROLE
        else:
            assert self.api_key_id is not None
            actor_type, actor_id = ActorType.API_KEY, self.api_key_id
        return Actor(
            type=actor_type,
            id=actor_id,
            request_id=getattr(request.state, "request_id", None),
            ip=getattr(request.state, "client_ip", None),
        )


@dataclass(frozen=True)
class TenantPrincipal(Principal):
    """A tenant's key, what `tenant_key` admits: its tenant id is always set, so routes and
    services take it as a `str` without asserting it."""

    tenant_id: str = ""

    def __post_init__(self) -> None:
        assert self.kind == "tenant" and self.tenant_id and self.api_key_id is not None


def unauthenticated(message: str, *, code: str) -> ApiError:
    return ApiError(
        401, type=ErrorType.AUTHENTICATION, code=code, message=message, headers={"WWW-Authenticate": 'Bearer realm="settle"'}
    )


def forbidden(message: str, *, code: str) -> ApiError:
    return ApiError(403, type=ErrorType.PERMISSION, code=code, message=message)


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


async def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """The caller, from the bearer token; cached for the rest of the request."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    if credentials is None:
        if request.headers.get("authorization"):
            raise unauthenticated("The Authorization header must be `Bearer <API key>`.", code="authorization_malformed")
        raise unauthenticated("No API key provided. Send `Authorization: Bearer <API key>`.", code="api_key_missing")
    token = credentials.credentials
    settings = request.app.state.settings
    admin_key = settings.admin_api_key.get_secret_value()
    if admin_key and hmac.compare_digest(_sha256(token), _sha256(admin_key)):
        principal = Principal(kind="platform_admin")
    else:
        principal = await _authenticate_tenant_key(request, token)
    request.state.principal = principal
    return principal


async def _authenticate_tenant_key(request: Request, token: str) -> Principal:
    invalid = unauthenticated(f"Invalid API key provided: {redact_api_key(token)}", code="api_key_invalid")
    parsed = parse_api_key(token)
    if parsed is None:
        raise invalid
    pool = request.app.state.pool
    found = await find_key_for_authentication(pool, lookup=parsed.lookup)
    stored_hash = found.secret_hash if found is not None else _DUMMY_HASH
    if not hmac.compare_digest(stored_hash, hash_api_key(token)) or found is None:
        raise invalid
    key = found.api_key
    status = key.status(now=datetime.now(timezone.utc))
    if status is ApiKeyStatus.REVOKED:
        raise unauthenticated(f"This API key ({key.redacted}) was revoked.", code="api_key_revoked")
    if status is ApiKeyStatus.EXPIRED:
        raise unauthenticated(
            f"This API key ({key.redacted}) expired after its rotation; use the key it was rotated to.", code="api_key_expired"
        )
    api_settings: ApiSettings = request.app.state.api_settings
    await touch_last_used(pool, key_id=key.id, resolution_s=api_settings.key_last_used_resolution_s)
    return TenantPrincipal(
        kind="tenant",
        tenant_id=key.tenant_id,
        tenant_kind=TenantKind(found.tenant_kind),
        api_key_id=key.id,
        key_type=key.type,
        scopes=key.scopes,
        livemode=key.livemode,
    )


# ---------------------------------------------------------------------------- rate limits
def route_tier(route: Any, method: str) -> str:
    """A route's tier: `openapi_extra={"x-rate-limit-tier": ...}` if it names one, else by method."""
    extra = getattr(route, "openapi_extra", None) or {}
    tier = extra.get("x-rate-limit-tier")
    if tier:
        return tier
    return {"POST": TIER_CREATE, "GET": TIER_READ, "HEAD": TIER_READ}.get(method.upper(), TIER_WRITE)


def check_ip_rate_limit(request: Request) -> None:
    """The per-client-IP limit of the route's tier (unauthenticated routes have only this one)."""
    check_rate_limit(request, dimension="ip", subject=getattr(request.state, "client_ip", None) or "unknown")


def check_rate_limit(request: Request, *, dimension: Literal["ip", "key"], subject: str) -> None:
    api_settings: ApiSettings = request.app.state.api_settings
    done = f"rate_limited_{dimension}"
    if not api_settings.rate_limits_enabled or getattr(request.state, done, False):
        return
    setattr(request.state, done, True)
    tier_name = route_tier(request.scope.get("route"), request.method)
    tier = api_settings.rate_limit_tiers.get(tier_name) or api_settings.rate_limit_tiers[TIER_WRITE]
    limit = tier.per_ip if dimension == "ip" else tier.per_key
    buckets: TokenBuckets = request.app.state.rate_limiter
    decision = buckets.take((tier_name, dimension, subject), limit)
    request.state.rate_limit_decision = tighter(getattr(request.state, "rate_limit_decision", None), decision)
    if not decision.allowed:
        who = "this API key" if dimension == "key" else "this IP address"
        raise ApiError(
            429,
            type=ErrorType.RATE_LIMIT,
            code="rate_limited",
            message=(
                f"Too many requests from {who}: the {tier_name!r} tier allows {limit.requests} per "
                f"{limit.window_s} s. Retry after {decision.retry_after_s} s."
            ),
            headers=decision.headers(),
        )


# ---------------------------------------------------------------------------- dependencies
async def authorize_tenant(
    request: Request,
    security_scopes: SecurityScopes,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
) -> TenantPrincipal:
    check_ip_rate_limit(request)
    principal = await authenticate(request, credentials)
    check_rate_limit(request, dimension="key", subject=principal.rate_limit_subject)
    if not isinstance(principal, TenantPrincipal):
        raise forbidden(
            "The platform admin key cannot act as a tenant; call this route with the tenant's own API key.",
            code="tenant_key_required",
        )
    missing = [scope for scope in security_scopes.scopes if scope not in principal.scopes]
    if missing:
        raise forbidden(f"This API key lacks the scope {missing[0]!r} this request needs.", code="insufficient_scope")
    return principal


async def authorize_platform_admin(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
) -> Principal:
    check_ip_rate_limit(request)
    principal = await authenticate(request, credentials)
    check_rate_limit(request, dimension="key", subject=principal.rate_limit_subject)
    if principal.kind != "platform_admin":
        raise forbidden("This route needs the platform admin key.", code="platform_admin_required")
    return principal


def tenant_key(scope: Scope) -> Any:
    """`Annotated[TenantPrincipal, tenant_key(Scope.X)]`: a tenant key holding scope X."""
    return Security(authorize_tenant, scopes=[str(scope)])


PLATFORM_ADMIN = Security(authorize_platform_admin, scopes=[PLATFORM_ADMIN_ROLE])
AUTHORIZERS = (authorize_tenant, authorize_platform_admin)
