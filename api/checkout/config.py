"""The checkout page's settings: environment variables with the `SETTLE_CHECKOUT_` prefix.

`SETTLE_CHECKOUT_FRAME_ANCESTORS` lists the origins allowed to frame the page (space
separated, CSP `frame-ancestors` syntax); empty means none may."""

from __future__ import annotations

import re
from functools import lru_cache

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_SOURCE_PATTERN = re.compile(r"^(https?://[A-Za-z0-9.*-]+(:[0-9]{1,5})?|'self')$")


class CheckoutSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SETTLE_CHECKOUT_", extra="ignore")

    # How often the page asks for the intent's state; the status route may ask for longer.
    poll_interval_ms: int = Field(default=2000, ge=500, le=60_000)
    # How long the paid page shows before it returns the customer to the merchant's success URL.
    redirect_delay_ms: int = Field(default=3000, ge=0, le=60_000)
    frame_ancestors: str = ""
    # Bounds the Temporal query for live confirmation counts; the read model answers without it.
    confirmations_query_timeout_s: float = Field(default=2.0, gt=0, le=10)

    @field_validator("frame_ancestors")
    @classmethod
    def _sources(cls, value: str) -> str:
        for source in value.split():
            if not _SOURCE_PATTERN.match(source):
                raise ValueError(f"frame ancestor {source!r} is not an http(s) origin or 'self'")
        return " ".join(value.split())


@lru_cache(maxsize=1)
def get_checkout_settings() -> CheckoutSettings:
    return CheckoutSettings()
