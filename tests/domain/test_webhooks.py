"""Webhook rules without I/O: schedule and jitter, retry decisions, the envelope's bytes, the
secret format, and which addresses a merchant's URL may reach."""

from __future__ import annotations

import ipaddress
import json
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from activities.webhooks import sign_headers
from domain.webhooks import (
    RETRY_DELAYS_S,
    Decision,
    ErrorKind,
    UrlPolicy,
    WebhookRuleError,
    address_block_reason,
    build_envelope,
    decide,
    delivery_id_for,
    delivery_workflow_id,
    envelope_body,
    event_matches,
    format_signing_secret,
    parse_retry_after,
    parse_signing_secret,
    parse_target_url,
    retry_delay_s,
    throttle_delay_s,
    truncate_text,
    validate_enabled_events,
    validate_rotation_overlap_s,
)

PRODUCTION = UrlPolicy(allow_private_targets=False, require_https=True)
LOCAL = UrlPolicy(allow_private_targets=True, require_https=False)


# ---------------------------------------------------------------------------- schedule
def test_the_schedule_is_the_specifications():
    hours = 3600
    assert RETRY_DELAYS_S == (5, 300, 1800, 2 * hours, 5 * hours, 10 * hours, 14 * hours, 20 * hours, 24 * hours)
    # The first attempt is immediate: ten attempts in all.
    assert 1 + len(RETRY_DELAYS_S) == 10


@given(attempt_number=st.integers(1, 9), jitter_unit=st.floats(0, 1))
def test_each_delay_is_jittered_within_ten_percent(attempt_number, jitter_unit):
    delay = retry_delay_s(attempt_number=attempt_number, retry_delays_s=RETRY_DELAYS_S, jitter_fraction=0.1, jitter_unit=jitter_unit)
    base = RETRY_DELAYS_S[attempt_number - 1]
    assert base * 0.9 - 1e-9 <= delay <= base * 1.1 + 1e-9


def test_no_delay_after_the_last_attempt():
    assert retry_delay_s(attempt_number=10, retry_delays_s=RETRY_DELAYS_S, jitter_fraction=0.1, jitter_unit=0.5) is None


def test_retry_after_stretches_a_delay_but_is_capped():
    common = dict(attempt_number=1, retry_delays_s=RETRY_DELAYS_S, jitter_fraction=0.0, jitter_unit=0.5)
    assert retry_delay_s(**common, retry_after_s=120) == 120
    # Shorter than the schedule: the schedule wins.
    assert retry_delay_s(**common, retry_after_s=1) == 5
    # A receiver cannot push a retry beyond the cap.
    assert retry_delay_s(**common, retry_after_s=10**9, retry_after_max_s=86400) == 86400


def test_retry_after_parses_seconds_and_http_dates():
    now = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    assert parse_retry_after("120", now=now) == 120
    assert parse_retry_after("Thu, 26 Nov 2026 12:10:00 GMT", now=now) == 600
    assert parse_retry_after("Thu, 26 Nov 2026 11:00:00 GMT", now=now) == 0
    for junk in (None, "", "soon", "-5", "1.5e3", "x" * 100):
        assert parse_retry_after(junk, now=now) is None


def test_throttle_delays_grow_and_are_capped():
    delays = [throttle_delay_s(throttled_waits=n, jitter_unit=0.5) for n in range(30)]
    assert delays[0] == 0.5 and delays == sorted(delays) and max(delays) == 30


# ---------------------------------------------------------------------------- decisions
@pytest.mark.parametrize(
    ("status_code", "decision"),
    [
        (200, Decision.DELIVERED),
        (201, Decision.DELIVERED),
        (204, Decision.DELIVERED),
        (299, Decision.DELIVERED),
        (500, Decision.RETRY),
        (502, Decision.RETRY),
        (503, Decision.RETRY),
        (599, Decision.RETRY),
        (408, Decision.RETRY),
        (429, Decision.RETRY),
        (410, Decision.GONE),
        (400, Decision.REJECTED),
        (401, Decision.REJECTED),
        (404, Decision.REJECTED),
        (301, Decision.REJECTED),
        (302, Decision.REJECTED),
        (100, Decision.REJECTED),
    ],
)
def test_only_5xx_408_429_are_retried(status_code, decision):
    assert decide(status_code=status_code, error_kind=None) is decision


def test_network_errors_are_retried_and_refused_targets_are_not():
    assert decide(status_code=None, error_kind=ErrorKind.TIMEOUT) is Decision.RETRY
    assert decide(status_code=None, error_kind=ErrorKind.NETWORK) is Decision.RETRY
    assert decide(status_code=None, error_kind=ErrorKind.BLOCKED) is Decision.REJECTED
    assert decide(status_code=None, error_kind=ErrorKind.INVALID_URL) is Decision.REJECTED


# ---------------------------------------------------------------------------- envelope and signing
def test_the_envelope_is_stable_and_canonical():
    created = datetime(2026, 11, 26, 12, 0, 5, 123456, tzinfo=timezone.utc)
    envelope = build_envelope(
        event_id="evt_abc_0001",
        event_type="payment_intent.succeeded",
        created_at=created,
        tenant_id="ten_x",
        api_version="2026-11-01",
        data={"id": "pi_abc", "amount": "1000000", "memo": "café"},
    )
    assert envelope == {
        "id": "evt_abc_0001",
        "object": "event",
        "type": "payment_intent.succeeded",
        "api_version": "2026-11-01",
        "created": int(created.timestamp()),
        "tenant": "ten_x",
        "data": {"object": {"id": "pi_abc", "amount": "1000000", "memo": "café"}},
    }
    body = envelope_body(envelope)
    assert body == envelope_body(json.loads(body))  # same event, same bytes, every retry
    assert b" " not in body.replace("café".encode(), b"") and "café".encode() in body


def test_signatures_match_the_specifications_package_byte_for_byte():
    raw_secrets = [bytes(range(32)), bytes(range(32, 64))]
    body = envelope_body({"id": "evt_1", "data": {"object": {"x": "ü"}}})
    now = int(datetime.now(timezone.utc).timestamp())
    headers = sign_headers(secrets=raw_secrets, message_id="evt_1", timestamp_s=now, body=body)
    assert headers["webhook-id"] == "evt_1" and headers["webhook-timestamp"] == str(now)
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    for raw in raw_secrets:
        secret = format_signing_secret(raw)
        expected = Webhook(secret).sign("evt_1", datetime.fromtimestamp(now, tz=timezone.utc), body.decode())
        assert expected in signatures
        assert Webhook(secret).verify(body, headers) == json.loads(body)
    tampered = body.replace(b"evt_1", b"evt_2")
    with pytest.raises(Exception):
        Webhook(format_signing_secret(raw_secrets[0])).verify(tampered, headers)
    stale = sign_headers(secrets=raw_secrets, message_id="evt_1", timestamp_s=now - 3600, body=body)
    with pytest.raises(Exception, match="too old"):
        Webhook(format_signing_secret(raw_secrets[0])).verify(body, stale)


def test_secret_format_round_trips_and_rejects_junk():
    raw = bytes(range(32))
    secret = format_signing_secret(raw)
    assert secret.startswith("whsec_") and parse_signing_secret(secret) == raw
    for junk in ("sk_abc", "whsec_***", "whsec_" + "QUJD", ""):
        with pytest.raises(WebhookRuleError):
            parse_signing_secret(junk)


def test_rotation_overlap_is_bounded():
    assert validate_rotation_overlap_s(0) == 0 and validate_rotation_overlap_s(7 * 86400) == 7 * 86400
    for bad in (-1, 7 * 86400 + 1, 1.5, True):
        with pytest.raises(WebhookRuleError):
            validate_rotation_overlap_s(bad)


def test_ids_are_deterministic():
    assert delivery_id_for(event_id="evt_a_0001", endpoint_id="we_b") == "whd_evt_a_0001_we_b"
    assert delivery_workflow_id(delivery_id="whd_x", round_number=0) == "whd_x"
    assert delivery_workflow_id(delivery_id="whd_x", round_number=2) == "whd_x_r2"


# ---------------------------------------------------------------------------- endpoints
def test_enabled_events():
    assert validate_enabled_events(["*"]) == ["*"]
    assert validate_enabled_events(["payment_intent.succeeded", "payout_batch.approved"])
    for bad in ([], ["*", "payment_intent.succeeded"], ["Payment.X"], ["payment_intent"], ["a.b", "a.b"], ["a.b; DROP"]):
        with pytest.raises(WebhookRuleError):
            validate_enabled_events(bad)
    assert event_matches(["*"], "anything.at_all")
    assert event_matches(["a.b"], "a.b") and not event_matches(["a.b"], "a.c")


# ---------------------------------------------------------------------------- SSRF
BLOCKED_IN_PRODUCTION = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "0.0.0.0",
    "::",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.1.1",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    "240.0.0.1",  # reserved
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.0.0.1",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "224.0.0.1",  # multicast
]
ALWAYS_BLOCKED = ["169.254.169.254", "fd00:ec2::254", "100.100.100.200", "::ffff:169.254.169.254", "224.0.0.1", "ff02::1"]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "1.1.1.1"]


@pytest.mark.parametrize("address", BLOCKED_IN_PRODUCTION)
def test_private_addresses_are_refused_unless_allowed(address):
    ip = ipaddress.ip_address(address)
    assert address_block_reason(ip, allow_private_targets=False) is not None
    if address not in ALWAYS_BLOCKED:
        assert address_block_reason(ip, allow_private_targets=True) is None


@pytest.mark.parametrize("address", ALWAYS_BLOCKED)
def test_metadata_and_multicast_are_refused_even_where_private_targets_are_allowed(address):
    assert address_block_reason(ipaddress.ip_address(address), allow_private_targets=True) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    assert address_block_reason(ipaddress.ip_address(address), allow_private_targets=False) is None


def test_target_urls():
    assert parse_target_url("https://hooks.example.com/settle?x=1", policy=PRODUCTION).port == 443
    assert parse_target_url("http://127.0.0.1:8080/hook", policy=LOCAL).address == ipaddress.ip_address("127.0.0.1")
    refused = [
        "http://hooks.example.com/",  # plain http in production
        "ftp://hooks.example.com/",
        "https://user:pass@hooks.example.com/",
        "https:///nohost",
        "https://127.0.0.1/",
        "https://[::1]/",
        "https://[::ffff:7f00:1]/",
        "https://10.1.2.3:8443/",
        "https://169.254.169.254/latest/meta-data/",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://localhost/",
        "https://api.localhost/",
        "https://hooks.example.com:99999/",
        "https://hooks.example.com/a b",
        "https://hooks.example.com/\x00",
        "https://example.com/" + "a" * 3000,
        "",
    ]
    for url in refused:
        with pytest.raises(WebhookRuleError):
            parse_target_url(url, policy=PRODUCTION)
    # Local development reaches its own receivers, but never the metadata service.
    parse_target_url("http://localhost:9000/", policy=LOCAL)
    with pytest.raises(WebhookRuleError):
        parse_target_url("http://169.254.169.254/", policy=LOCAL)


def test_truncation_says_what_it_cut_and_drops_nul():
    assert truncate_text("abc", 10) == "abc"
    assert truncate_text("a\x00b", 10) == "ab"
    cut = truncate_text("x" * 50, 10)
    assert cut.startswith("x" * 10) and "40 more characters" in cut
