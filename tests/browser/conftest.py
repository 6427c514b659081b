"""Browser tests: Debian's Chromium, headless, driven by Selenium through Debian's chromedriver
(both installed by scripts/bootstrap; nothing is downloaded at run time), against the session
stack's real API server, worker and anvil.

One browser per test module, on a fresh profile, at a phone's width (375 CSS px). Its processes
(chromedriver, Chromium and Chromium's children) are stopped by pid at the end of the module.

Set `SETTLE_CHECKOUT_SCREENSHOTS_DIR` to a folder to have the state tests write their screenshots
there (scripts/checkout_screenshots does, into docs/checkout/); a normal run writes nothing.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import httpx
import psutil
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Without the background-networking flags Chromium keeps dialing Google's hosts, which this
# closed network refuses; --headless=new is the headless mode of the real browser.
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)
PHONE_WIDTH_PX = 375
PHONE_HEIGHT_PX = 812
# Screenshots at a phone's pixel density: sharper QR codes to decode, sharper docs.
DEVICE_SCALE_FACTOR = 2
WAIT_S_DEFAULT = 30.0
WAIT_STEP_S = 0.1
SCREENSHOTS_ENV = "SETTLE_CHECKOUT_SCREENSHOTS_DIR"


# ---------------------------------------------------------------------------- the browser
class Browser:
    """A thin layer over a Selenium Chrome driver: open, read, wait (bounded), screenshot."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.injected: list[str] = []

    def inject_on_new_document(self, source: str) -> None:
        """Runs `source` in every page before the page's own scripts, as a wallet extension does;
        removed again at the end of the test."""
        self.injected.append(self.cdp("Page.addScriptToEvaluateOnNewDocument", {"source": source})["identifier"])

    def open(self, url: str) -> None:
        self.driver.get(url)
        self.wait_for(lambda: self.driver.execute_script("return document.readyState") == "complete", what="the page to load")

    def cdp(self, command: str, params: dict[str, Any] | None = None) -> Any:
        return self.driver.execute_cdp_cmd(command, params or {})

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def text(self, css: str) -> str:
        """The rendered text of the first match, read in one script call: the page's script may
        replace the element at any moment, so no element handle is kept between calls."""
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.innerText.trim() : '';", css)

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def exists(self, css: str) -> bool:
        return self.js("return document.querySelector(arguments[0]) !== null;", css)

    def visible(self, css: str) -> bool:
        return self.js("const e = document.querySelector(arguments[0]); return !!e && e.getClientRects().length > 0;", css)

    def state(self) -> str:
        return self.js("return document.getElementById('checkout') ? document.getElementById('checkout').dataset.state : null")

    def wait_for(self, predicate: Callable[[], Any], *, what: str, timeout_s: float = WAIT_S_DEFAULT, between: Callable[[], None] | None = None) -> Any:
        """Polls `predicate` until truthy, at most `timeout_s`; `between` runs between tries (to mine a block, say)."""
        from selenium.common.exceptions import StaleElementReferenceException

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                value = predicate()
            except StaleElementReferenceException:
                value = None  # replaced under our feet by the page's own update: look again
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; page state {self.state()!r}: {self.text('#checkout-state')[:300]!r}")
            if between is not None:
                between()
            time.sleep(WAIT_STEP_S)

    def wait_for_text(self, css: str, expected: str, *, timeout_s: float = WAIT_S_DEFAULT, between: Callable[[], None] | None = None) -> str:
        return self.wait_for(lambda: expected in self.text(css) and self.text(css), what=f"{expected!r} in {css}", timeout_s=timeout_s, between=between)

    def console(self) -> list[dict[str, Any]]:
        """The console messages since the last call (CSP violations are reported here)."""
        return self.driver.get_log("browser")

    def element_png(self, css: str) -> bytes:
        self.js("arguments[0].scrollIntoView({block: 'center'})", self.find(css))
        return self.find(css).screenshot_as_png

    def page_png(self) -> bytes:
        """The whole page, beyond the viewport, at the phone's width."""
        metrics = self.cdp("Page.getLayoutMetrics")
        height = max(PHONE_HEIGHT_PX, int(metrics["cssContentSize"]["height"]))
        shot = self.cdp(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": {"x": 0, "y": 0, "width": PHONE_WIDTH_PX, "height": height, "scale": 1}},
        )
        return base64.b64decode(shot["data"])

    def decode_qr(self, css: str) -> list[str]:
        """The texts of the QR codes in a screenshot of the element, decoded by zxing-cpp."""
        import zxingcpp
        from PIL import Image

        image = Image.open(io.BytesIO(self.element_png(css))).convert("RGB")
        return [result.text for result in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]


def _start_driver(profile_dir: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in CHROMIUM_ARGS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.add_argument(f"--window-size={PHONE_WIDTH_PX},{PHONE_HEIGHT_PX}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Given both paths, Selenium never runs its manager (which would try to download a driver).
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(profile_dir.parent / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": PHONE_WIDTH_PX, "height": PHONE_HEIGHT_PX, "deviceScaleFactor": DEVICE_SCALE_FACTOR, "mobile": True},
    )
    return driver


def _process_tree(pid: int) -> list[psutil.Process]:
    try:
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _stop_processes(processes: list[psutil.Process], *, timeout_s: float = 5.0) -> None:
    alive = [process for process in processes if process.is_running()]
    for process in alive:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, survivors = psutil.wait_procs(alive, timeout=timeout_s)
    for process in survivors:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(survivors, timeout=timeout_s)


@pytest.fixture(scope="module")
def browser() -> Any:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed: run scripts/bootstrap (it installs Debian's chromium and chromium-driver)")
    work_dir = Path(tempfile.mkdtemp(prefix="settle-chromium-"))
    profile_dir = work_dir / "profile"
    profile_dir.mkdir()
    driver = _start_driver(profile_dir)
    processes = _process_tree(driver.service.process.pid)
    try:
        yield Browser(driver)
    finally:
        # Chromium's children as they are now (renderers come and go), then quit, then by pid.
        processes += [p for p in _process_tree(driver.service.process.pid) if p not in processes]
        try:
            driver.quit()
        finally:
            _stop_processes(processes)
            shutil.rmtree(work_dir, ignore_errors=True)
        survivors = [process.pid for process in processes if process.is_running() and process.status() != psutil.STATUS_ZOMBIE]
        assert not survivors, f"browser processes survived: {survivors}"


@pytest.fixture
def page(browser: Browser) -> Browser:
    """The module's browser, its console drained, with no injected wallet left over."""
    browser.console()
    yield browser
    for identifier in browser.injected:
        browser.cdp("Page.removeScriptToEvaluateOnNewDocument", {"identifier": identifier})
    browser.injected.clear()


# ---------------------------------------------------------------------------- screenshots
@pytest.fixture(scope="session")
def screenshots() -> Callable[[Browser, str], None]:
    """`screenshots(browser, "paid")` writes paid.png when SETTLE_CHECKOUT_SCREENSHOTS_DIR is set."""
    target = os.environ.get(SCREENSHOTS_ENV)

    def take(browser: Browser, name: str) -> None:
        if not target:
            return
        folder = Path(target)
        folder.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        # A 64-colour palette keeps the committed PNGs small; the page has few colours anyway.
        image = Image.open(io.BytesIO(browser.page_png())).convert("RGB").quantize(colors=64)
        image.save(folder / f"{name}.png", optimize=True)

    return take


# ---------------------------------------------------------------------------- the stack
@dataclass
class Merchant:
    """A merchant tenant made over the stack's HTTP API."""

    api: httpx.Client
    id: str
    name: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}

    def create_intent(self, **body: Any) -> dict[str, Any]:
        payload = {"amount": "25000000", "asset": "usdc", **body}
        response = self.api.post("/v1/payment_intents", json=payload, headers=self.headers)
        assert response.status_code == 201, response.text
        return response.json()

    def intent(self, intent_id: str) -> dict[str, Any]:
        response = self.api.get(f"/v1/payment_intents/{intent_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()

    def cancel(self, intent_id: str) -> dict[str, Any]:
        response = self.api.post(f"/v1/payment_intents/{intent_id}/cancel", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def api(stack) -> httpx.Client:
    with httpx.Client(base_url=stack["api_url"], timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def merchant(api, stack) -> Merchant:
    # Tenant names need not be unique; tests tell tenants apart by id.
    name = "Acme Coffee Roasters"
    response = api.post(
        "/v1/tenants", json={"kind": "merchant", "name": name, "fee_bps": 150}, headers={"Authorization": f"Bearer {stack['admin_api_key']}"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Merchant(api=api, id=body["id"], name=name, secret=body["api_key"]["secret"])


class Chain:
    """The stack's anvil: the customer pays, blocks are mined on demand."""

    def __init__(self, stack: dict[str, Any]) -> None:
        from web3 import Web3

        from contracts import load_artifact

        self.w3 = Web3(Web3.HTTPProvider(stack["rpc_url"], request_kwargs={"timeout": 10}))
        self.customer = stack["accounts"]["customer"]
        self.token = self.w3.eth.contract(address=self.w3.to_checksum_address(stack["contracts"]["TestUSDC"]), abi=load_artifact("TestUSDC").abi)

    def _send(self, tx: dict[str, Any]) -> str:
        from eth_account import Account

        sender = Account.from_key(self.customer["private_key"])
        tx = {**tx, "from": sender.address, "nonce": self.w3.eth.get_transaction_count(sender.address, "pending"), "chainId": self.w3.eth.chain_id}
        tx.setdefault("gas", self.w3.eth.estimate_gas(tx))
        tx.setdefault("gasPrice", self.w3.eth.gas_price)
        receipt = self.w3.eth.wait_for_transaction_receipt(self.w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction), timeout=30)
        assert receipt["status"] == 1, receipt
        return receipt["transactionHash"].hex()

    def pay(self, *, to: str, amount: int) -> str:
        tx = self.token.functions.transfer(self.w3.to_checksum_address(to), amount).build_transaction({"from": self.customer["address"]})
        return self._send({"to": tx["to"], "data": tx["data"], "value": 0})

    def send_as_wallet(self, params: dict[str, Any]) -> str:
        """What a wallet does with an `eth_sendTransaction` request: sign it as the customer and send."""
        assert params["from"].lower() == self.customer["address"].lower()
        return self._send({"to": self.w3.to_checksum_address(params["to"]), "data": params["data"], "value": int(params.get("value", "0x0"), 16)})

    def mine(self, blocks: int = 1) -> None:
        self.w3.provider.make_request("anvil_mine", [hex(blocks)])


@pytest.fixture(scope="module")
def chain(stack) -> Chain:
    return Chain(stack)


# ---------------------------------------------------------------------------- the merchant's site
@dataclass
class ShopSite:
    """A local stand-in for the merchant's site: records each request the browser makes to it."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)

    def requests_to(self, path: str) -> list[dict[str, Any]]:
        return [request for request in self.requests if request["path"].split("?")[0] == path]


@pytest.fixture(scope="module")
def shop() -> ShopSite:
    site = ShopSite(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            site.requests.append({"path": self.path, "headers": dict(self.headers)})
            body = b"<!doctype html><title>Shop</title><p>Thanks!</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="shop-site", daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
