"""One place for configuration: every process (cli, worker, api) reads the same `Settings`.

Values come from the environment with the `SETTLE_` prefix; `settle up` passes them to the
worker and the API it starts. Secrets are `SecretStr`, so they print as '**********'.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.money import Asset

# anvil's well-known dev mnemonic: every key derived from it is public knowledge.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
# Account 0 of DEV_MNEMONIC: the default relayer key of local development, never elsewhere.
DEV_RELAYER_PRIVATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcbc7c5f60f6b2ff80"
DEV_ADMIN_API_KEY = "sk_test_local_platform_admin"

ENVIRONMENTS_LOCAL = ("local", "test")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SETTLE_", extra="ignore")

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
        defaults = {
            "relayer_private_key": DEV_RELAYER_PRIVATE_KEY,
            "admin_api_key": DEV_ADMIN_API_KEY,
        }
        for field_name, default in defaults.items():
            if getattr(self, field_name).get_secret_value() == default:
                raise ValueError(
                    f"SETTLE_{field_name.upper()} is the public development default; "
                    f"set a real secret for env={self.env}"
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
    return Settings()
