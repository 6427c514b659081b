"""Hosts written as numbers are addresses: `http://2852039166/` is 169.254.169.254 to inet_aton,
getaddrinfo and every URL parser, so registration checks it as that address, not as a name."""

from __future__ import annotations

import ipaddress

import pytest

from domain.webhooks import UrlPolicy, WebhookRuleError, numeric_ipv4_host, parse_target_url

PRODUCTION = UrlPolicy(allow_private_targets=False, require_https=False)
LOCAL = UrlPolicy(allow_private_targets=True, require_https=False)


@pytest.mark.parametrize(
    "host, address",
    [
        ("2852039166", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("0XA9FEA9FE", "169.254.169.254"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("169.254.43518", "169.254.169.254"),
        ("169.16689662", "169.254.169.254"),
        ("0", "0.0.0.0"),
        ("0x7f.1", "127.0.0.1"),
        ("127.000.000.001", "127.0.0.1"),
        ("134744072", "8.8.8.8"),
    ],
)
def test_legacy_numeric_forms_are_the_addresses_inet_aton_reads(host, address):
    assert numeric_ipv4_host(host) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize("host", ["example.com", "deadbeef", "1e3", "xn--80ak6aa92e.com", "0x1.example"])
def test_names_are_not_numbers(host):
    assert numeric_ipv4_host(host) is None


@pytest.mark.parametrize("host", ["1.2.3.4.5", "99999999999", "256.1.1.1", "example.0", "0x", "08.1.1.1"])
def test_a_host_ending_in_a_number_must_be_a_valid_address(host):
    with pytest.raises(ValueError):
        numeric_ipv4_host(host)
    with pytest.raises(WebhookRuleError):
        parse_target_url(f"http://{host}/", policy=LOCAL)


@pytest.mark.parametrize(
    "url",
    ["http://2852039166/", "http://0xa9fea9fe/", "http://0251.0376.0251.0376/", "http://169.254.43518/", "http://0xa9.0xfe.0xa9.0xfe:80/x"],
)
def test_the_metadata_address_is_refused_however_it_is_written_even_where_private_targets_are_allowed(url):
    for policy in (PRODUCTION, LOCAL):
        with pytest.raises(WebhookRuleError) as refused:
            parse_target_url(url, policy=policy)
        assert refused.value.code == "url_not_allowed" and "metadata" in refused.value.message


@pytest.mark.parametrize("url, reason", [("http://0/", "loopback"), ("http://2130706433/", "loopback"), ("http://0300.0250.0.1/", "private"), ("http://167772161/", "private")])
def test_numeric_loopback_and_private_hosts_are_refused_in_production(url, reason):
    with pytest.raises(WebhookRuleError) as refused:
        parse_target_url(url, policy=PRODUCTION)
    assert reason in refused.value.message
    assert parse_target_url(url, policy=LOCAL).address is not None


def test_a_public_address_written_as_a_number_is_kept_as_its_address():
    target = parse_target_url("https://134744072/hook", policy=PRODUCTION)
    assert target.address == ipaddress.IPv4Address("8.8.8.8") and target.host == "134744072"
