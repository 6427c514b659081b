import base64

import pytest
from pydantic import SecretStr, ValidationError

from db.settings import (
    DEV_ACCOUNTS_REFUSED_COUNT,
    DEV_ADMIN_API_KEY,
    DEV_MNEMONIC,
    DEV_RELAYER_PRIVATE_KEY,
    DEV_SECRET_ENCRYPTION_KEY,
    SECTIONS,
    RateLimit,
    Settings,
    WebhookSettings,
    dev_private_key,
    sqlalchemy_url,
)

# A key nobody derived from the public mnemonic, and a real admin key.
REAL_RELAYER_KEY = "0x" + "11" * 32
REAL_ADMIN_KEY = "sk_live_" + "x" * 32
REAL_ENCRYPTION_KEY = base64.b64encode(b"k" * 32).decode("ascii")
# The webhooks section's key is refused outside local too: the tests of the other keys set it.
REAL_WEBHOOKS = {"secret_encryption_key": REAL_ENCRYPTION_KEY}


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
        Settings(env=env, admin_api_key=REAL_ADMIN_KEY, webhooks=REAL_WEBHOOKS)
    with pytest.raises(ValidationError, match="ADMIN_API_KEY"):
        Settings(env=env, relayer_private_key=REAL_RELAYER_KEY, webhooks=REAL_WEBHOOKS)
    with pytest.raises(ValidationError, match="ADMIN_API_KEY"):
        Settings(env=env, relayer_private_key=REAL_RELAYER_KEY, admin_api_key=f" {DEV_ADMIN_API_KEY}\n", webhooks=REAL_WEBHOOKS)
    settings = Settings(env=env, relayer_private_key=REAL_RELAYER_KEY, admin_api_key=REAL_ADMIN_KEY, webhooks=REAL_WEBHOOKS)
    assert settings.env == env


@pytest.mark.parametrize("env", ["staging", "production"])
@pytest.mark.parametrize("index", [0, 1, 5, DEV_ACCOUNTS_REFUSED_COUNT - 1])
def test_refuses_every_dev_mnemonic_key_outside_local(env, index):
    key = "0x" + bytes(anvil_account(index).key).hex()
    for spelling in (key, key[2:], key.upper().replace("0X", "0x"), f" {key}\n"):
        with pytest.raises(ValidationError, match="RELAYER_PRIVATE_KEY is an account of the public development mnemonic") as error:
            Settings(env=env, relayer_private_key=spelling, admin_api_key=REAL_ADMIN_KEY, webhooks=REAL_WEBHOOKS)
        # The refusal never prints the key, nor the admin key beside it.
        assert key[2:] not in str(error.value).lower() and REAL_ADMIN_KEY not in str(error.value)


def test_refuses_a_dev_relayer_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("SETTLE_ENV", "production")
    monkeypatch.setenv("SETTLE_ADMIN_API_KEY", REAL_ADMIN_KEY)
    monkeypatch.setenv("SETTLE_WEBHOOK_SECRET_ENCRYPTION_KEY", REAL_ENCRYPTION_KEY)
    monkeypatch.setenv("SETTLE_RELAYER_PRIVATE_KEY", "0x" + bytes(anvil_account(0).key).hex())
    with pytest.raises(ValidationError, match="public development mnemonic"):
        Settings()
    monkeypatch.setenv("SETTLE_RELAYER_PRIVATE_KEY", REAL_RELAYER_KEY)
    assert Settings().env == "production"


def test_a_key_beyond_the_refused_accounts_is_accepted():
    beyond = dev_private_key(DEV_ACCOUNTS_REFUSED_COUNT)
    assert Settings(env="production", relayer_private_key=beyond, admin_api_key=REAL_ADMIN_KEY, webhooks=REAL_WEBHOOKS).env == "production"


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


def test_the_root_refuses_the_dev_webhook_key_outside_local(monkeypatch):
    # The webhooks section is judged in the root's env, whether the key comes from an argument
    # or from the environment, and a section built for another env is not taken.
    real = {"relayer_private_key": REAL_RELAYER_KEY, "admin_api_key": REAL_ADMIN_KEY}
    assert Settings(env="production", webhooks=REAL_WEBHOOKS, **real).webhooks.env == "production"
    with pytest.raises(ValidationError, match="SECRET_ENCRYPTION_KEY is the public development default"):
        Settings(env="production", **real)
    monkeypatch.setenv("SETTLE_ENV", "staging")
    monkeypatch.setenv("SETTLE_WEBHOOK_SECRET_ENCRYPTION_KEY", DEV_SECRET_ENCRYPTION_KEY)
    with pytest.raises(ValidationError, match="SECRET_ENCRYPTION_KEY is the public development default"):
        Settings(**real)
    monkeypatch.setenv("SETTLE_WEBHOOK_SECRET_ENCRYPTION_KEY", REAL_ENCRYPTION_KEY)
    settings = Settings(**real)
    assert settings.webhooks.env == "staging"
    # Outside local, private targets and plain http are refused unless set explicitly.
    assert settings.webhooks.url_policy.require_https and not settings.webhooks.url_policy.allow_private_targets
    with pytest.raises(ValidationError, match="built for env=local"):
        Settings(webhooks=WebhookSettings(env="local"), **real)


# Every variable a deployment may set, with a value other than the default and where it lands.
# The names are the ones of the four settings classes this one replaced: none may change.
ENVIRONMENT_VARIABLES: dict[str, tuple[str, object]] = {
    "SETTLE_ENV": ("test", ("env", "test")),
    "SETTLE_DATABASE_URL": ("postgresql://u@h:1/d", ("database_url", "postgresql://u@h:1/d")),
    "SETTLE_TEMPORAL_ADDRESS": ("h:7000", ("temporal_address", "h:7000")),
    "SETTLE_TEMPORAL_NAMESPACE": ("ns", ("temporal_namespace", "ns")),
    "SETTLE_TASK_QUEUE": ("queue-x", ("task_queue", "queue-x")),
    "SETTLE_RPC_URL": ("http://h:9", ("rpc_url", "http://h:9")),
    "SETTLE_CHAIN_ID": ("10", ("chain_id", 10)),
    "SETTLE_RELAYER_PRIVATE_KEY": (REAL_RELAYER_KEY, ("relayer_private_key", REAL_RELAYER_KEY)),
    "SETTLE_ADMIN_API_KEY": (REAL_ADMIN_KEY, ("admin_api_key", REAL_ADMIN_KEY)),
    "SETTLE_CONTRACTS": ('{"TestUSDC": "0xabc"}', ("contracts", {"TestUSDC": "0xabc"})),
    "SETTLE_TREASURY_ADDRESS": ("0x" + "12" * 20, ("treasury_address", "0x" + "12" * 20)),
    "SETTLE_WORKER_METRICS_PORT": ("9001", ("worker_metrics_port", 9001)),
    "SETTLE_WORKER_APP_METRICS_PORT": ("9002", ("worker_app_metrics_port", 9002)),
    "SETTLE_LOG_LEVEL": ("DEBUG", ("log_level", "DEBUG")),
    "SETTLE_API_RATE_LIMITS_ENABLED": ("false", ("api.rate_limits_enabled", False)),
    "SETTLE_API_RATE_LIMIT_TIERS": (
        '{"read": {"per_key": "7/hour", "per_ip": "3/minute"}}',
        ("api.rate_limit_tiers.read.per_key", RateLimit(requests=7, window_s=3600)),
    ),
    "SETTLE_API_RATE_LIMIT_BUCKETS_MAX": ("500", ("api.rate_limit_buckets_max", 500)),
    "SETTLE_API_IDEMPOTENCY_RETENTION_S": ("90000", ("api.idempotency_retention_s", 90000)),
    "SETTLE_API_IDEMPOTENCY_LOCK_TIMEOUT_S": ("61", ("api.idempotency_lock_timeout_s", 61)),
    "SETTLE_API_IDEMPOTENCY_WAIT_S": ("1.5", ("api.idempotency_wait_s", 1.5)),
    "SETTLE_API_IDEMPOTENCY_PURGE_INTERVAL_S": ("7.0", ("api.idempotency_purge_interval_s", 7.0)),
    "SETTLE_API_IDEMPOTENCY_PURGE_BATCH_SIZE_MAX": ("11", ("api.idempotency_purge_batch_size_max", 11)),
    "SETTLE_API_KEY_ROTATION_OVERLAP_S": ("12", ("api.key_rotation_overlap_s", 12)),
    "SETTLE_API_KEY_LAST_USED_RESOLUTION_S": ("13", ("api.key_last_used_resolution_s", 13)),
    "SETTLE_API_REQUEST_BODY_BYTES_MAX": ("2048", ("api.request_body_bytes_max", 2048)),
    "SETTLE_API_JSON_LOGS": ("false", ("api.json_logs", False)),
    "SETTLE_API_LOG_LEVEL": ("WARNING", ("api.log_level", "WARNING")),
    "SETTLE_WEBHOOK_ALLOW_PRIVATE_TARGETS": ("false", ("webhooks.allow_private_targets", False)),
    "SETTLE_WEBHOOK_REQUIRE_HTTPS": ("true", ("webhooks.require_https", True)),
    "SETTLE_WEBHOOK_SECRET_ENCRYPTION_KEY": (REAL_ENCRYPTION_KEY, ("webhooks.secret_encryption_key", REAL_ENCRYPTION_KEY)),
    "SETTLE_WEBHOOK_SECRET_ENCRYPTION_KEYS_PREVIOUS": (
        f'["{REAL_ENCRYPTION_KEY}"]',
        ("webhooks.secret_encryption_keys_previous", [REAL_ENCRYPTION_KEY]),
    ),
    "SETTLE_WEBHOOK_CONNECT_TIMEOUT_S": ("2.5", ("webhooks.connect_timeout_s", 2.5)),
    "SETTLE_WEBHOOK_READ_TIMEOUT_S": ("3.5", ("webhooks.read_timeout_s", 3.5)),
    "SETTLE_WEBHOOK_REQUEST_TIMEOUT_S": ("40", ("webhooks.request_timeout_s", 40.0)),
    "SETTLE_WEBHOOK_RETRY_DELAYS_S": ("[1, 2, 3]", ("webhooks.retry_delays_s", [1.0, 2.0, 3.0])),
    "SETTLE_WEBHOOK_JITTER_FRACTION": ("0.25", ("webhooks.jitter_fraction", 0.25)),
    "SETTLE_WEBHOOK_RETRY_AFTER_MAX_S": ("5", ("webhooks.retry_after_max_s", 5.0)),
    "SETTLE_WEBHOOK_FAILING_AFTER_S": ("6", ("webhooks.failing_after_s", 6.0)),
    "SETTLE_WEBHOOK_ENDPOINT_REQUESTS_MAX": ("3", ("webhooks.endpoint_requests_max", 3)),
    "SETTLE_WEBHOOK_ENDPOINT_WAITING_MAX": ("4", ("webhooks.endpoint_waiting_max", 4)),
    "SETTLE_WEBHOOK_SLOT_WAIT_S": ("0.5", ("webhooks.slot_wait_s", 0.5)),
    "SETTLE_WEBHOOK_ATTEMPT_HEARTBEAT_TIMEOUT_S": ("7", ("webhooks.attempt_heartbeat_timeout_s", 7.0)),
    "SETTLE_WEBHOOK_DISPATCH_BATCH_SIZE_MAX": ("9", ("webhooks.dispatch_batch_size_max", 9)),
    "SETTLE_WEBHOOK_DISPATCH_WAIT_S": ("8", ("webhooks.dispatch_wait_s", 8.0)),
    "SETTLE_WEBHOOK_DISPATCH_POLL_INTERVAL_S": ("0.3", ("webhooks.dispatch_poll_interval_s", 0.3)),
    "SETTLE_WEBHOOK_HTTP_CONNECTIONS_MAX": ("17", ("webhooks.http_connections_max", 17)),
    "SETTLE_WEBHOOK_USER_AGENT": ("Agent/2", ("webhooks.user_agent", "Agent/2")),
    "SETTLE_CHECKOUT_POLL_INTERVAL_MS": ("900", ("checkout.poll_interval_ms", 900)),
    "SETTLE_CHECKOUT_REDIRECT_DELAY_MS": ("10", ("checkout.redirect_delay_ms", 10)),
    "SETTLE_CHECKOUT_FRAME_ANCESTORS": ("https://shop.example 'self'", ("checkout.frame_ancestors", "https://shop.example 'self'")),
    "SETTLE_CHECKOUT_CONFIRMATIONS_QUERY_TIMEOUT_S": ("1.5", ("checkout.confirmations_query_timeout_s", 1.5)),
}


def _at(settings: Settings, path: str) -> object:
    value: object = settings
    for part in path.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    if isinstance(value, list):
        return [item.get_secret_value() if isinstance(item, SecretStr) else item for item in value]
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_every_setting_has_a_variable_in_the_table():
    # A field added without a row here would escape the name check below.
    def field_of(path: str) -> str:
        parts = path.split(".")
        return ".".join(parts[:2]) if parts[0] in SECTIONS else parts[0]

    covered = {field_of(path) for _, (path, _) in ENVIRONMENT_VARIABLES.values()}
    fields = {field for field in Settings.model_fields if field not in SECTIONS}
    for section, (model, _) in SECTIONS.items():
        # The webhooks section's env is the root's SETTLE_ENV, tested below.
        fields |= {f"{section}.{field}" for field in model.model_fields if field != "env"}
    assert fields == covered


@pytest.mark.parametrize("variable", sorted(ENVIRONMENT_VARIABLES))
def test_each_variable_is_read_under_its_name(monkeypatch, variable):
    raw, (path, expected) = ENVIRONMENT_VARIABLES[variable]
    assert _at(Settings(), path) != expected, "the test value must differ from the default"
    monkeypatch.setenv(variable, raw)
    assert _at(Settings(), path) == expected


def test_a_section_is_read_only_from_its_prefix(monkeypatch):
    for name in ("SETTLE_API", "SETTLE_WEBHOOKS", "SETTLE_CHECKOUT"):
        monkeypatch.setenv(name, "not json")
    monkeypatch.setenv("SETTLE_API_JSON_LOGS", "false")
    assert Settings().api.json_logs is False


def test_the_env_reaches_the_webhooks_section(monkeypatch):
    monkeypatch.setenv("SETTLE_ENV", "test")
    assert Settings().webhooks.env == "test"
    # The section's own prefix does not override the one environment.
    monkeypatch.setenv("SETTLE_WEBHOOK_ENV", "production")
    assert Settings().webhooks.env == "test"
