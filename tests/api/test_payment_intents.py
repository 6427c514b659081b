"""Payment intents over HTTP, end to end: the in-process app with a real Temporal client, the
session stack's worker (which runs PaymentIntentWorkflow on the shared anvil), and real payments
from the stack's customer account."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from eth_account import Account
from web3 import Web3

from api.app import create_app
from contracts import load_artifact
from db.settings import Settings
from tests.api.conftest import create_tenant, make_client, settings_for_stack
from tests.api.helpers import assert_error

BODY = {"amount": "2500000", "asset": "usdc", "description": "Order 42", "metadata": {"order": "42"}}


@pytest.fixture
async def merchant(http, admin_headers):
    handle = await create_tenant(http, admin_headers, kind="merchant", fee_bps=100)
    return handle


async def _count(db_pool, tenant_id: str) -> int:
    return await db_pool.fetchval("SELECT count(*) FROM payment_intents WHERE tenant_id = $1", tenant_id)


async def _create(http, merchant, **overrides) -> dict:
    response = await http.post("/v1/payment_intents", json={**BODY, **overrides}, headers=merchant.headers)
    assert response.status_code == 201, response.text
    return response.json()


def _pay(stack, *, to: str, amount: int) -> None:
    w3 = Web3(Web3.HTTPProvider(stack["rpc_url"], request_kwargs={"timeout": 10}))
    sender = Account.from_key(stack["accounts"]["customer"]["private_key"])
    token = w3.eth.contract(address=w3.to_checksum_address(stack["contracts"]["TestUSDC"]), abi=load_artifact("TestUSDC").abi)
    tx = token.functions.transfer(w3.to_checksum_address(to), amount).build_transaction(
        {"from": sender.address, "nonce": w3.eth.get_transaction_count(sender.address, "pending"), "chainId": w3.eth.chain_id}
    )
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction))
    assert receipt["status"] == 1


def _mine(stack, blocks: int = 1) -> None:
    Web3(Web3.HTTPProvider(stack["rpc_url"])).provider.make_request("anvil_mine", [hex(blocks)])


async def _wait_for(http, merchant, intent_id: str, predicate, *, stack=None, timeout_s: float = 60) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        body = (await http.get(f"/v1/payment_intents/{intent_id}", headers=merchant.headers)).json()
        if predicate(body):
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"intent never reached the expected state: {body}")
        if stack is not None:
            _mine(stack)
        await asyncio.sleep(0.5)


# ---------------------------------------------------------------------------- create
def test_the_api_model_answers_the_one_serializers_object_unchanged():
    """PaymentIntentRead re-serialises domain.events.payment_intent_object without changing a character
    (its datetime fields included), so GET and the events' `data` agree."""
    from api.schemas_payment_intents import PaymentIntentRead
    from db.payment_intents import IntentPayment, StoredIntent, stored_intent_object

    for microsecond in (0, 120_000):
        now = datetime(2030, 1, 2, 3, 4, 5, microsecond, tzinfo=timezone.utc)
        intent = StoredIntent(
            id="pi_" + "a" * 24, tenant_id="ten_1", status="succeeded", chain_id=31337, asset="usdc",
            token_address="0x5fbdb2315678afecb367f032d93f642f64180aa3", deposit_address="0xdd090c50277e79fe05e0e4f3b4121a4e83f6220c",
            amount=10, amount_received=12, amount_refundable=2, amount_refunded=0, amount_swept=0, fee=1, net=9, fee_bps=100,
            confirmations_required=3, description=None, metadata={}, success_url=None, cancel_url=None, client_secret_hash="h",
            expires_at=now + timedelta(hours=1), created_at=now, updated_at=now,
            payments=(IntentPayment(tx_hash="0x" + "ab" * 32, log_index=0, amount=12, block_number=7, block_hash="0x" + "cd" * 32,
                                    sender="0x" + "11" * 20, orphaned=False, late=False),),
        )
        confirmations = {f"{'0x' + 'ab' * 32}:0": 4}
        expected = stored_intent_object(intent, confirmations=confirmations)
        assert PaymentIntentRead(**PaymentIntentRead.fields_of(intent, confirmations)).model_dump(mode="json") == expected
        assert expected["amount_swept"] == "0" and expected["payments"][0]["confirmations"] == 4


async def test_create_answers_the_intent_with_a_deposit_address(http, merchant, stack, db_pool):
    intent = await _create(http, merchant)
    token = stack["contracts"]["TestUSDC"]
    assert intent["object"] == "payment_intent" and intent["id"].startswith("pi_")
    assert intent["status"] == "requires_payment"
    assert intent["amount"] == "2500000" and intent["amount_received"] == "0" and intent["amount_remaining"] == "2500000"
    assert intent["deposit_address"].startswith("0x") and len(intent["deposit_address"]) == 42
    assert intent["chain_id"] == 31337 and intent["asset"] == "usdc" and intent["token_address"] == Web3.to_checksum_address(token)
    assert intent["payment_uri"] == (
        f"ethereum:{intent['token_address']}@31337/transfer?address={intent['deposit_address']}&uint256=2500000"
    )
    assert intent["client_secret"].startswith(f"{intent['id']}_secret_")
    assert intent["checkout_url"].endswith(f"/checkout/{intent['id']}?client_secret={intent['client_secret']}")
    assert intent["metadata"] == {"order": "42"} and intent["description"] == "Order 42"
    assert intent["confirmations_required"] == 1  # $25.00: below the default policy's $100 tier
    assert intent["fee_bps"] == 100 and intent["fee"] is None and intent["payments"] == []
    expires_at = datetime.fromisoformat(intent["expires_at"])
    assert timedelta(minutes=59) < expires_at - datetime.now(timezone.utc) <= timedelta(hours=1)
    stored = await db_pool.fetchrow("SELECT client_secret_hash, tenant_id FROM payment_intents WHERE id = $1", intent["id"])
    assert stored["tenant_id"] == merchant.id
    assert stored["client_secret_hash"] == hashlib.sha256(intent["client_secret"].encode()).hexdigest()
    fetched = (await http.get(f"/v1/payment_intents/{intent['id']}", headers=merchant.headers)).json()
    assert fetched["deposit_address"] == intent["deposit_address"] and "client_secret" not in fetched


async def test_the_deposit_address_is_the_create2_prediction_and_findable_in_temporal(http, merchant, stack, temporal_client):
    """The API computes the CREATE2 address (no node, no activity) and starts the workflow with it
    as a search attribute: ops find the intent by the address a customer paid."""
    from contracts.deposit import intent_deposit_address

    intent = await _create(http, merchant)
    expected, _ = intent_deposit_address(
        intent["id"], factory=stack["contracts"]["DepositFactory"], implementation=stack["contracts"]["DepositForwarder"]
    )
    assert intent["deposit_address"] == expected  # EIP-55, like every address the API shows
    query = f"SettleDepositAddress = '{expected.lower()}' AND SettleChain = 'evm:31337' AND SettleTenant = '{merchant.id}'"
    deadline = asyncio.get_running_loop().time() + 15
    found: list[str] = []
    while not found and asyncio.get_running_loop().time() < deadline:
        found = [execution.id async for execution in temporal_client.list_workflows(query)]
        await asyncio.sleep(0.2)
    assert found == [intent["id"]]


async def test_same_idempotency_key_is_one_intent(http, merchant, db_pool):
    headers = {**merchant.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await http.post("/v1/payment_intents", json=BODY, headers=headers)
    second = await http.post("/v1/payment_intents", json=BODY, headers=headers)
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert second.headers["idempotent-replayed"] == "true" and first.json()["id"] == second.json()["id"]
    assert await _count(db_pool, merchant.id) == 1
    other = await http.post("/v1/payment_intents", json={**BODY, "amount": "2500001"}, headers=headers)
    assert_error(other, 409, code="idempotency_key_reused")
    assert await _count(db_pool, merchant.id) == 1


async def test_a_replayed_create_returns_the_client_secret_kept_sealed_at_rest(http, merchant, db_pool):
    """A client whose create timed out retries with its key and gets the client secret; the
    idempotency row keeps it only sealed (AES-GCM), bound to its tenant, key and first request."""
    key = str(uuid.uuid4())
    headers = {**merchant.headers, "Idempotency-Key": key}
    first = (await http.post("/v1/payment_intents", json=BODY, headers=headers)).json()
    secret = first["client_secret"]
    row = await db_pool.fetchrow("SELECT response_body FROM idempotency_keys WHERE owner = $1 AND key = $2", merchant.id, key)
    stored = bytes(row["response_body"])
    assert secret.encode() not in stored and secret.split("_secret_")[1].encode() not in stored
    assert json.loads(stored)["client_secret"].startswith("sealed:") and json.loads(stored)["checkout_url"].startswith("sealed:")

    replay = await http.post("/v1/payment_intents", json=BODY, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["client_secret"] == secret and replay.json()["checkout_url"] == first["checkout_url"]
    public = await http.get(f"/v1/payment_intents/{first['id']}/public", params={"client_secret": replay.json()["client_secret"]})
    assert public.status_code == 200, public.text

    # The sealed row copied under another key of the same tenant does not open there.
    other_key = str(uuid.uuid4())
    assert (await http.post("/v1/payment_intents", json=BODY, headers={**merchant.headers, "Idempotency-Key": other_key})).status_code == 201
    await db_pool.execute("UPDATE idempotency_keys SET response_body = $3 WHERE owner = $1 AND key = $2", merchant.id, other_key, stored)
    copied = await http.post("/v1/payment_intents", json=BODY, headers={**merchant.headers, "Idempotency-Key": other_key})
    assert copied.headers["idempotent-replayed"] == "true" and copied.json()["id"] == first["id"]
    assert copied.json()["client_secret"] is None and copied.json()["checkout_url"] is None


@pytest.mark.parametrize(
    "change, param",
    [
        ({"amount": 0}, "amount"),
        ({"amount": -1}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"amount": 1.0}, "amount"),
        ({"amount": "1.5"}, "amount"),
        ({"amount": "1e6"}, "amount"),
        ({"amount": " 100"}, "amount"),
        ({"amount": 10**40}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": None}, "amount"),
        ({"asset": "doge"}, "asset"),
        ({"metadata": {f"k{i}": "v" for i in range(21)}}, "metadata"),
        ({"metadata": {"k" * 41: "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 501}}, "metadata"),
        ({"metadata": {"k": 1}}, "metadata.k"),
        ({"description": "d" * 501}, "description"),
        ({"success_url": "javascript:x"}, "success_url"),
        ({"cancel_url": "ftp://example.com/x"}, "cancel_url"),
        ({"success_url": "https://" + "a" * 2048}, "success_url"),
        ({"expires_in": 5}, "expires_in"),
        ({"expires_in": 7 * 86400 + 1}, "expires_in"),
        ({"confirmations": 0}, "confirmations"),
        ({"confirmations": 1001}, "confirmations"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_bad_input_is_400_and_creates_nothing(http, merchant, db_pool, change, param):
    error = assert_error(await http.post("/v1/payment_intents", json={**BODY, **change}, headers=merchant.headers), 400)
    assert error["param"] == param, error
    assert await _count(db_pool, merchant.id) == 0


async def test_a_missing_amount_is_400(http, merchant):
    error = assert_error(await http.post("/v1/payment_intents", json={"asset": "usdc"}, headers=merchant.headers), 400)
    assert error["param"] == "amount"


# ---------------------------------------------------------------------------- read
async def test_list_pages_and_filters(http, merchant):
    since = datetime.now(timezone.utc) - timedelta(milliseconds=1)
    created = [await _create(http, merchant, amount=str(1_000_000 + index)) for index in range(3)]
    canceled = (await http.post(f"/v1/payment_intents/{created[0]['id']}/cancel", headers=merchant.headers)).json()
    assert canceled["status"] == "canceled"
    whole = (await http.get("/v1/payment_intents", params={"limit": 100}, headers=merchant.headers)).json()
    assert whole["object"] == "list" and whole["url"] == "/v1/payment_intents" and not whole["has_more"]
    assert [item["id"] for item in whole["data"]] == [item["id"] for item in reversed(created)]
    seen, cursor = [], {}
    while True:
        page = (await http.get("/v1/payment_intents", params={"limit": 1, **cursor}, headers=merchant.headers)).json()
        seen += [item["id"] for item in page["data"]]
        if not page["has_more"]:
            break
        cursor = {"starting_after": page["data"][-1]["id"]}
    assert seen == [item["id"] for item in whole["data"]]
    only = (await http.get("/v1/payment_intents", params={"status": "canceled"}, headers=merchant.headers)).json()["data"]
    assert [item["id"] for item in only] == [created[0]["id"]]
    newer = (await http.get("/v1/payment_intents", params={"created_gte": created[1]["created_at"]}, headers=merchant.headers)).json()
    assert {item["id"] for item in newer["data"]} == {created[1]["id"], created[2]["id"]}
    older = (await http.get("/v1/payment_intents", params={"created_lte": since.isoformat()}, headers=merchant.headers)).json()
    assert older["data"] == []
    assert_error(await http.get("/v1/payment_intents", params={"status": "lost"}, headers=merchant.headers), 400)


async def test_another_tenants_intent_is_404(http, merchant, admin_headers):
    intent = await _create(http, merchant)
    other = await create_tenant(http, admin_headers, kind="merchant")
    assert_error(await http.get(f"/v1/payment_intents/{intent['id']}", headers=other.headers), 404, code="resource_missing")
    assert_error(await http.post(f"/v1/payment_intents/{intent['id']}/cancel", headers=other.headers), 404, code="resource_missing")
    assert_error(await http.get("/v1/payment_intents/pi_000000000000000000000000", headers=merchant.headers), 404)


# ---------------------------------------------------------------------------- cancel
async def test_cancel_then_cancel_again_is_409(http, merchant):
    intent = await _create(http, merchant)
    canceled = await http.post(f"/v1/payment_intents/{intent['id']}/cancel", headers=merchant.headers)
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    fetched = (await http.get(f"/v1/payment_intents/{intent['id']}", headers=merchant.headers)).json()
    assert fetched["status"] == "canceled"
    error = assert_error(await http.post(f"/v1/payment_intents/{intent['id']}/cancel", headers=merchant.headers), 409, code="intent_terminal")
    assert "canceled" in error["message"]
    events = (await http.get("/v1/events", params={"object_id": intent["id"]}, headers=merchant.headers)).json()["data"]
    assert "payment_intent.canceled" in {event["type"] for event in events}


# ---------------------------------------------------------------------------- paid
async def test_paid_intent_succeeds_cannot_be_canceled_and_shows_fee(http, merchant, stack):
    intent = await _create(http, merchant, amount="3000000", confirmations=1, success_url="https://shop.test/ok", cancel_url="https://shop.test/no")
    assert intent["confirmations_required"] == 1
    _pay(stack, to=intent["deposit_address"], amount=3_000_000)
    seen = await _wait_for(http, merchant, intent["id"], lambda body: body["status"] != "requires_payment", stack=stack)
    if seen["status"] == "processing":
        assert_error(await http.post(f"/v1/payment_intents/{intent['id']}/cancel", headers=merchant.headers), 409, code="payment_received")
    done = await _wait_for(http, merchant, intent["id"], lambda body: body["status"] == "succeeded", stack=stack)
    assert done["amount_received"] == "3000000" and done["amount_remaining"] == "0"
    assert done["fee"] == "30000" and done["net"] == "2970000"
    assert len(done["payments"]) == 1 and done["payments"][0]["amount"] == "3000000"
    error = assert_error(await http.post(f"/v1/payment_intents/{intent['id']}/cancel", headers=merchant.headers), 409)
    assert error["code"] in {"intent_terminal", "payment_received"}

    # The events the workflow recorded, listed and retrieved.
    events = (await http.get("/v1/events", params={"object_id": intent["id"], "limit": 100}, headers=merchant.headers)).json()
    types = {event["type"] for event in events["data"]}
    assert "payment_intent.succeeded" in types, types
    succeeded = next(event for event in events["data"] if event["type"] == "payment_intent.succeeded")
    one = await http.get(f"/v1/events/{succeeded['id']}", headers=merchant.headers)
    assert one.status_code == 200 and one.json()["data"]["id"] == intent["id"]
    # One serializer (domain.events.payment_intent_object): the latest event's object is what GET
    # answers, but for what moves on without an event (the sweep; confirmations as blocks come).
    latest, now = events["data"][0]["data"], (await http.get(f"/v1/payment_intents/{intent['id']}", headers=merchant.headers)).json()
    assert latest["status"] == "succeeded" and set(latest) == set(now)
    moving = {"amount_swept", "payments"}
    assert {k: v for k, v in latest.items() if k not in moving} == {k: v for k, v in now.items() if k not in moving}
    assert latest["amount_swept"].isdigit() and int(latest["amount_swept"]) <= int(now["amount_swept"])
    assert [{**p, "confirmations": None} for p in latest["payments"]] == [{**p, "confirmations": None} for p in now["payments"]]
    assert 1 <= latest["payments"][0]["confirmations"] <= (now["payments"][0]["confirmations"] or latest["payments"][0]["confirmations"])
    assert latest["deposit_address"] == Web3.to_checksum_address(latest["deposit_address"]) and latest["created_at"].endswith("Z")
    typed = (await http.get("/v1/events", params={"type": "payment_intent.succeeded", "limit": 100}, headers=merchant.headers)).json()
    assert succeeded["id"] in {event["id"] for event in typed["data"]} and all(e["type"] == "payment_intent.succeeded" for e in typed["data"])
    page = (await http.get("/v1/events", params={"object_id": intent["id"], "limit": 1}, headers=merchant.headers)).json()
    if page["has_more"]:
        following = await http.get("/v1/events", params={"object_id": intent["id"], "limit": 1, "starting_after": page["data"][0]["id"]}, headers=merchant.headers)
        assert following.status_code == 200 and following.json()["data"][0]["id"] != page["data"][0]["id"]

    # The checkout page's view: no key, the client secret, nothing of the merchant's side.
    public = await http.get(f"/v1/payment_intents/{intent['id']}/public", params={"client_secret": intent["client_secret"]})
    assert public.status_code == 200, public.text
    view = public.json()
    assert view["status"] == "succeeded" and view["amount"] == "3000000" and view["payment_uri"] == intent["payment_uri"]
    assert view["success_url"] == "https://shop.test/ok" and view["cancel_url"] == "https://shop.test/no"
    assert view["payments"][0]["confirmations"] is None or view["payments"][0]["confirmations"] >= 1
    for hidden in ("fee", "net", "fee_bps", "metadata", "description", "tenant_id", "client_secret"):
        assert hidden not in view
    assert merchant.id not in public.text and "30000" not in public.text.replace("3000000", "")


async def test_public_view_needs_the_right_secret(http, merchant, admin_headers):
    intent = await _create(http, merchant)
    path = f"/v1/payment_intents/{intent['id']}/public"
    ok = await http.get(path, params={"client_secret": intent["client_secret"]})
    assert ok.status_code == 200 and ok.json()["status"] == "requires_payment" and ok.json()["confirmations_required"] == 1
    assert "fee" not in ok.json() and "metadata" not in ok.json()
    wrong = intent["client_secret"][:-2] + ("AA" if not intent["client_secret"].endswith("AA") else "BB")
    assert_error(await http.get(path, params={"client_secret": wrong}), 404, code="resource_missing")
    assert_error(await http.get(path), 404, code="resource_missing")
    other = await _create(http, merchant)
    assert_error(await http.get(path, params={"client_secret": other["client_secret"]}), 404, code="resource_missing")
    assert_error(await http.get("/v1/payment_intents/pi_000000000000000000000000/public", params={"client_secret": "x"}), 404)


# ---------------------------------------------------------------------------- temporal down
async def test_temporal_unreachable_the_app_starts_and_intents_are_503(stack, api_settings, db_pool, admin_headers):
    settings = settings_for_stack(stack).model_copy(update={"temporal_address": "127.0.0.1:1"})
    assert isinstance(settings, Settings)
    app = create_app(settings, api_settings, pool=db_pool)
    async with app.router.lifespan_context(app), make_client(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        tenant = await create_tenant(client, admin_headers)
        assert_error(await client.post("/v1/payment_intents", json=BODY, headers=tenant.headers), 503, code="temporal_unavailable", type="api_error")
        listed = await client.get("/v1/payment_intents", headers=tenant.headers)
        assert listed.status_code == 200 and listed.json()["data"] == []


async def test_confirmations_follow_the_policy_the_tenants_override_and_the_body(http, admin_headers, merchant):
    assert (await _create(http, merchant, amount="250000000"))["confirmations_required"] == 12  # $250: the middle tier
    strict = await create_tenant(
        http,
        admin_headers,
        kind="merchant",
        confirmation_policy={"tiers": [{"amount_base_units_min": 0, "confirmations_min": 3}, {"amount_base_units_min": 100_000_000, "confirmations_min": 7}]},
    )
    assert (await _create(http, strict, amount="2500000"))["confirmations_required"] == 3
    assert (await _create(http, strict, amount="250000000"))["confirmations_required"] == 7
    # An intent may ask for more than its floor, never fewer: the floor is the platform's.
    assert (await _create(http, strict, amount="250000000", confirmations=9))["confirmations_required"] == 9
    before = (await http.get("/v1/payment_intents", headers=strict.headers, params={"limit": 100})).json()["data"]
    for tenant, amount, requested, floor in ((strict, "250000000", 5, 7), (merchant, "250000000", 1, 12)):
        response = await http.post(
            "/v1/payment_intents", headers=tenant.headers, json={"amount": amount, "asset": "usdc", "confirmations": requested}
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == "confirmations" and f"at least {floor}" in error["message"]
    assert (await http.get("/v1/payment_intents", headers=strict.headers, params={"limit": 100})).json()["data"] == before
