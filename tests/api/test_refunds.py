"""Refunds over HTTP on the session stack: the in-process app with a real Temporal client, the
stack's worker running RefundWorkflow on the shared anvil, intents paid by the stack's customer.
Bad input is a 4xx that creates nothing; the workflow engine unreachable creates nothing either."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from eth_account import Account
from web3 import Web3

from api.app import create_app
from contracts import load_artifact
from tests.api.conftest import create_tenant, make_client, settings_for_stack
from tests.api.helpers import assert_error

DUE = 1_000_000  # 1.00 USDC
EXCESS = 1_000_000


@pytest.fixture(scope="module")
async def refunds_app(stack, api_settings, db_pool, temporal_client):
    app = create_app(settings_for_stack(stack), api_settings, pool=db_pool, temporal_client=temporal_client)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="module")
async def http(refunds_app):
    async with make_client(refunds_app) as client:
        yield client


@pytest.fixture(scope="module")
async def merchant(http, admin_headers):
    return await create_tenant(http, admin_headers, kind="merchant", fee_bps=100)


def _w3(stack) -> Web3:
    return Web3(Web3.HTTPProvider(stack["rpc_url"], request_kwargs={"timeout": 10}))


def _pay(stack, *, to: str, amount: int) -> None:
    w3 = _w3(stack)
    sender = Account.from_key(stack["accounts"]["customer"]["private_key"])
    token = w3.eth.contract(address=w3.to_checksum_address(stack["contracts"]["TestUSDC"]), abi=load_artifact("TestUSDC").abi)
    tx = token.functions.transfer(w3.to_checksum_address(to), amount).build_transaction(
        {"from": sender.address, "nonce": w3.eth.get_transaction_count(sender.address, "pending"), "chainId": w3.eth.chain_id}
    )
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction))
    assert receipt["status"] == 1


def _usdc_balance(stack, holder: str) -> int:
    w3 = _w3(stack)
    token = w3.eth.contract(address=w3.to_checksum_address(stack["contracts"]["TestUSDC"]), abi=load_artifact("TestUSDC").abi)
    return token.functions.balanceOf(w3.to_checksum_address(holder)).call()


async def _poll(http, path: str, headers, predicate, *, stack, timeout_s: float = 90) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        body = (await http.get(path, headers=headers)).json()
        if predicate(body):
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{path} never reached the expected state: {body}")
        _w3(stack).provider.make_request("anvil_mine", ["0x1"])
        await asyncio.sleep(0.3)


async def _intent(http, merchant, **body) -> dict:
    response = await http.post("/v1/payment_intents", json={"amount": str(DUE), "asset": "usdc", **body}, headers=merchant.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def _paid_intent(http, merchant, stack, *, paid: int = DUE + EXCESS) -> dict:
    intent = await _intent(http, merchant)
    _pay(stack, to=intent["deposit_address"], amount=paid)
    return await _poll(http, f"/v1/payment_intents/{intent['id']}", merchant.headers, lambda body: body["status"] == "succeeded", stack=stack)


@pytest.fixture(scope="module")
async def funded(http, merchant, stack) -> dict:
    """An intent that succeeded overpaid: 1.00 excess + 1.00 payment refundable. Tests that only
    check refusals use it; nothing may ever be refunded from it."""
    return await _paid_intent(http, merchant, stack)


async def _refund_count(db_pool, intent_id: str) -> int:
    return await db_pool.fetchval("SELECT count(*) FROM refunds WHERE intent_id = $1", intent_id)


def _customer() -> str:
    return Account.create().address


# ---------------------------------------------------------------------------- happy path
async def test_refund_an_overpayment_over_http(http, merchant, stack, db_pool):
    intent = await _paid_intent(http, merchant, stack)
    assert intent["amount_refundable"] == str(EXCESS)
    customer = _customer()
    response = await http.post(
        f"/v1/payment_intents/{intent['id']}/refunds",
        json={"amount": EXCESS, "address": customer, "reason": "overpayment", "metadata": {"ticket": "T-1"}},
        headers=merchant.headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "pending" and created["amount"] == str(EXCESS) and created["metadata"] == {"ticket": "T-1"}
    assert created["asset"] == "usdc" and created["chain_id"] == stack["chain_id"]
    assert created["token_address"] == Web3.to_checksum_address(stack["contracts"]["TestUSDC"]) and created["address"] == customer
    done = await _poll(http, f"/v1/refunds/{created['id']}", merchant.headers, lambda body: body["status"] != "pending", stack=stack)
    assert done["status"] == "succeeded", done
    assert _usdc_balance(stack, customer) == EXCESS
    listed = (await http.get(f"/v1/payment_intents/{intent['id']}/refunds", headers=merchant.headers)).json()
    assert listed["url"] == f"/v1/payment_intents/{intent['id']}/refunds" and [r["id"] for r in listed["data"]] == [created["id"]]
    events = (await http.get("/v1/events", params={"object_id": created["id"]}, headers=merchant.headers)).json()["data"]
    assert sorted(event["type"] for event in events) == ["refund.created", "refund.succeeded"]
    succeeded = next(event for event in events if event["type"] == "refund.succeeded")
    assert succeeded["data"]["id"] == created["id"] and succeeded["data"]["status"] == "succeeded"
    # One serializer (domain.events.refund_object): the event's object is the API's, field for field.
    assert succeeded["data"] == done
    assert (await http.get(f"/v1/events/{succeeded['id']}", headers=merchant.headers)).status_code == 200
    # The merchant's intent says what went back to the customer and what reached the treasury.
    refreshed = (await http.get(f"/v1/payment_intents/{intent['id']}", headers=merchant.headers)).json()
    assert refreshed["amount_refunded"] == str(EXCESS) and int(refreshed["amount_swept"]) >= int(refreshed["amount_received"])


async def test_same_idempotency_key_is_one_refund(http, merchant, stack, db_pool):
    intent = await _paid_intent(http, merchant, stack)
    headers = {**merchant.headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"amount": "1000", "address": _customer()}
    path = f"/v1/payment_intents/{intent['id']}/refunds"
    first = await http.post(path, json=body, headers=headers)
    second = await http.post(path, json=body, headers=headers)
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert second.headers["idempotent-replayed"] == "true" and first.json()["id"] == second.json()["id"]
    assert await _refund_count(db_pool, intent["id"]) == 1
    assert_error(await http.post(path, json={**body, "amount": "1001"}, headers=headers), 409, code="idempotency_key_reused")
    assert await _refund_count(db_pool, intent["id"]) == 1


# ---------------------------------------------------------------------------- refusals
CHECKSUMMED = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


@pytest.mark.parametrize(
    "change, param",
    [
        ({"amount": 0}, "amount"),
        ({"amount": -1}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"amount": 1.0}, "amount"),
        ({"amount": "1.5"}, "amount"),
        ({"amount": "1e3"}, "amount"),
        ({"amount": " 100"}, "amount"),
        ({"amount": ""}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": None}, "amount"),
        ({"amount": 10**40}, "amount"),
        ({"address": "0x1234"}, "address"),
        ({"address": CHECKSUMMED[2:] + "00"}, "address"),
        ({"address": "0x" + "0" * 40}, "address"),
        ({"address": CHECKSUMMED.replace("F", "f", 1)}, "address"),  # a checksum that does not match
        ({"address": "0x" + CHECKSUMMED[2:].upper()}, "address"),
        ({"address": 12}, "address"),
        ({"reason": "because"}, "reason"),
        ({"metadata": {"k": 1}}, "metadata.k"),
        ({"metadata": {f"k{i}": "v" for i in range(21)}}, "metadata"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_bad_input_is_400_and_creates_nothing(http, merchant, funded, db_pool, change, param):
    body = {"amount": "1000", "address": CHECKSUMMED, **change}
    error = assert_error(await http.post(f"/v1/payment_intents/{funded['id']}/refunds", json=body, headers=merchant.headers), 400)
    assert error["param"] == param, error
    assert await _refund_count(db_pool, funded["id"]) == 0


@pytest.mark.parametrize("field", ["amount", "address"])
async def test_a_missing_field_is_400(http, merchant, funded, field):
    body = {"amount": "1000", "address": CHECKSUMMED}
    del body[field]
    error = assert_error(await http.post(f"/v1/payment_intents/{funded['id']}/refunds", json=body, headers=merchant.headers), 400, code="parameter_missing")
    assert error["param"] == field


async def test_addresses_the_money_would_not_reach_the_customer_at_are_refused(http, merchant, funded, stack, db_pool):
    other = await _intent(http, merchant)
    for address in (
        funded["deposit_address"],  # its own deposit address: the refund would count as a payment
        Web3.to_checksum_address(other["deposit_address"]),
        stack["accounts"]["treasury"]["address"],
        stack["contracts"]["TestUSDC"],
        stack["contracts"]["DepositFactory"].lower(),
    ):
        response = await http.post(
            f"/v1/payment_intents/{funded['id']}/refunds", json={"amount": "1000", "address": address}, headers=merchant.headers
        )
        error = assert_error(response, 400, code="parameter_invalid")
        assert error["param"] == "address", (address, error)
    assert await _refund_count(db_pool, funded["id"]) == 0


async def test_more_than_is_refundable_is_409_and_creates_nothing(http, merchant, funded, db_pool):
    response = await http.post(
        f"/v1/payment_intents/{funded['id']}/refunds", json={"amount": str(DUE + EXCESS + 1), "address": CHECKSUMMED}, headers=merchant.headers
    )
    error = assert_error(response, 409, code="amount_too_large")
    assert error["param"] == "amount" and str(DUE + EXCESS) in error["message"]
    open_intent = await _intent(http, merchant)
    response = await http.post(
        f"/v1/payment_intents/{open_intent['id']}/refunds", json={"amount": "1", "address": CHECKSUMMED}, headers=merchant.headers
    )
    assert_error(response, 409, code="nothing_to_refund")
    assert await _refund_count(db_pool, funded["id"]) == 0 and await _refund_count(db_pool, open_intent["id"]) == 0


async def test_unknown_or_another_tenants_intent_and_refund_are_404(http, merchant, funded, admin_headers, db_pool):
    body = {"amount": "1000", "address": CHECKSUMMED}
    assert_error(await http.post("/v1/payment_intents/pi_000000000000000000000000/refunds", json=body, headers=merchant.headers), 404, code="resource_missing")
    other = await create_tenant(http, admin_headers, kind="merchant")
    assert_error(await http.post(f"/v1/payment_intents/{funded['id']}/refunds", json=body, headers=other.headers), 404, code="resource_missing")
    assert_error(await http.get(f"/v1/payment_intents/{funded['id']}/refunds", headers=other.headers), 404, code="resource_missing")
    assert_error(await http.get("/v1/refunds/re_000000000000000000000000", headers=merchant.headers), 404, code="resource_missing")
    assert await _refund_count(db_pool, funded["id"]) == 0


class _RefusingTemporal:
    """A Temporal client whose workflow starts fail (an RPC error, a timeout)."""

    async def start_workflow(self, *args, **kwargs):
        raise RuntimeError("unavailable")


async def test_a_workflow_that_cannot_start_leaves_no_refund(stack, api_settings, db_pool, http, merchant, funded):
    app = create_app(settings_for_stack(stack), api_settings, pool=db_pool, temporal_client=_RefusingTemporal())
    async with app.router.lifespan_context(app), make_client(app) as refusing:
        response = await refusing.post(
            f"/v1/payment_intents/{funded['id']}/refunds", json={"amount": "1000", "address": CHECKSUMMED}, headers=merchant.headers
        )
    assert_error(response, 503, code="temporal_unavailable", type="api_error")
    # Inserted, then rolled back with the failed start; the intent's row is not left locked.
    assert await _refund_count(db_pool, funded["id"]) == 0
    assert (await http.get(f"/v1/payment_intents/{funded['id']}/refunds", headers=merchant.headers)).json()["data"] == []
    async with db_pool.acquire() as connection, connection.transaction():
        await connection.execute("SET LOCAL lock_timeout = 2000")
        await connection.execute("SELECT 1 FROM payment_intents WHERE id = $1 FOR UPDATE", funded["id"])


# ---------------------------------------------------------------------------- lists
async def test_lists_page_and_filter(http, merchant, stack, db_pool):
    intent = await _paid_intent(http, merchant, stack)
    customer = _customer()
    created = []
    for amount in ("1000", "2000", "3000"):
        response = await http.post(f"/v1/payment_intents/{intent['id']}/refunds", json={"amount": amount, "address": customer}, headers=merchant.headers)
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
    newest_first = list(reversed(created))
    for path, params in ((f"/v1/payment_intents/{intent['id']}/refunds", {}), ("/v1/refunds", {"payment_intent": intent["id"]})):
        whole = (await http.get(path, params={**params, "limit": 100}, headers=merchant.headers)).json()
        assert whole["object"] == "list" and whole["url"] == path and not whole["has_more"]
        assert [refund["id"] for refund in whole["data"]] == newest_first
        seen, cursor = [], {}
        while True:
            page = (await http.get(path, params={**params, "limit": 1, **cursor}, headers=merchant.headers)).json()
            seen += [refund["id"] for refund in page["data"]]
            if not page["has_more"]:
                break
            cursor = {"starting_after": page["data"][-1]["id"]}
        assert seen == newest_first
        back = (await http.get(path, params={**params, "limit": 2, "ending_before": created[0]}, headers=merchant.headers)).json()
        assert [refund["id"] for refund in back["data"]] == newest_first[:2]
    everything = (await http.get("/v1/refunds", params={"limit": 100}, headers=merchant.headers)).json()["data"]
    assert set(created) <= {refund["id"] for refund in everything}
    for refund_id in created:
        await _poll(http, f"/v1/refunds/{refund_id}", merchant.headers, lambda body: body["status"] == "succeeded", stack=stack)
    succeeded = (await http.get("/v1/refunds", params={"payment_intent": intent["id"], "status": "succeeded"}, headers=merchant.headers)).json()
    assert len(succeeded["data"]) == 3
    pending = (await http.get("/v1/refunds", params={"payment_intent": intent["id"], "status": "pending"}, headers=merchant.headers)).json()
    assert pending["data"] == []
    assert_error(await http.get("/v1/refunds", params={"status": "lost"}, headers=merchant.headers), 400)
    assert_error(await http.get("/v1/refunds", params={"limit": 101}, headers=merchant.headers), 400)
    assert _usdc_balance(stack, customer) == 6000
