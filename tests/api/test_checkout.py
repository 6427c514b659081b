"""The checkout page's parts that need no browser: the state it shows for each intent, the payment
request (EIP-681 URI, QR code, ERC-20 calldata), the strings catalog, the security headers and
the rate limit. The page itself is tested in Chromium in tests/browser."""

from __future__ import annotations

import dataclasses
import io
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from eth_utils import to_checksum_address
import segno

from api.app import create_app
from api.checkout.router import security_headers
from api.checkout.strings import CATALOGS, ENGLISH, SCRIPT_KEYS, Strings, placeholders
from api.checkout.view import CheckoutState, checkout_view, transfer_calldata
from db.payment_intents import IntentPayment, StoredIntent
from db.settings import ApiSettings, CheckoutSettings
from domain.money import Asset
from tests.api.conftest import make_client

TOKEN = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
DEPOSIT = "0xdd090c50277e79fe05e0e4f3b4121a4e83f6220c"
USDC = Asset(code="usdc", chain_id=31337, symbol="USDC", decimals=6, token_address=TOKEN)
TEMPLATES = Path(__file__).resolve().parents[2] / "api" / "checkout" / "templates"


def _intent(**changes) -> StoredIntent:
    now = datetime.now(timezone.utc)
    fields = dict(
        id="pi_" + "a" * 24, tenant_id="ten_1", status="requires_payment", chain_id=31337, asset="usdc", token_address=TOKEN,
        deposit_address=DEPOSIT, amount=10_000_000, amount_received=0, amount_refundable=0, amount_refunded=0, amount_swept=0,
        fee=None, net=None, fee_bps=100,
        confirmations_required=3, description="Order 1", metadata={"ref": "x"}, success_url="https://shop.example/ok",
        cancel_url="https://shop.example/cart", client_secret_hash="h", expires_at=now + timedelta(hours=1), created_at=now,
        updated_at=now,
    )
    fields.update(changes)
    return StoredIntent(**fields)


def _payment(amount: int, *, index: int = 0, orphaned: bool = False, late: bool = False) -> IntentPayment:
    return IntentPayment(
        tx_hash="0x" + f"{index:064x}", log_index=index, amount=amount, block_number=100 + index, block_hash="0x" + f"{100 + index:064x}",
        sender="0x" + "1" * 40,
        orphaned=orphaned, late=late,
    )


def _key(payment: IntentPayment) -> str:
    return f"{payment.tx_hash.lower()}:{payment.log_index}"


def _decode(uri_svg_source: str) -> list[str]:
    import zxingcpp
    from PIL import Image

    buffer = io.BytesIO()
    segno.make(uri_svg_source, error="m").save(buffer, kind="png", scale=6)
    buffer.seek(0)
    return [result.text for result in zxingcpp.read_barcodes(Image.open(buffer).convert("RGB"))]


# ---------------------------------------------------------------------------- states
def test_waiting_asks_for_the_whole_amount():
    view = checkout_view(_intent(), merchant="Acme", asset=USDC, confirmations=None)
    assert view.state is CheckoutState.WAITING and not view.terminal
    request = view.payment_request
    assert request is not None and request.amount_base_units == 10_000_000
    # EIP-55 addresses, as the API's own payment_uri has them, whatever case the read model stores.
    assert request.uri == f"ethereum:{to_checksum_address(TOKEN)}@31337/transfer?address={to_checksum_address(DEPOSIT)}&uint256=10000000"
    assert view.tokens(view.amount_base_units) == "10.00" and view.tokens(1) == "0.000001"
    assert "<svg" in request.qr_svg and 'aria-hidden="true"' in request.qr_svg
    assert _decode(request.uri) == [request.uri]


def test_underpaid_asks_for_the_remainder():
    payment = _payment(4_000_000)
    view = checkout_view(_intent(status="processing", amount_received=4_000_000, payments=(payment,)), merchant="Acme", asset=USDC, confirmations={_key(payment): 1})
    assert view.state is CheckoutState.UNDERPAID
    assert view.amount_remaining_base_units == 6_000_000 and view.payment_request.amount_base_units == 6_000_000
    assert view.payment_request.uri.endswith("&uint256=6000000")
    assert view.confirmations_count is None


def test_confirming_counts_the_least_confirmed_live_payment():
    first, second = _payment(6_000_000, index=1), _payment(4_000_000, index=2)
    orphan, late = _payment(9, index=3, orphaned=True), _payment(9, index=4, late=True)
    intent = _intent(status="processing", amount_received=10_000_000, payments=(first, second, orphan, late))
    counts = {_key(first): 5, _key(second): 2}
    view = checkout_view(intent, merchant="Acme", asset=USDC, confirmations=counts)
    assert view.state is CheckoutState.CONFIRMING and view.payment_request is None
    assert view.confirmations_count == 2
    assert checkout_view(intent, merchant="Acme", asset=USDC, confirmations={_key(first): 9, _key(second): 7}).confirmations_count == 3
    assert checkout_view(intent, merchant="Acme", asset=USDC, confirmations=None).confirmations_count is None
    assert checkout_view(intent, merchant="Acme", asset=USDC, confirmations={_key(first): 1}).confirmations_count is None


@pytest.mark.parametrize(
    "changes, state, redirect, leave",
    [
        ({"status": "succeeded", "amount_received": 10_000_000}, CheckoutState.PAID, "https://shop.example/ok", None),
        ({"status": "succeeded", "amount_received": 12_500_000}, CheckoutState.OVERPAID, "https://shop.example/ok", None),
        ({"status": "expired"}, CheckoutState.EXPIRED, None, "https://shop.example/cart"),
        ({"status": "expired", "amount_received": 1}, CheckoutState.EXPIRED, None, "https://shop.example/cart"),
        ({"status": "canceled"}, CheckoutState.CANCELED, None, "https://shop.example/cart"),
        ({"status": "canceled", "cancel_url": None}, CheckoutState.CANCELED, None, None),
    ],
)
def test_final_states(changes, state, redirect, leave):
    view = checkout_view(_intent(**changes), merchant="Acme", asset=USDC, confirmations=None)
    assert view.state is state and view.terminal and view.payment_request is None
    assert view.redirect_url == redirect and view.leave_url == leave
    if state is CheckoutState.OVERPAID:
        assert view.tokens(view.amount_excess_base_units) == "2.50"


def test_an_unlisted_asset_shows_base_units():
    view = checkout_view(_intent(asset="dai"), merchant="Acme", asset=None, confirmations=None)
    assert view.asset_symbol == "DAI" and view.tokens(10_000_000) == "10000000"


def test_transfer_calldata_is_the_erc20_transfer():
    data = transfer_calldata(to=DEPOSIT, amount_base_units=25_000_000)
    assert data == "0xa9059cbb" + "000000000000000000000000dd090c50277e79fe05e0e4f3b4121a4e83f6220c" + "0" * 57 + "17d7840"
    assert len(data) == 2 + 8 + 128
    with pytest.raises(AssertionError):
        transfer_calldata(to=DEPOSIT, amount_base_units=0)


def test_the_view_carries_nothing_of_the_merchants_side():
    names = {field.name for field in dataclasses.fields(checkout_view(_intent(), merchant="Acme", asset=USDC, confirmations=None))}
    assert not names & {"fee", "net", "fee_bps", "metadata", "tenant_id", "client_secret_hash", "amount_refundable"}


# ---------------------------------------------------------------------------- strings
def test_every_language_has_every_string_with_the_same_placeholders():
    for language, catalog in CATALOGS.items():
        assert set(catalog) == set(ENGLISH), language
        for key, text in catalog.items():
            assert placeholders(text) == placeholders(ENGLISH[key]), (language, key)
    assert set(SCRIPT_KEYS) <= set(ENGLISH)
    assert Strings("xx").language == "en"
    assert Strings().chain_name(1) == "Ethereum" and Strings().chain_name(999) == "Chain 999"


def test_templates_show_no_text_of_their_own_and_use_only_known_strings():
    used = set()
    for template in TEMPLATES.glob("*.html"):
        source = template.read_text()
        used |= set(re.findall(r"""\bt\(\s*["'](\w+)["']""", source))
        text = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", " ", source, flags=re.S)
        text = re.sub(r"<script\b.*?</script>|<[^>]+>|&\w+;", " ", text, flags=re.S)
        assert re.fullmatch(r"[\s:/]*", text), (template.name, re.sub(r"\s+", " ", text).strip()[:200])
    assert used and used <= set(ENGLISH), used - set(ENGLISH)


# ---------------------------------------------------------------------------- headers
def test_frame_ancestors_are_none_unless_configured():
    strict = security_headers(CheckoutSettings())
    assert "frame-ancestors 'none'" in strict["Content-Security-Policy"] and strict["X-Frame-Options"] == "DENY"
    framed = security_headers(CheckoutSettings(frame_ancestors="https://shop.example  'self'"))
    assert "frame-ancestors https://shop.example 'self'" in framed["Content-Security-Policy"] and "X-Frame-Options" not in framed
    with pytest.raises(ValueError):
        CheckoutSettings(frame_ancestors="https://x.example; script-src *")


# ---------------------------------------------------------------------------- rate limit
async def test_page_and_status_are_rate_limited_per_ip(settings, db_pool):
    tight = ApiSettings(
        rate_limit_tiers={"read": {"per_key": "1000/minute", "per_ip": "2/minute"}}, json_logs=False
    )
    app = create_app(settings, tight, pool=db_pool, temporal_client=object())
    async with app.router.lifespan_context(app), make_client(app, ip="198.51.100.7") as client:
        url = "/checkout/pi_" + "0" * 24
        answers = [await client.get(url, params={"client_secret": "x"}) for _ in range(2)]
        assert [answer.status_code for answer in answers] == [404, 404]
        page = await client.get(url, params={"client_secret": "x"})
        assert page.status_code == 429 and page.headers["content-type"].startswith("text/html")
        assert int(page.headers["retry-after"]) >= 1 and "Too many requests" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        status = await client.get(url + "/status", params={"client_secret": "x"})
        assert status.status_code == 429 and status.json()["error"]["code"] == "rate_limited"
        assert status.headers["referrer-policy"] == "no-referrer"
