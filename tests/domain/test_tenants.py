"""The pure rules of tenants, keys and pages: no database, no HTTP."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.pagination import LIMIT_MAX, PageRequest, as_utc, cut_page
from domain.tenants import (
    BASE62_ALPHABET,
    FEE_BPS_MAX,
    KEY_LOOKUP_LENGTH,
    KEY_SECRET_LENGTH,
    PUBLISHABLE_SCOPES,
    SECRET_SCOPES,
    ApiKeyStatus,
    ApiKeyType,
    ConfirmationTier,
    KeyMode,
    Scope,
    TenantRuleError,
    api_key_status,
    check_text,
    format_api_key,
    format_client_secret,
    hash_api_key,
    key_mode_for_env,
    parse_api_key,
    parse_client_secret,
    redact_api_key,
    require_unique,
    scopes_for_new_key,
    scopes_missing_to_manage,
    secret_matches,
    hash_secret,
    validate_confirmation_tiers,
    validate_evm_address,
    validate_fee_bps,
    PLATFORM_SETTINGS,
    TENANT_SETTINGS,
    ZERO_ADDRESS,
)

LOOKUP = "A" * KEY_LOOKUP_LENGTH
SECRET = "b" * KEY_SECRET_LENGTH
BASE62 = st.text(alphabet=BASE62_ALPHABET, min_size=1, max_size=1)


@pytest.mark.parametrize(
    "key_type, mode, prefix",
    [
        (ApiKeyType.SECRET, KeyMode.TEST, "sk_test_"),
        (ApiKeyType.SECRET, KeyMode.LIVE, "sk_live_"),
        (ApiKeyType.RESTRICTED, KeyMode.TEST, "rk_test_"),
        (ApiKeyType.PUBLISHABLE, KeyMode.LIVE, "pk_live_"),
    ],
)
def test_key_format_round_trips(key_type, mode, prefix):
    token = format_api_key(key_type=key_type, mode=mode, lookup=LOOKUP, secret=SECRET)
    assert token == prefix + LOOKUP + SECRET
    parsed = parse_api_key(token)
    assert parsed is not None and (parsed.key_type, parsed.mode, parsed.lookup) == (key_type, mode, LOOKUP)


@given(lookup=st.text(BASE62_ALPHABET, min_size=12, max_size=12), secret=st.text(BASE62_ALPHABET, min_size=32, max_size=32))
def test_any_generated_key_parses(lookup, secret):
    token = format_api_key(key_type=ApiKeyType.RESTRICTED, mode=KeyMode.TEST, lookup=lookup, secret=secret)
    assert parse_api_key(token).lookup == lookup
    assert secret not in redact_api_key(token)


@pytest.mark.parametrize(
    "token",
    ["", "sk_test_", "sk_test_short", "xk_test_" + "A" * 44, "sk_prod_" + "A" * 44, "sk_test_" + "A" * 43, "sk_test_" + "A" * 45,
     "sk_test_" + "A" * 43 + "!", "sk_test_local_platform_admin", "Bearer sk_test_" + "A" * 44, "x" * 10_000],
)
def test_malformed_keys_do_not_parse(token):
    assert parse_api_key(token) is None
    assert redact_api_key(token) == "[REDACTED]"


@given(st.text(max_size=300))
def test_parse_never_raises(text):
    parse_api_key(text)
    redact_api_key(text)


def test_hash_and_redaction():
    token = format_api_key(key_type=ApiKeyType.SECRET, mode=KeyMode.TEST, lookup=LOOKUP, secret=SECRET)
    assert len(hash_api_key(token)) == 32 and hash_api_key(token) != hash_api_key(token[:-1] + "c")
    assert redact_api_key(token) == "sk_test_AAAA...bbbb"


def test_key_mode_follows_the_environment():
    assert key_mode_for_env("local") is KeyMode.TEST and key_mode_for_env("test") is KeyMode.TEST
    assert key_mode_for_env("staging") is KeyMode.LIVE and key_mode_for_env("production") is KeyMode.LIVE


def test_key_status():
    now = datetime(2026, 11, 24, tzinfo=timezone.utc)
    assert api_key_status(revoked_at=None, expires_at=None, now=now) is ApiKeyStatus.ACTIVE
    assert api_key_status(revoked_at=None, expires_at=now + timedelta(seconds=1), now=now) is ApiKeyStatus.EXPIRING
    assert api_key_status(revoked_at=None, expires_at=now, now=now) is ApiKeyStatus.EXPIRED
    assert api_key_status(revoked_at=now, expires_at=now + timedelta(days=1), now=now) is ApiKeyStatus.REVOKED


def test_scopes_of_new_keys():
    assert PUBLISHABLE_SCOPES.isdisjoint(SECRET_SCOPES) and PUBLISHABLE_SCOPES | SECRET_SCOPES == set(Scope)
    assert scopes_for_new_key(key_type=ApiKeyType.PUBLISHABLE, requested=None, held_by_creator=SECRET_SCOPES) == PUBLISHABLE_SCOPES
    granted = scopes_for_new_key(key_type=ApiKeyType.RESTRICTED, requested=[Scope.TENANT_READ, Scope.TENANT_READ], held_by_creator=SECRET_SCOPES)
    assert granted == {Scope.TENANT_READ}
    with pytest.raises(TenantRuleError, match="does not hold"):
        scopes_for_new_key(key_type=ApiKeyType.RESTRICTED, requested=[Scope.PAYOUTS_APPROVE], held_by_creator=frozenset({Scope.API_KEYS_WRITE}))
    with pytest.raises(TenantRuleError, match="at least one"):
        scopes_for_new_key(key_type=ApiKeyType.RESTRICTED, requested=[], held_by_creator=SECRET_SCOPES)
    with pytest.raises(TenantRuleError, match="publishable"):
        scopes_for_new_key(key_type=ApiKeyType.RESTRICTED, requested=[Scope.CHECKOUT_READ], held_by_creator=SECRET_SCOPES)
    with pytest.raises(TenantRuleError, match="fixed scopes"):
        scopes_for_new_key(key_type=ApiKeyType.PUBLISHABLE, requested=[Scope.TENANT_READ], held_by_creator=SECRET_SCOPES)
    with pytest.raises(TenantRuleError, match="restricted key instead"):
        scopes_for_new_key(key_type=ApiKeyType.SECRET, requested=[Scope.TENANT_READ], held_by_creator=SECRET_SCOPES)


def test_managing_a_key_needs_every_scope_it_holds():
    write_keys = frozenset({Scope.API_KEYS_WRITE})
    # A narrow key cannot rotate or revoke a wider one: the secret key, or one with a scope it lacks.
    assert scopes_missing_to_manage(key_scopes=SECRET_SCOPES, held_by_caller=write_keys) == SECRET_SCOPES - write_keys
    assert scopes_missing_to_manage(
        key_scopes=frozenset({Scope.TENANT_READ, Scope.API_KEYS_WRITE}), held_by_caller=write_keys
    ) == {Scope.TENANT_READ}
    # Its peers and narrower keys, yes; and a publishable key, which any key writing keys may create.
    assert not scopes_missing_to_manage(key_scopes=write_keys, held_by_caller=write_keys)
    assert not scopes_missing_to_manage(key_scopes=SECRET_SCOPES, held_by_caller=SECRET_SCOPES)
    assert not scopes_missing_to_manage(key_scopes=PUBLISHABLE_SCOPES, held_by_caller=write_keys)


def test_platform_settings_are_apart_from_the_tenant_s():
    assert set(PLATFORM_SETTINGS) == {"fee_bps", "confirmation_policy"}
    assert not set(PLATFORM_SETTINGS) & set(TENANT_SETTINGS)


def test_the_issue_s_scopes_exist():
    for name in ("payment_intents:write", "payment_intents:read", "payouts:write", "payouts:approve", "programs:admin", "webhooks:write"):
        assert Scope(name)


def test_client_secrets():
    secret = format_client_secret(object_id="pi_123456789abc", random_part="R" * 24)
    assert secret == "pi_123456789abc_secret_" + "R" * 24
    assert parse_client_secret(secret) == "pi_123456789abc"
    assert parse_client_secret("pi_123456789abc_secret_short") is None
    assert parse_client_secret("x" * 500) is None
    stored = hash_secret(secret)
    assert secret_matches(secret, stored_hash=stored) and not secret_matches(secret + "x", stored_hash=stored)


@pytest.mark.parametrize("fee_bps", [0, 1, 250, FEE_BPS_MAX])
def test_fee_bps_in_range(fee_bps):
    assert validate_fee_bps(fee_bps) == fee_bps


@pytest.mark.parametrize("fee_bps", [-1, FEE_BPS_MAX + 1, 1.5, True, "10"])
def test_fee_bps_out_of_range(fee_bps):
    with pytest.raises(TenantRuleError) as error:
        validate_fee_bps(fee_bps)
    assert error.value.param == "fee_bps"


def test_evm_addresses_must_be_checksummed():
    checksummed = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert validate_evm_address(checksummed) == checksummed
    with pytest.raises(TenantRuleError, match=checksummed):
        validate_evm_address(checksummed.lower())
    with pytest.raises(TenantRuleError, match="checksum"):
        validate_evm_address(checksummed.replace("C8", "c8"))
    for bad in ("0x1234", "70997970C51812dc3A010C7d01b50e0d17dc79C8", "0x" + "g" * 40, ""):
        with pytest.raises(TenantRuleError):
            validate_evm_address(bad)


def test_the_zero_address_is_refused():
    # It passes every checksum (no letters), but money sent there is gone.
    assert ZERO_ADDRESS == "0x" + "0" * 40
    with pytest.raises(TenantRuleError, match="zero address") as error:
        validate_evm_address(ZERO_ADDRESS, param="payout_addresses[0].address")
    assert error.value.param == "payout_addresses[0].address" and error.value.code == "parameter_invalid"
    assert validate_evm_address("0x" + "0" * 39 + "1") == "0x" + "0" * 39 + "1"


def test_confirmation_tiers():
    tiers = [ConfirmationTier(0, 1), ConfirmationTier(10**6, 3), ConfirmationTier(10**24, 12)]
    assert validate_confirmation_tiers(tiers) == tiers
    for bad, words in [
        ([], "between 1"),
        ([ConfirmationTier(1, 1)], "start at"),
        ([ConfirmationTier(0, 5), ConfirmationTier(0, 6)], "strictly increase"),
        ([ConfirmationTier(0, 5), ConfirmationTier(10, 4)], "fewer"),
        ([ConfirmationTier(0, 1), ConfirmationTier(2**256, 2)], "256 bits"),
        ([ConfirmationTier(0, 10_001)], "between 0 and"),
    ]:
        with pytest.raises(TenantRuleError, match=words):
            validate_confirmation_tiers(bad)


def test_text_rules():
    assert check_text("Acme Ltd — café", param="name", length_max=200) == "Acme Ltd — café"
    for bad in ("", "   ", "a\x00b", "line\nbreak", "\ud800", "x" * 201):
        with pytest.raises(TenantRuleError):
            check_text(bad, param="name", length_max=200)


def test_require_unique():
    assert require_unique(["a", "b"], param="approvers") == ["a", "b"]
    with pytest.raises(TenantRuleError) as error:
        require_unique(["a", "b", "a"], param="approvers")
    assert error.value.param == "approvers[2]"


# ---------------------------------------------------------------------------- pagination
def test_page_request_bounds():
    with pytest.raises(AssertionError):
        PageRequest(limit=LIMIT_MAX + 1)
    with pytest.raises(AssertionError):
        PageRequest(limit=0)
    with pytest.raises(AssertionError):
        PageRequest(starting_after="a_12345678", ending_before="b_12345678")
    with pytest.raises(AssertionError):
        PageRequest(created_gte=datetime(2026, 1, 1))


@given(rows=st.integers(min_value=0, max_value=11), limit=st.integers(min_value=1, max_value=10), backwards=st.booleans())
def test_cut_page(rows, limit, backwards):
    request = PageRequest(limit=limit, ending_before="x_12345678" if backwards else None)
    fetched = list(range(min(rows, limit + 1)))
    page = cut_page(fetched, request=request)
    assert page.has_more == (rows > limit)
    assert len(page.items) == min(rows, limit)
    assert page.items == (list(reversed(fetched[:limit])) if backwards else fetched[:limit])


def test_as_utc():
    naive = datetime(2026, 11, 24, 12, 0)
    assert as_utc(naive) == naive.replace(tzinfo=timezone.utc)
    plus_two = datetime(2026, 11, 24, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert as_utc(plus_two).hour == 12 and as_utc(plus_two).tzinfo == timezone.utc
    with pytest.raises(OverflowError):
        as_utc(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))))
