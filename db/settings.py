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

# anvil's (and hardhat's) well-known dev mnemonic: every key derived from it is public knowledge.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
# How many of its accounts (m/44'/60'/0'/0/0 up) are refused outside local and test: anvil makes
# 10, hardhat 20; `settle up` uses the first few.
DEV_ACCOUNTS_REFUSED_COUNT = 20
# Account 0 of DEV_MNEMONIC (tests check it against the derivation): the default relayer key of
# local development, never elsewhere.
DEV_RELAYER_PRIVATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_ADMIN_API_KEY = "sk_test_local_platform_admin"

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
    return Settings()
