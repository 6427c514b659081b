import pytest
from pydantic import ValidationError

from db.settings import DEV_RELAYER_PRIVATE_KEY, Settings, sqlalchemy_url


def test_local_accepts_dev_defaults():
    settings = Settings(env="local")
    assert settings.relayer_private_key.get_secret_value() == DEV_RELAYER_PRIVATE_KEY


@pytest.mark.parametrize("env", ["staging", "production"])
def test_refuses_default_secrets_outside_local(env):
    with pytest.raises(ValidationError, match="public development default"):
        Settings(env=env, admin_api_key="sk_live_" + "x" * 32)
    with pytest.raises(ValidationError, match="ADMIN_API_KEY"):
        Settings(env=env, relayer_private_key="0x" + "11" * 32)
    settings = Settings(env=env, relayer_private_key="0x" + "11" * 32, admin_api_key="sk_live_" + "x" * 32)
    assert settings.env == env


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
