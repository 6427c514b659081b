"""Webhook delivery's configuration, from the environment (`SETTLE_WEBHOOK_` prefix) beside the
one `Settings` of db/settings.py, whose `SETTLE_ENV` it reads too.

Local and test deployments may send to private addresses and plain http (their receivers run
on 127.0.0.1); elsewhere both are refused unless set explicitly. The development encryption key
of signing secrets is public and refused outside local and test.

It lives in db/ (it needs only pydantic and domain) so the API, which never imports activities/,
can read the URL policy and open the secret box.
"""

from __future__ import annotations

import base64
import binascii
import json
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.webhooks import JITTER_FRACTION, RETRY_AFTER_MAX_S, RETRY_DELAYS_S, UrlPolicy, validate_retry_delays

ENVIRONMENTS_LOCAL = ("local", "test")
# 32 bytes of zeros, base64: public, so only ever a development key.
DEV_SECRET_ENCRYPTION_KEY = base64.b64encode(bytes(32)).decode("ascii")


class WebhookSettings(BaseSettings):
    # hide_input_in_errors: a refused setting's error must not print the keys beside it.
    model_config = SettingsConfigDict(
        env_prefix="SETTLE_WEBHOOK_", extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    env: Literal["local", "test", "staging", "production"] = Field(default="local", validation_alias="SETTLE_ENV")
    # None: allowed in local/test only. Set it to true only where receivers legitimately live on
    # private networks; cloud metadata addresses stay refused either way.
    allow_private_targets: bool | None = None
    require_https: bool | None = None
    # AES-256 key (base64 of 32 bytes) sealing signing secrets at rest; previous keys still open
    # what they sealed, so the key can be rotated.
    secret_encryption_key: SecretStr = SecretStr(DEV_SECRET_ENCRYPTION_KEY)
    secret_encryption_keys_previous: list[SecretStr] = Field(default_factory=list)

    connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    read_timeout_s: float = Field(default=15.0, gt=0, le=120)
    # Wall clock of one request, headers to the last byte read: a receiver dripping bytes cannot
    # hold a slot longer than this.
    request_timeout_s: float = Field(default=30.0, gt=0, le=300)
    retry_delays_s: list[float] = Field(default_factory=lambda: list(RETRY_DELAYS_S))
    jitter_fraction: float = Field(default=JITTER_FRACTION, ge=0, lt=1)
    retry_after_max_s: float = Field(default=RETRY_AFTER_MAX_S, ge=0)
    # An endpoint whose every attempt failed for this long is declared failing and its tenant told.
    failing_after_s: float = Field(default=3 * 24 * 3600.0, ge=0)

    # Bounded concurrency per endpoint and worker: requests in flight, and attempts waiting up to
    # slot_wait_s for one of them before backing off in the workflow (durable timer, no slot held).
    endpoint_requests_max: int = Field(default=8, ge=1, le=256)
    endpoint_waiting_max: int = Field(default=8, ge=0, le=256)
    slot_wait_s: float = Field(default=2.0, ge=0, le=30)

    # A lost worker's attempt is retried after this much silence.
    attempt_heartbeat_timeout_s: float = Field(default=10.0, gt=0, le=300)
    dispatch_batch_size_max: int = Field(default=100, ge=1, le=1000)
    # The dispatcher's activity waits this long for new events (LISTEN/NOTIFY) before returning.
    dispatch_wait_s: float = Field(default=20.0, ge=0, le=300)
    # Fallback poll while waiting, for redeliveries and a missed NOTIFY.
    dispatch_poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    http_connections_max: int = Field(default=200, ge=1, le=10_000)
    user_agent: str = "Settle-Webhooks/1.0"

    @field_validator("retry_delays_s", mode="before")
    @classmethod
    def _retry_delays_from_json(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value)
        return value

    @field_validator("retry_delays_s")
    @classmethod
    def _retry_delays_bounded(cls, value: list[float]) -> list[float]:
        return list(validate_retry_delays(value))

    @field_validator("secret_encryption_key")
    @classmethod
    def _key_is_32_bytes(cls, value: SecretStr) -> SecretStr:
        _decode_key(value)
        return value

    @model_validator(mode="after")
    def _local_defaults(self) -> "WebhookSettings":
        local = self.env in ENVIRONMENTS_LOCAL
        if self.allow_private_targets is None:
            self.allow_private_targets = local
        if self.require_https is None:
            self.require_https = not local
        # Compared as bytes: base64 has more than one spelling of the same 32 zero bytes.
        development_key = _decode_key(SecretStr(DEV_SECRET_ENCRYPTION_KEY))
        if not local and _decode_key(self.secret_encryption_key) == development_key:
            raise ValueError(
                "SETTLE_WEBHOOK_SECRET_ENCRYPTION_KEY is the public development default; "
                f"set a real key (base64 of 32 random bytes) for env={self.env}"
            )
        if not local and development_key in [_decode_key(key) for key in self.secret_encryption_keys_previous]:
            raise ValueError(
                "SETTLE_WEBHOOK_SECRET_ENCRYPTION_KEYS_PREVIOUS holds the public development key: "
                f"anything it sealed is readable by anyone; remove it for env={self.env}"
            )
        if self.request_timeout_s < self.connect_timeout_s:
            raise ValueError("request_timeout_s must be at least connect_timeout_s")
        return self

    @property
    def url_policy(self) -> UrlPolicy:
        assert self.allow_private_targets is not None and self.require_https is not None
        return UrlPolicy(allow_private_targets=self.allow_private_targets, require_https=self.require_https)

    def secret_encryption_keys(self) -> list[bytes]:
        """The current key first, then the previous ones."""
        return [_decode_key(self.secret_encryption_key), *(_decode_key(key) for key in self.secret_encryption_keys_previous)]


def _decode_key(value: SecretStr) -> bytes:
    try:
        key = base64.b64decode(value.get_secret_value(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("a secret encryption key is base64 of 32 bytes") from error
    if len(key) != 32:
        raise ValueError("a secret encryption key is base64 of 32 bytes")
    return key


@lru_cache(maxsize=1)
def get_webhook_settings() -> WebhookSettings:
    return WebhookSettings()


__all__ = [
    "DEV_SECRET_ENCRYPTION_KEY",
    "ENVIRONMENTS_LOCAL",
    "WebhookSettings",
    "get_webhook_settings",
]
