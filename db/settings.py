"""One place for configuration: every process (cli, worker, api) reads the same `Settings`.

Values come from the environment with the `SETTLE_` prefix; `settle up` passes them to the
worker and the API it starts. Secrets are `SecretStr`, so they print as '**********'.

The chain, relayer, database and Temporal fields sit at the root; each consumer with settings
of its own has a section, read from its own prefix so the variable names stay short and flat:

| section               | prefix              | for                                            |
|-----------------------|---------------------|------------------------------------------------|
| `settings.api`        | `SETTLE_API_`       | rate limits, idempotency, keys, request bounds |
| `settings.webhooks`   | `SETTLE_WEBHOOK_`   | delivery, URL policy, signing-secret keys      |
| `settings.checkout`   | `SETTLE_CHECKOUT_`  | the hosted checkout page                       |

A section is a plain model: built alone (tests, benches) it takes its defaults and reads no
environment; only `Settings()` reads the environment. Every guard refusing development secrets
outside local and test runs when `Settings` is built.

Rate-limit tiers are JSON, for example
`SETTLE_API_RATE_LIMIT_TIERS='{"create": {"per_key": "1000/hour", "per_ip": "100/minute"}}'`
(a tier given replaces that tier; tiers not given keep their defaults).
`SETTLE_CHECKOUT_FRAME_ANCESTORS` lists the origins allowed to frame the checkout page (space
separated, CSP `frame-ancestors` syntax); empty means none may. Local and test deployments may
send webhooks to private addresses and plain http (their receivers run on 127.0.0.1); elsewhere
both are refused unless set explicitly.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from domain.money import Asset
from domain.tenants import KEY_ROTATION_OVERLAP_S_MAX
from domain.webhooks import JITTER_FRACTION, RETRY_AFTER_MAX_S, RETRY_DELAYS_S, UrlPolicy, validate_retry_delays

# anvil's (and hardhat's) well-known dev mnemonic: every key derived from it is public knowledge.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
# How many of its accounts (m/44'/60'/0'/0/0 up) are refused outside local and test: anvil makes
# 10, hardhat 20; `settle up` uses the first few.
DEV_ACCOUNTS_REFUSED_COUNT = 20
# Account 0 of DEV_MNEMONIC (tests check it against the derivation): the default relayer key of
# local development, never elsewhere.
DEV_RELAYER_PRIVATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_ADMIN_API_KEY = "sk_test_local_platform_admin"
# 32 bytes of zeros, base64: public, so only ever a development key of webhook signing secrets.
DEV_SECRET_ENCRYPTION_KEY = base64.b64encode(bytes(32)).decode("ascii")

ENVIRONMENTS_LOCAL = ("local", "test")


def dev_private_key(index: int) -> str:
    """Account `index` of DEV_MNEMONIC, as 0x-prefixed lower-case hex."""
    from eth_account import Account  # slow to import: only where a key is derived

    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return "0x" + bytes(account.key).hex()


@lru_cache(maxsize=1)
def dev_private_keys() -> frozenset[str]:
    """Every refused dev key, normalized as `_normalized_private_key` writes them."""
    return frozenset(_normalized_private_key(dev_private_key(index)) for index in range(DEV_ACCOUNTS_REFUSED_COUNT))


def _normalized_private_key(value: str) -> str:
    """One spelling per key: no 0x, lower case, 64 hex digits (eth-account accepts all of these)."""
    text = value.strip().lower()
    text = text[2:] if text.startswith("0x") else text
    return text.rjust(64, "0")


# ---------------------------------------------------------------------------- api section
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


class ApiSettings(BaseModel):
    """`settings.api`, from `SETTLE_API_*`."""

    model_config = ConfigDict(extra="ignore", validate_default=True)

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


# ---------------------------------------------------------------------------- webhooks section
class WebhookSettings(BaseModel):
    """`settings.webhooks`, from `SETTLE_WEBHOOK_*`. `env` is the root's `SETTLE_ENV`, which
    `Settings` hands down: the URL policy's defaults and the key guard depend on it."""

    # hide_input_in_errors: a refused setting's error must not print the keys beside it.
    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)

    env: Literal["local", "test", "staging", "production"] = "local"
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


# ---------------------------------------------------------------------------- checkout section
_SOURCE_PATTERN = re.compile(r"^(https?://[A-Za-z0-9.*-]+(:[0-9]{1,5})?|'self')$")


class CheckoutSettings(BaseModel):
    """`settings.checkout`, from `SETTLE_CHECKOUT_*`."""

    model_config = ConfigDict(extra="ignore")

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


# ---------------------------------------------------------------------------- the root
# Section field -> (its model, its environment prefix). The prefixes are the ones each section
# had as a settings class of its own, so every deployed variable keeps its name.
SECTIONS: dict[str, tuple[type[BaseModel], str]] = {
    "api": (ApiSettings, "SETTLE_API_"),
    "webhooks": (WebhookSettings, "SETTLE_WEBHOOK_"),
    "checkout": (CheckoutSettings, "SETTLE_CHECKOUT_"),
}
# Fields a section takes from the root rather than from its own prefix.
_SECTION_FIELDS_FROM_ROOT = {"env"}


class _RootEnvSource(EnvSettingsSource):
    """The root's fields from `SETTLE_<FIELD>`, sections excepted: a section is read only from
    its own prefix, never as JSON from `SETTLE_API` or `SETTLE_WEBHOOKS`."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        if field_name in SECTIONS:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class _SectionsEnvSource(PydanticBaseSettingsSource):
    """Each section's fields from `<prefix><FIELD>` (pydantic-settings' own env parsing, JSON for
    lists and dicts), nested under the section's name."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        # Abstract in the base class; this source reads whole sections in __call__ instead.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, (model, prefix) in SECTIONS.items():
            read = EnvSettingsSource(model, env_prefix=prefix, case_sensitive=False)()  # type: ignore[arg-type]
            read = {key: value for key, value in read.items() if key not in _SECTION_FIELDS_FROM_ROOT}
            if read:
                values[name] = read
        return values


class Settings(BaseSettings):
    # hide_input_in_errors: a refused setting's error must not print the secrets beside it.
    model_config = SettingsConfigDict(env_prefix="SETTLE_", extra="ignore", hide_input_in_errors=True)

    env: Literal["local", "test", "staging", "production"] = "local"
    database_url: str = "postgresql://settle@127.0.0.1:5432/settle"
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "settle"
    rpc_url: str = "http://127.0.0.1:8545"
    chain_id: int = 31337
    relayer_private_key: SecretStr = SecretStr(DEV_RELAYER_PRIVATE_KEY)
    admin_api_key: SecretStr = SecretStr(DEV_ADMIN_API_KEY)
    # name -> address, as JSON in SETTLE_CONTRACTS.
    contracts: dict[str, str] = Field(default_factory=dict)
    # Where sweeps send deposits; refunds pay out of it with `transferFrom`, which the treasury
    # approved the relayer for (`settle up` does it on the dev chain). None: no refunds.
    treasury_address: str | None = None
    worker_metrics_port: int | None = None  # Temporal SDK metrics of the worker
    worker_app_metrics_port: int | None = None  # Settle's own metrics (prometheus_client) of the worker
    log_level: str = "INFO"

    api: ApiSettings = Field(default_factory=ApiSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    checkout: CheckoutSettings = Field(default_factory=CheckoutSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Arguments first, then the environment; the sections' variables are merged into what a
        # caller passes for a section as a dict (a section passed as a model is taken whole).
        return init_settings, _RootEnvSource(settings_cls), _SectionsEnvSource(settings_cls), dotenv_settings, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _hand_env_to_sections(cls, data: Any) -> Any:
        """The webhooks section's defaults and guard depend on the environment: one `SETTLE_ENV`
        for all, so a section cannot be judged as local while the root runs in production."""
        if not isinstance(data, dict):
            return data
        env = data.get("env", "local")
        webhooks = data.get("webhooks", {})
        if isinstance(webhooks, WebhookSettings):
            if webhooks.env != env:
                raise ValueError(f"the webhooks section was built for env={webhooks.env}, not env={env}")
        elif isinstance(webhooks, dict):
            data = {**data, "webhooks": {**webhooks, "env": env}}
        return data

    @field_validator("contracts", mode="before")
    @classmethod
    def _contracts_from_json(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @field_validator("treasury_address")
    @classmethod
    def _treasury_is_an_address(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from eth_utils import is_hex_address, to_checksum_address

        if not is_hex_address(value):
            raise ValueError("treasury_address must be a 0x-prefixed 20-byte hex address")
        if int(value, 16) == 0:
            raise ValueError("treasury_address must not be the zero address: sweeps would burn every deposit")
        return to_checksum_address(value)

    @field_validator("database_url")
    @classmethod
    def _database_url_is_postgres(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("database_url must start with postgresql://")
        return value

    @model_validator(mode="after")
    def _refuse_default_secrets_outside_local(self) -> "Settings":
        if self.env in ENVIRONMENTS_LOCAL:
            return self
        if _normalized_private_key(self.relayer_private_key.get_secret_value()) in dev_private_keys():
            raise ValueError(
                "SETTLE_RELAYER_PRIVATE_KEY is an account of the public development mnemonic "
                f"({DEV_MNEMONIC!r}), which anyone can spend from; set a real key for env={self.env}"
            )
        if self.admin_api_key.get_secret_value().strip() == DEV_ADMIN_API_KEY:
            raise ValueError(
                f"SETTLE_ADMIN_API_KEY is the public development default; set a real secret for env={self.env}"
            )
        return self

    def assets(self) -> dict[str, Asset]:
        """The stablecoins this deployment accepts, by the code API callers write."""
        known = {"usdc": ("TestUSDC", "USDC"), "usdt": ("TestUSDT", "USDT")}
        return {
            code: Asset(code=code, chain_id=self.chain_id, symbol=symbol, decimals=6, token_address=self.contracts[contract])
            for code, (contract, symbol) in known.items()
            if contract in self.contracts
        }

    @property
    def sqlalchemy_database_url(self) -> str:
        return sqlalchemy_url(self.database_url)


def sqlalchemy_url(database_url: str) -> str:
    """The asyncpg-flavoured URL SQLAlchemy and Alembic want, from a plain postgresql:// URL."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+asyncpg://" + database_url[len(prefix):]
    raise ValueError("database_url must start with postgresql://")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
