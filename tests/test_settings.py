import base64

import pytest
from pydantic import ValidationError

from db.settings import (
    DEV_ACCOUNTS_REFUSED_COUNT,
    DEV_ADMIN_API_KEY,
    DEV_MNEMONIC,
    DEV_RELAYER_PRIVATE_KEY,
    Settings,
    dev_private_key,
    sqlalchemy_url,
)
from db.webhook_settings import DEV_SECRET_ENCRYPTION_KEY, WebhookSettings

# A key nobody derived from the public mnemonic, and a real admin key.
REAL_RELAYER_KEY = "0x" + "11" * 32
REAL_ADMIN_KEY = "sk_live_" + "x" * 32
REAL_ENCRYPTION_KEY = base64.b64encode(b"k" * 32).decode("ascii")


def anvil_account(index: int):
    """Account `index` of anvil's dev mnemonic, derived as anvil derives it (BIP-44)."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def test_local_accepts_dev_defaults():
    settings = Settings(env="local")
    assert settings.relayer_private_key.get_secret_value() == DEV_RELAYER_PRIVATE_KEY


def test_the_dev_relayer_key_is_anvils_account_0():
    # The address every anvil prints first: the default relayer is the account anvil funds.
    account = anvil_account(0)
    assert account.address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert DEV_RELAYER_PRIVATE_KEY == "0x" + bytes(account.key).hex() == dev_private_key(0)


def test_the_stack_and_tests_run_with_dev_keys_in_local_or_test():
    from cli.stack import Stack, dev_accounts

    accounts = dev_accounts()
    assert accounts["relayer"]["private_key"] == DEV_RELAYER_PRIVATE_KEY
    # `settle up` hands its services a local/test env, where the dev keys are allowed.
    state = {"accounts": accounts, "services": {}, "contracts": {}}
    env = Stack(state_dir="/nonexistent-settle-state").service_env(state)
    assert env["SETTLE_ENV"] in ("local", "test")
    for role in accounts:
        settings = Settings(env=env["SETTLE_ENV"], relayer_private_key=accounts[role]["private_key"])
        assert settings.relayer_private_key.get_secret_value() == accounts[role]["private_key"]


@pytest.mark.parametrize("env", ["staging", "production"])
def test_refuses_default_secrets_outside_local(env):
    with pytest.raises(ValidationError, match="public development"):
        Settings(env=env, admin_api_key=REAL_ADMIN_KEY)
    with pytest.raises(ValidationError, match="ADMIN_API_KEY"):
        Settings(env=env, relayer_private_key=REAL_RELAYER_KEY)
    with pytest.raises(ValidationError, match="ADMIN_API_KEY"):
        Settings(env=env, relayer_private_key=REAL_RELAYER_KEY, admin_api_key=f" {DEV_ADMIN_API_KEY}\n")
    settings = Settings(env=env, relayer_private_key=REAL_RELAYER_KEY, admin_api_key=REAL_ADMIN_KEY)
    assert settings.env == env


@pytest.mark.parametrize("env", ["staging", "production"])
@pytest.mark.parametrize("index", [0, 1, 5, DEV_ACCOUNTS_REFUSED_COUNT - 1])
def test_refuses_every_dev_mnemonic_key_outside_local(env, index):
    key = "0x" + bytes(anvil_account(index).key).hex()
    for spelling in (key, key[2:], key.upper().replace("0X", "0x"), f" {key}\n"):
        with pytest.raises(ValidationError, match="RELAYER_PRIVATE_KEY is an account of the public development mnemonic") as error:
            Settings(env=env, relayer_private_key=spelling, admin_api_key=REAL_ADMIN_KEY)
        # The refusal never prints the key, nor the admin key beside it.
        assert key[2:] not in str(error.value).lower() and REAL_ADMIN_KEY not in str(error.value)


def test_refuses_a_dev_relayer_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("SETTLE_ENV", "production")
    monkeypatch.setenv("SETTLE_ADMIN_API_KEY", REAL_ADMIN_KEY)
    monkeypatch.setenv("SETTLE_RELAYER_PRIVATE_KEY", "0x" + bytes(anvil_account(0).key).hex())
    with pytest.raises(ValidationError, match="public development mnemonic"):
        Settings()
    monkeypatch.setenv("SETTLE_RELAYER_PRIVATE_KEY", REAL_RELAYER_KEY)
    assert Settings().env == "production"


def test_a_key_beyond_the_refused_accounts_is_accepted():
    beyond = dev_private_key(DEV_ACCOUNTS_REFUSED_COUNT)
    assert Settings(env="production", relayer_private_key=beyond, admin_api_key=REAL_ADMIN_KEY).env == "production"


def test_webhook_dev_encryption_key_is_refused_outside_local():
    other_spelling = "A" * 42 + "B="  # the same 32 zero bytes
    assert base64.b64decode(other_spelling) == base64.b64decode(DEV_SECRET_ENCRYPTION_KEY)
    for key in (DEV_SECRET_ENCRYPTION_KEY, other_spelling):
        with pytest.raises(ValidationError, match="public development default"):
            WebhookSettings(env="production", secret_encryption_key=key)
        assert WebhookSettings(env="test", secret_encryption_key=key).env == "test"
    with pytest.raises(ValidationError, match="KEYS_PREVIOUS holds the public development key") as error:
        WebhookSettings(env="staging", secret_encryption_key=REAL_ENCRYPTION_KEY, secret_encryption_keys_previous=[other_spelling])
    assert REAL_ENCRYPTION_KEY not in str(error.value)
    assert WebhookSettings(env="production", secret_encryption_key=REAL_ENCRYPTION_KEY).env == "production"


def test_treasury_must_not_be_the_zero_address():
    with pytest.raises(ValidationError, match="zero address"):
        Settings(treasury_address="0x" + "0" * 40)
    assert Settings(treasury_address=anvil_account(1).address.lower()).treasury_address == anvil_account(1).address


def test_secrets_never_print():
    settings = Settings(env="local")
    rendered = repr(settings) + str(settings.model_dump())
    assert DEV_RELAYER_PRIVATE_KEY not in rendered
    assert DEV_RELAYER_PRIVATE_KEY[2:] not in rendered


def test_contracts_from_json_env(monkeypatch):
    monkeypatch.setenv("SETTLE_CONTRACTS", '{"TestUSDC": "0xabc"}')
    assert Settings().contracts == {"TestUSDC": "0xabc"}


def test_database_url_must_be_postgres():
    with pytest.raises(ValidationError, match="postgresql://"):
        Settings(database_url="mysql://x")
    assert sqlalchemy_url("postgresql://u@h:1/d") == "postgresql+asyncpg://u@h:1/d"
