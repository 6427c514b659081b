"""The hosted checkout page in a real headless Chromium, against the session stack: each state as a
customer sees it, live as the chain moves (payments on anvil, blocks mined on demand), the QR code
read back off a screenshot, the browser-wallet path, the redirects, and what the page refuses."""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Callable
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import PHONE_WIDTH_PX, Browser

# Four, so that a stray block (another test's sweep) cannot rush the intent past "confirming" unseen.
CONFIRMATIONS_REQUIRED = 4
CONFIRMATIONS_TITLE = re.compile(rf"Payment seen: (\d) of {CONFIRMATIONS_REQUIRED} confirmations")


def every(interval_s: float, action: Callable[[], None]) -> Callable[[], None]:
    """`action`, at most once per `interval_s`: for mining blocks while waiting on the page."""
    last = [0.0]

    def maybe() -> None:
        if time.monotonic() - last[0] >= interval_s:
            last[0] = time.monotonic()
            action()

    return maybe


def announcement(page: Browser) -> str:
    # Visually hidden (read by screen readers), so Selenium's .text would be empty.
    return page.js("return document.getElementById('checkout-announcement').textContent").strip()


def confirming_snapshot(page: Browser) -> dict:
    return page.js(
        """
        const root = document.getElementById("checkout");
        const pick = (css, read) => { const e = document.querySelector(css); return e ? read(e) : null; };
        return {
          state: root ? root.dataset.state : null,
          title: pick("#state-title", (e) => e.textContent.trim()) || "",
          announcement: pick("#checkout-announcement", (e) => e.textContent.trim()),
          progress: pick("#checkout-confirmations", (e) => e.getAttribute("value")),
          qr: document.querySelector("#checkout-qr") !== null,
        };
        """
    )


def console_errors(page: Browser) -> list[dict]:
    return [entry for entry in page.console() if entry["level"] == "SEVERE"]


def wait_for_a_poll(page: Browser) -> None:
    """Until the page's script has fetched its status route once (so its CSP is exercised too)."""
    page.wait_for(
        lambda: page.js("return performance.getEntriesByType('resource').some(e => e.name.includes('/status?'))"),
        what="the page to poll its status route",
        timeout_s=10,
    )


# ---------------------------------------------------------------------------- waiting
def test_waiting_page_shows_the_request_and_its_qr_is_the_intent_uri(page, merchant, api, screenshots):
    intent = merchant.create_intent(
        amount="25000000",
        description="Order 42: two bags of beans",
        metadata={"internal_ref": "meta-7f3a91"},
        success_url="https://shop.example/thanks",
        cancel_url="https://shop.example/cart",
    )
    page.open(intent["checkout_url"])

    assert page.state() == "waiting"
    assert page.driver.title == f"Pay {merchant.name}"
    assert page.text("h1") == f"Pay {merchant.name}"
    assert page.text(".description") == "For: Order 42: two bags of beans"
    assert page.text("#checkout-amount") == "25.00 USDC"
    assert page.text("#checkout-asset") == "USDC"
    assert page.text("#checkout-network") == "Anvil local test chain (chain id 31337)"
    assert page.text("#state-title") == "Waiting for your payment"
    assert announcement(page) == "Waiting for your payment"
    assert page.text("#deposit-address") == intent["deposit_address"]
    assert "Send exactly 25.00 USDC on Anvil local test chain" in page.text(".instructions")
    assert page.find("#checkout-qr").get_attribute("data-uri") == intent["payment_uri"]
    assert page.decode_qr("#checkout-qr .qr-image") == [intent["payment_uri"]]

    # The countdown runs from the server's expiry (one hour).
    first = page.wait_for_text("#checkout-countdown", "Expires in")
    assert re.fullmatch(r"Expires in (1:00:00|59:[0-5]\d)", first), first
    page.wait_for(lambda: page.text("#checkout-countdown") != first, what="the countdown to tick", timeout_s=3)

    # No wallet injected: no wallet button, and nothing else is missing for it.
    assert page.exists("#wallet-pay") and not page.visible("#wallet-pay")
    # A phone's width, without sideways scrolling.
    assert page.js("return document.documentElement.scrollWidth") <= PHONE_WIDTH_PX

    wait_for_a_poll(page)
    assert page.state() == "waiting"
    source = page.driver.page_source
    for hidden in ("meta-7f3a91", "internal_ref", merchant.id, "fee_bps", merchant.secret):
        assert hidden not in source, hidden
    assert console_errors(page) == []
    screenshots(page, "waiting")


def test_copy_button_works_from_the_keyboard(page, merchant, stack):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    intent = merchant.create_intent(amount="1000000")
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(stack["api_url"]))
    page.cdp("Browser.grantPermissions", {"origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    page.open(intent["checkout_url"])
    for _ in range(30):
        ActionChains(page.driver).send_keys(Keys.TAB).perform()
        if page.js("return document.activeElement && document.activeElement.id") == "copy-address":
            break
    else:
        pytest.fail("the copy button cannot be reached with the Tab key")
    ActionChains(page.driver).send_keys(Keys.ENTER).perform()
    assert page.wait_for_text("#copy-status", "Address copied") == "Address copied"
    pasted = page.driver.execute_async_script("const done = arguments[0]; navigator.clipboard.readText().then(done, (e) => done('error: ' + e));")
    assert pasted == intent["deposit_address"]
    assert console_errors(page) == []


# ---------------------------------------------------------------------------- confirming, paid
def test_confirmations_count_up_then_paid_returns_to_the_success_url(page, merchant, chain, shop, screenshots):
    success_url = f"{shop.url}/thanks?order=42"
    intent = merchant.create_intent(
        amount="30000000", confirmations=CONFIRMATIONS_REQUIRED, success_url=success_url, cancel_url=f"{shop.url}/cart"
    )
    page.open(intent["checkout_url"])
    assert page.state() == "waiting"

    chain.pay(to=intent["deposit_address"], amount=30_000_000)
    # Read in one script call: blocks (other intents' sweeps) may move the count at any moment.
    snapshot = page.wait_for(
        lambda: (shown := confirming_snapshot(page))["state"] == "confirming" and CONFIRMATIONS_TITLE.fullmatch(shown["title"]) and shown,
        what="the payment to show as confirming",
    )
    seen = int(CONFIRMATIONS_TITLE.fullmatch(snapshot["title"]).group(1))
    assert 1 <= seen < CONFIRMATIONS_REQUIRED
    assert snapshot["announcement"] == snapshot["title"]
    assert snapshot["progress"] == str(seen)
    assert not snapshot["qr"]  # nothing more to send
    screenshots(page, "confirming")

    # One more block: one more confirmation (or, had more blocks landed meanwhile, paid).
    chain.mine(1)

    def risen() -> bool:
        shown = confirming_snapshot(page)
        counted = CONFIRMATIONS_TITLE.fullmatch(shown["title"])
        return shown["state"] == "paid" or (counted is not None and int(counted.group(1)) > seen)

    page.wait_for(risen, what="the confirmation count to rise")
    page.wait_for(lambda: page.state() == "paid", what="the intent to be paid", between=every(1.0, chain.mine))
    assert page.text("#state-title") == "Paid"
    assert page.text(".state-paid p") == f"Thank you. {merchant.name} has received your payment of 30.00 USDC."
    assert page.find("#checkout-return").get_attribute("href") == success_url
    assert not page.visible("#checkout-expiry")
    screenshots(page, "paid")

    # Then back to the merchant, without telling it the checkout URL (which holds the secret).
    page.wait_for(lambda: page.driver.current_url == success_url, what="the redirect to the success URL", timeout_s=15)
    visits = shop.requests_to("/thanks")
    assert visits, shop.requests
    assert "Referer" not in visits[-1]["headers"] and "referer" not in {name.lower() for name in visits[-1]["headers"]}


# ---------------------------------------------------------------------------- underpaid
def test_underpaid_shows_what_is_due_with_a_new_qr_then_the_rest_pays_it(page, merchant, chain, screenshots):
    intent = merchant.create_intent(amount="10000000", confirmations=1, description="Order 43")
    page.open(intent["checkout_url"])
    chain.pay(to=intent["deposit_address"], amount=4_000_000)

    page.wait_for(lambda: page.state() == "underpaid", what="the underpaid state")
    assert page.text("#state-title") == "Partly paid: 6.00 USDC still due"
    assert page.text("#checkout-received") == "4.00 USDC"
    assert page.text("#checkout-remaining") == "6.00 USDC"
    assert "Send the remaining 6.00 USDC" in page.text(".instructions")
    assert page.text("#checkout-amount") == "10.00 USDC"
    remainder_uri = intent["payment_uri"].replace("&uint256=10000000", "&uint256=6000000")
    assert remainder_uri != intent["payment_uri"]
    assert page.find("#checkout-qr").get_attribute("data-uri") == remainder_uri
    assert page.decode_qr("#checkout-qr .qr-image") == [remainder_uri]
    assert page.js("return document.documentElement.scrollWidth") <= PHONE_WIDTH_PX
    assert console_errors(page) == []
    screenshots(page, "underpaid")

    chain.pay(to=intent["deposit_address"], amount=6_000_000)
    page.wait_for(lambda: page.state() == "paid", what="the topped-up intent to be paid", between=every(1.0, chain.mine))
    assert "10.00 USDC" in page.text(".state-paid p")
    assert not page.exists("#checkout-return")  # no success_url: the page stays


# ---------------------------------------------------------------------------- overpaid
def test_overpaid_says_so_and_the_status_route_shows_nothing_of_the_merchant(page, merchant, chain, api, screenshots):
    intent = merchant.create_intent(amount="5000000", confirmations=1, metadata={"internal_ref": "meta-c0ffee42"})
    page.open(intent["checkout_url"])
    chain.pay(to=intent["deposit_address"], amount=7_500_000)

    page.wait_for(lambda: page.state() == "overpaid", what="the overpaid state", between=every(1.0, chain.mine))
    assert page.text("#state-title") == "Paid, with 2.50 USDC too much"
    assert page.text(".state-overpaid p") == (
        f"We received 7.50 USDC, 2.50 USDC more than the 5.00 USDC due. Contact {merchant.name} to get the difference back."
    )
    screenshots(page, "overpaid")

    settled = merchant.intent(intent["id"])
    assert settled["fee"] is not None and settled["net"] is not None
    response = api.get(f"/checkout/{intent['id']}/status", params={"client_secret": intent["client_secret"]})
    assert response.status_code == 200, response.text
    status = response.json()
    assert status["state"] == "overpaid" and status["terminal"] is True and status["redirect_url"] is None
    assert set(status) == {"object", "state", "terminal", "version", "html", "announcement", "redirect_url", "redirect_after_ms", "poll_after_ms", "expires_at"}
    for hidden in ("meta-c0ffee42", merchant.id, f">{settled['fee']}<", settled["net"]):
        assert hidden not in response.text and hidden not in page.driver.page_source, hidden


# ---------------------------------------------------------------------------- expired, canceled
async def test_expired_while_open_says_so_and_links_back_to_the_cancel_url(page, merchant, stack, temporal_client, shop, screenshots):
    from tests.browser.intents import start_intent_directly

    # The API's shortest expiry is a minute; the workflow itself takes any, so start one for 10 s.
    intent = await start_intent_directly(
        temporal_client, stack, tenant_id=merchant.id, amount_base_units=3_000_000, expires_in_s=10, cancel_url=f"{shop.url}/cart",
        description="Order 44",
    )
    page.open(intent["checkout_url"])
    assert page.state() == "waiting"
    assert re.fullmatch(r"Expires in 0:(0\d|10)|Expiring now…", page.wait_for_text("#checkout-countdown", "Expir"))

    page.wait_for(lambda: page.state() == "expired", what="the expired state")
    assert page.text("#state-title") == "This payment request expired"
    assert "Do not send anything to its address" in page.text(".state-expired")
    assert not page.exists("#checkout-qr") and not page.exists("#deposit-address")
    assert not page.visible("#checkout-expiry")
    leave = page.find("#checkout-leave")
    assert leave.text == f"Back to {merchant.name}" and leave.get_attribute("href") == f"{shop.url}/cart"
    assert console_errors(page) == []
    screenshots(page, "expired")

    leave.click()
    page.wait_for(lambda: page.driver.current_url == f"{shop.url}/cart", what="the cancel URL")
    assert "Referer" not in shop.requests_to("/cart")[-1]["headers"]


def test_canceled_while_open_says_so(page, merchant, shop, screenshots):
    intent = merchant.create_intent(amount="2000000", cancel_url=f"{shop.url}/cart")
    page.open(intent["checkout_url"])
    assert page.state() == "waiting"
    merchant.cancel(intent["id"])

    page.wait_for(lambda: page.state() == "canceled", what="the canceled state")
    assert page.text("#state-title") == "This payment request was canceled"
    assert page.text(".state-canceled p") == f"{merchant.name} canceled it. Do not send anything to its address."
    assert page.find("#checkout-leave").get_attribute("href") == f"{shop.url}/cart"
    assert announcement(page) == "This payment request was canceled"
    screenshots(page, "canceled")

    # Opened afresh, the canceled page is served as such.
    page.open(intent["checkout_url"])
    assert page.state() == "canceled" and not page.exists("#deposit-address")


# ---------------------------------------------------------------------------- browser wallet
WALLET = """
(() => {
  const calls = [];
  let chainId = "0x1";
  window.__walletCalls = calls;
  window.ethereum = {
    request: async ({ method, params }) => {
      calls.push({ method, params: params || [] });
      if (method === "eth_requestAccounts") return ["%(account)s"];
      if (method === "eth_chainId") return chainId;
      if (method === "wallet_switchEthereumChain") { chainId = params[0].chainId; return null; }
      if (method === "eth_sendTransaction") return "0x" + "ab".repeat(32);
      throw Object.assign(new Error("unsupported " + method), { code: 4200 });
    },
  };
})();
"""


def test_an_injected_wallet_is_offered_and_its_transaction_pays_the_intent(page, merchant, chain, stack):
    intent = merchant.create_intent(amount="12340000", confirmations=1)
    page.inject_on_new_document(WALLET % {"account": stack["accounts"]["customer"]["address"]})
    page.open(intent["checkout_url"])
    assert page.visible("#wallet-pay") and page.text("#wallet-pay") == "Pay with browser wallet"

    page.find("#wallet-pay").click()
    page.wait_for_text("#wallet-status", "Transaction sent")
    calls = page.js("return window.__walletCalls")
    assert [call["method"] for call in calls] == ["eth_requestAccounts", "eth_chainId", "wallet_switchEthereumChain", "eth_sendTransaction"]
    assert calls[2]["params"] == [{"chainId": "0x7a69"}]
    transaction = calls[3]["params"][0]
    assert transaction["to"].lower() == intent["token_address"].lower() and transaction["value"] == "0x0"
    assert transaction["data"] == "0xa9059cbb" + intent["deposit_address"][2:].lower().rjust(64, "0") + format(12_340_000, "064x")

    # What a wallet would do with that request: sign and send it. The page follows the chain.
    chain.send_as_wallet(transaction)
    page.wait_for(lambda: page.state() == "paid", what="the wallet's payment to pay the intent", between=every(1.0, chain.mine))
    assert console_errors(page) == []


# ---------------------------------------------------------------------------- refusals, headers
def test_a_wrong_or_missing_secret_gets_a_page_that_reveals_nothing(page, merchant, api, stack):
    intent = merchant.create_intent(amount="4200000", description="Order 45")
    other = merchant.create_intent(amount="4200000")
    base = f"{stack['api_url']}/checkout/{intent['id']}"
    refused = [
        base,
        f"{base}?client_secret=",
        f"{base}?client_secret=wrong",
        f"{base}?client_secret={other['client_secret']}",
        f"{base}?client_secret={intent['client_secret']}x",
        f"{stack['api_url']}/checkout/pi_{uuid.uuid4().hex[:24]}?client_secret={intent['client_secret']}",
        f"{stack['api_url']}/checkout/not-an-intent?client_secret={intent['client_secret']}",
    ]
    for url in refused:
        response = api.get(url)
        assert response.status_code == 404, (url, response.status_code)
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "no-referrer" and response.headers["cache-control"] == "no-store"
        for secret in (intent["deposit_address"], merchant.name, "Order 45", "4.20", intent["payment_uri"]):
            assert secret not in response.text, (url, secret)
        page.open(url)
        assert page.text("h1") == "Payment link not valid"
        assert intent["deposit_address"] not in page.driver.page_source
    page.console()  # the 404s are logged as failed loads; nothing else to see

    for params in ({}, {"client_secret": "wrong"}, {"client_secret": other["client_secret"]}):
        status = api.get(f"/checkout/{intent['id']}/status", params=params)
        assert status.status_code == 404 and status.json()["error"]["code"] == "resource_missing"
        assert intent["deposit_address"] not in status.text


def test_security_headers_and_no_inline_script(merchant, api):
    intent = merchant.create_intent(amount="1500000")
    response = api.get(intent["checkout_url"])
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    policy = {directive.split()[0]: directive.split()[1:] for directive in response.headers["content-security-policy"].split("; ")}
    assert policy["default-src"] == ["'none'"] and policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"] and policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    # Every script is a file of this origin, or a JSON data block (never executed).
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", response.text, flags=re.S)
    assert scripts
    for attributes, body in scripts:
        external = re.search(r'src="/checkout/static/checkout\.js\?v=[0-9a-f]+"', attributes) is not None and not body.strip()
        assert external or 'type="application/json"' in attributes, attributes
    assert ' style="' not in response.text and "<style" not in response.text and " on" + "click=" not in response.text

    script_url = re.search(r'src="(/checkout/static/checkout\.js\?v=[0-9a-f]+)"', response.text).group(1)
    script = api.get(script_url)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert script.headers["x-content-type-options"] == "nosniff"
    assert api.get("/checkout/static/../app.py").status_code == 404
    assert api.get("/checkout/static/nothing.js").status_code == 404

    status = api.get(f"/checkout/{intent['id']}/status", params={"client_secret": intent["client_secret"]})
    assert status.status_code == 200 and status.headers["cache-control"] == "no-store"
    assert status.headers["referrer-policy"] == "no-referrer" and "default-src 'none'" in status.headers["content-security-policy"]
    assert "ratelimit-limit" in status.headers
    expires_at = datetime.fromisoformat(status.json()["expires_at"])
    assert timedelta(minutes=55) < expires_at - datetime.now(timezone.utc) <= timedelta(hours=1)
