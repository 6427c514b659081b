"""The API's own settings, beside the shared `db.settings.Settings`: environment variables with
the `SETTLE_API_` prefix. Rate-limit tiers are JSON, for example
`SETTLE_API_RATE_LIMIT_TIERS='{"create": {"per_key": "1000/hour", "per_ip": "100/minute"}}'`
(a tier given replaces that tier; tiers not given keep their defaults)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.tenants import KEY_ROTATION_OVERLAP_S_MAX

WINDOW_UNITS_S = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*$")
# Retention below a day would break clients retrying the next morning: the issue asks for 24 h.
IDEMPOTENCY_RETENTION_S_MIN = 24 * 3600


class RateLimit(BaseModel):
    """`requests` per `window_s`, refilled continuously (a token bucket of `requests` tokens)."""

    model_config = ConfigDict(frozen=True)

    requests: int = Field(ge=1, le=10**9)
    window_s: int = Field(ge=1, le=7 * 86400)

    @property
    def policy(self) -> str:
        """The `RateLimit-Policy` header's form: `100;w=60`."""
        return f"{self.requests};w={self.window_s}"


def _parse_rate(value: Any) -> Any:
    """"1000/hour", "100/minute", "5/10second" -> RateLimit; dicts pass through."""
    if isinstance(value, str):
        match = _RATE_PATTERN.match(value)
        if match is None:
            raise ValueError(f"rate limit {value!r} is not like '100/minute'")
        count, multiplier, unit = match.groups()
        return {"requests": int(count), "window_s": int(multiplier or 1) * WINDOW_UNITS_S[unit]}
    return value


Rate = Annotated[RateLimit, BeforeValidator(_parse_rate)]


class RateLimitTier(BaseModel):
    model_config = ConfigDict(frozen=True)

    per_key: Rate
    per_ip: Rate


TIER_CREATE = "create"
TIER_WRITE = "write"
TIER_READ = "read"

DEFAULT_RATE_LIMIT_TIERS: dict[str, dict[str, str]] = {
    # Creating objects (tenants, keys, payment intents, payouts): what fraud and bugs overdo.
    TIER_CREATE: {"per_key": "1000/hour", "per_ip": "100/minute"},
    TIER_WRITE: {"per_key": "3000/hour", "per_ip": "300/minute"},
    TIER_READ: {"per_key": "20000/hour", "per_ip": "1000/minute"},
}


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SETTLE_API_", extra="ignore", validate_default=True)

    rate_limits_enabled: bool = True
    rate_limit_tiers: dict[str, RateLimitTier] = Field(default_factory=lambda: dict(DEFAULT_RATE_LIMIT_TIERS))
    # Bounds the limiter's memory: the least recently used buckets are dropped beyond this.
    rate_limit_buckets_max: int = Field(default=100_000, ge=100)
    idempotency_retention_s: int = Field(default=IDEMPOTENCY_RETENTION_S_MIN, ge=IDEMPOTENCY_RETENTION_S_MIN)
    # A claim older than this is taken to belong to a dead process and may be taken over.
    idempotency_lock_timeout_s: int = Field(default=60, ge=1, le=3600)
    # How long a request waits for a concurrent one with the same key before answering 409.
    idempotency_wait_s: float = Field(default=5.0, ge=0, le=60)
    idempotency_purge_interval_s: float = Field(default=3600.0, gt=0)
    idempotency_purge_batch_size_max: int = Field(default=10_000, ge=1)
    key_rotation_overlap_s: int = Field(default=24 * 3600, ge=0, le=KEY_ROTATION_OVERLAP_S_MAX)
    key_last_used_resolution_s: int = Field(default=60, ge=0, le=86400)
    request_body_bytes_max: int = Field(default=1024 * 1024, ge=1024)
    json_logs: bool = True
    log_level: str = "INFO"

    @field_validator("rate_limit_tiers", mode="after")
    @classmethod
    def _keep_default_tiers(cls, value: dict[str, RateLimitTier]) -> dict[str, RateLimitTier]:
        merged = {name: RateLimitTier.model_validate(tier) for name, tier in DEFAULT_RATE_LIMIT_TIERS.items()}
        merged.update(value)
        return merged
