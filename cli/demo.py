"""`settle demo`: the whole story against the running stack, step by step. Grows with each capability."""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncpg
import httpx
from temporalio.client import Client

from cli.processes import StackError, free_port
from workflows.hello_workflow import HelloInput, HelloWorkflow
from workflows.search_attributes import search_attributes

DEMO_AMOUNT_BASE_UNITS = 25_000_000  # 25.00 USDC
DEMO_REFUND_BASE_UNITS = 5_000_000  # 5.00 USDC
DEMO_FEE_BPS = 100
DEMO_CONFIRMATIONS = 3  # so the demo shows `processing` while the payment confirms
WAIT_S = 90


def say(step: str) -> None:
    print(f"==> {step}", flush=True)


async def run_demo(description: dict) -> None:
    if not description.get("temporal_address"):
        raise StackError("the stack is not running: run `settle up` first")
    await _hello(description)
    await _payment_intent(description)
    say("demo finished")


async def _hello(description: dict) -> None:
    client = await Client.connect(description["temporal_address"], namespace=description["temporal_namespace"])
    workflow_id = f"hello-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 1_000_000:06d}"
    say(f"starting HelloWorkflow {workflow_id} on task queue {description['task_queue']}")
    handle = await client.start_workflow(
        HelloWorkflow.run,
        HelloInput(chain_id=description["chain_id"]),
        id=workflow_id,
        task_queue=description["task_queue"],
        search_attributes=search_attributes(kind="hello", status="started"),
    )
    result = await handle.result()
    say(f"an activity read the chain head from anvil ({description['rpc_url']}): block {result.block_number}, hash {result.block_hash}")
    connection = await asyncpg.connect(description["database_url"])
    try:
        row = await connection.fetchrow("SELECT * FROM hello_runs WHERE workflow_id = $1", workflow_id)
    finally:
        await connection.close()
    if row is None:
        raise StackError(f"no hello_runs row for {workflow_id}")
    say(f"an activity wrote a row in PostgreSQL: hello_runs(workflow_id={row['workflow_id']}, block_number={row['block_number']})")
    say(f"see it in the Temporal Web UI: {description['temporal_ui_url']}/namespaces/{description['temporal_namespace']}/workflows/{workflow_id}")


async def _payment_intent(description: dict) -> None:
    from web3 import Web3

    from contracts import load_artifact
    from db.ledger_store import LedgerStore
    from db.settings import Settings
    from domain.ledger import account_id
    from domain.payment_intents import IntentStatus
    from domain.refunds import RefundStatus

    api = httpx.AsyncClient(base_url=description["api_url"], timeout=30)
    admin = {"Authorization": f"Bearer {description['admin_api_key']}"}
    response = await api.post(
        "/v1/tenants",
        headers={**admin, "Idempotency-Key": f"demo-tenant-{time.time_ns()}"},
        json={"kind": "merchant", "name": "Demo Coffee", "fee_bps": DEMO_FEE_BPS},
    )
    _expect(response, 201)
    tenant = response.json()
    merchant = {"Authorization": f"Bearer {tenant['api_key']['secret']}"}
    say(f"a platform admin created the merchant {tenant['name']} ({tenant['id']}), fee {DEMO_FEE_BPS} bps, with its first secret key")

    receiver = _WebhookReceiver()
    receiver.start()
    try:
        response = await api.post(
            "/v1/webhook_endpoints",
            headers={**merchant, "Idempotency-Key": f"demo-endpoint-{time.time_ns()}"},
            json={"url": receiver.url, "enabled_events": ["payment_intent.succeeded"], "description": "demo receiver"},
        )
        _expect(response, 201)
        receiver.secret = response.json()["secret"]
        say(f"the merchant registered a webhook endpoint {receiver.url} (a receiver that verifies Standard Webhooks signatures)")

        response = await api.post(
            "/v1/payment_intents",
            headers={**merchant, "Idempotency-Key": f"demo-intent-{time.time_ns()}"},
            json={"amount": str(DEMO_AMOUNT_BASE_UNITS), "asset": "usdc", "description": "2 flat whites",
                  "confirmations": DEMO_CONFIRMATIONS},
        )
        _expect(response, 201)
        intent = response.json()
        say(f"the merchant created payment intent {intent['id']} for 25.00 USDC: pay to {intent['deposit_address']}")
        say(f"  payment URI: {intent['payment_uri']}")
        say(f"  the customer's checkout page: {intent['checkout_url']}")

        w3 = Web3(Web3.HTTPProvider(description["rpc_url"]))
        customer = w3.eth.account.from_key(description["accounts"]["customer"]["private_key"])
        treasury = description["accounts"]["treasury"]["address"]
        token = w3.eth.contract(address=description["contracts"]["TestUSDC"], abi=load_artifact("TestUSDC").abi)
        treasury_before = token.functions.balanceOf(treasury).call()
        transfer = token.functions.transfer(Web3.to_checksum_address(intent["deposit_address"]), DEMO_AMOUNT_BASE_UNITS)
        tx = transfer.build_transaction(
            {"from": customer.address, "nonce": w3.eth.get_transaction_count(customer.address, "pending"), "chainId": description["chain_id"]}
        )
        receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(customer.sign_transaction(tx).raw_transaction))
        say(f"the customer paid 25.00 USDC on anvil: tx 0x{bytes(receipt['transactionHash']).hex()} in block {receipt['blockNumber']}")

        seen = []
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            response = await api.get(f"/v1/payment_intents/{intent['id']}", headers=merchant)
            _expect(response, 200)
            current = response.json()
            if not seen or seen[-1] != current["status"]:
                seen.append(current["status"])
                say(f"  intent status: {current['status']} (received {current['amount_received']} base units)")
            swept = await api.get("/v1/events", headers=merchant, params={"object_id": intent["id"], "type": "payment_intent.swept"})
            if current["status"] == IntentStatus.SUCCEEDED and swept.status_code == 200 and swept.json()["data"]:
                break
            if current["status"] == IntentStatus.PROCESSING and w3.eth.block_number < receipt["blockNumber"] + DEMO_CONFIRMATIONS - 1:
                # The local chain mines only on demand: new blocks are what confirms the payment.
                w3.provider.make_request("anvil_mine", [hex(1)])
                say(f"  a new block: {w3.eth.block_number - receipt['blockNumber'] + 1} of {DEMO_CONFIRMATIONS} confirmations")
            await asyncio.sleep(0.3)
        else:
            raise StackError(f"intent {intent['id']} did not settle in {WAIT_S}s (statuses seen: {seen})")
        say(f"settled: fee {current['fee']}, net {current['net']} (base units of USDC, 6 decimals)")

        settings = Settings(database_url=description["database_url"])
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
        try:
            ledger = LedgerStore(pool)
            asset_key = f"evm:{description['chain_id']}:usdc"
            codes = ["customer_deposits", "merchant_available", "platform_fees", "treasury"]
            ids = [account_id(ledger=tenant["id"], asset=asset_key, code=code) for code in codes]
            accounts = {account.id: account for account in await ledger.lookup_accounts(ids)}
            say("the ledger (debits - credits, base units):")
            for code, id_ in zip(codes, ids):
                account = accounts.get(id_)
                balance = account.debits_posted - account.credits_posted if account else 0
                print(f"      {code:<20} {balance:>14}", flush=True)
            await ledger.close()
        finally:
            await pool.close()
        treasury_after = token.functions.balanceOf(treasury).call()
        say(f"the treasury {treasury} holds {treasury_after - treasury_before} more base units of USDC (swept from the deposit address)")

        delivered = receiver.wait_for("payment_intent.succeeded", timeout_s=WAIT_S)
        if delivered is None:
            raise StackError("no verified payment_intent.succeeded webhook arrived")
        say(f"the merchant's receiver got a verified webhook: {delivered['type']} for {delivered['data']['object']['id']} (webhook-id {delivered['_webhook_id']})")

        # A refund: part of the payment back to an address the customer gives (not assumed to be
        # the sender: exchanges pay from hot wallets), out of the merchant's balance.
        refund_to = w3.eth.account.create().address
        response = await api.post(
            f"/v1/payment_intents/{intent['id']}/refunds",
            headers={**merchant, "Idempotency-Key": f"demo-refund-{time.time_ns()}"},
            json={"amount": str(DEMO_REFUND_BASE_UNITS), "address": refund_to, "reason": "requested_by_customer"},
        )
        _expect(response, 201)
        refund = response.json()
        say(f"the merchant refunded 5.00 USDC to {refund_to}: refund {refund['id']} ({refund['status']})")
        deadline = time.monotonic() + WAIT_S
        while refund["status"] == RefundStatus.PENDING and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
            response = await api.get(f"/v1/refunds/{refund['id']}", headers=merchant)
            _expect(response, 200)
            refund = response.json()
        if refund["status"] != RefundStatus.SUCCEEDED:
            raise StackError(f"refund {refund['id']} ended {refund['status']}: {refund.get('failure_code')}")
        say(f"  refund succeeded in tx {refund.get('tx_hash')}: {refund_to} holds {token.functions.balanceOf(refund_to).call()} base units of USDC")
    finally:
        receiver.stop()
        await api.aclose()


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise StackError(f"{response.request.method} {response.request.url.path} answered {response.status_code}: {response.text[:500]}")


class _WebhookReceiver:
    """A merchant's receiver on 127.0.0.1 that accepts only deliveries whose signature verifies."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/webhooks"
        self.secret: str | None = None
        self.verified: list[dict] = []
        self._condition = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                from standardwebhooks.webhooks import Webhook, WebhookVerificationError

                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                try:
                    payload = Webhook(receiver.secret).verify(body, dict(self.headers))
                except (WebhookVerificationError, TypeError, ValueError):
                    self.send_response(400)
                    self.end_headers()
                    return
                payload["_webhook_id"] = self.headers.get("webhook-id")
                with receiver._condition:
                    receiver.verified.append(payload)
                    receiver._condition.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, event_type: str, *, timeout_s: float) -> dict | None:
        deadline = time.monotonic() + timeout_s
        with self._condition:
            while True:
                for payload in self.verified:
                    if payload.get("type") == event_type:
                        return payload
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._condition.wait(remaining)
