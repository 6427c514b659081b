"""The refund routes of the registry (`tests/api/routes.py` adds them to ROUTES). A valid refund
needs money to refund: the owner's first one pays an intent on the session stack's anvil (1.00
USDC due, 2.00 paid) and later calls refund 0.001 of it at a time; the stack's worker runs them."""

from __future__ import annotations

import asyncio
from typing import Any

from eth_account import Account
from web3 import Web3

from cli.stack import dev_accounts
from contracts import load_artifact
from tests.api.routes import Call, RouteCase, World, _bad_page, _expect, app_pool
from tests.api.routes_payment_intents import create_intent

CUSTOMER = "0x8626f6940E2eb28930eFb4CeF49B2d1F2C9C1199"
REFUND_BODY = {"amount": "1000", "address": CUSTOMER}
INTENT_DUE = 1_000_000
INTENT_PAID = 2_000_000
SETTLED_WAIT_S = 60.0

# Per owner tenant (each test has its own): an intent with money left to refund.
_funded: dict[str, str] = {}


def pay(world: World, *, to: str, amount: int) -> None:
    settings = world.client._transport.app.state.settings  # type: ignore[attr-defined]
    w3 = Web3(Web3.HTTPProvider(settings.rpc_url, request_kwargs={"timeout": 10}))
    sender = Account.from_key(dev_accounts()["customer"]["private_key"])
    token = w3.eth.contract(address=w3.to_checksum_address(settings.contracts["TestUSDC"]), abi=load_artifact("TestUSDC").abi)
    tx = token.functions.transfer(w3.to_checksum_address(to), amount).build_transaction(
        {"from": sender.address, "nonce": w3.eth.get_transaction_count(sender.address, "pending"), "chainId": w3.eth.chain_id}
    )
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction))
    assert receipt["status"] == 1
    # One more block: the payment's confirmations never wait for other traffic.
    w3.provider.make_request("anvil_mine", ["0x1"])


async def funded_intent(world: World) -> str:
    """The owner's intent that succeeded overpaid: 2.00 refundable in all (1.00 excess, 1.00 payment)."""
    intent_id = _funded.get(world.owner.id)
    if intent_id is not None:
        return intent_id
    intent = await create_intent(world, amount=str(INTENT_DUE), confirmations=1)
    pay(world, to=intent["deposit_address"], amount=INTENT_PAID)
    deadline = asyncio.get_running_loop().time() + SETTLED_WAIT_S
    while True:
        body = _expect(await world.client.get(f"/v1/payment_intents/{intent['id']}", headers=world.owner.headers), 200)
        if body["status"] == "succeeded":
            break
        assert asyncio.get_running_loop().time() < deadline, f"intent never succeeded: {body}"
        await asyncio.sleep(0.2)
    _funded[world.owner.id] = intent["id"]
    return intent["id"]


async def create_refund(world: World, **body: Any) -> dict[str, Any]:
    intent_id = await funded_intent(world)
    response = await world.client.post(f"/v1/payment_intents/{intent_id}/refunds", json={**REFUND_BODY, **body}, headers=world.owner.headers)
    return _expect(response, 201)


async def _create_call(world: World) -> Call:
    return Call("POST", f"/v1/payment_intents/{await funded_intent(world)}/refunds", json=dict(REFUND_BODY))


async def _create_invalid(world: World) -> Call:
    return Call("POST", "/v1/payment_intents/pi_doesnotexist00000000000/refunds", json={"amount": "1000", "address": "0x1234"})


async def _intent_list_call(world: World) -> Call:
    intent = await create_intent(world)
    return Call("GET", f"/v1/payment_intents/{intent['id']}/refunds", params={"limit": 3})


async def _intent_list_invalid(world: World) -> Call:
    intent = await create_intent(world)
    return await _bad_page(f"/v1/payment_intents/{intent['id']}/refunds")


async def _list_call(world: World) -> Call:
    return Call("GET", "/v1/refunds", params={"limit": 3})


async def _list_invalid(world: World) -> Call:
    return Call("GET", "/v1/refunds", params={"payment_intent": "pi_%27%3B--"})


async def _get_call(world: World) -> Call:
    return Call("GET", f"/v1/refunds/{(await create_refund(world))['id']}")


async def _get_invalid(world: World) -> Call:
    return Call("GET", "/v1/refunds/re_%27%3B--")


# ---------------------------------------------------------------------------- isolation
async def _refund_count(world: World, intent_id: str) -> int:
    return await app_pool(world).fetchval("SELECT count(*) FROM refunds WHERE intent_id = $1", intent_id)


async def _isolation_create(world: World) -> None:
    owned = await create_intent(world)
    body = _expect(
        await world.client.post(f"/v1/payment_intents/{owned['id']}/refunds", json=REFUND_BODY, headers=world.intruder.headers), 404
    )
    assert body["error"]["code"] == "resource_missing"
    assert await _refund_count(world, owned["id"]) == 0


async def _isolation_intent_list(world: World) -> None:
    owned = await create_intent(world)
    body = _expect(await world.client.get(f"/v1/payment_intents/{owned['id']}/refunds", headers=world.intruder.headers), 404)
    assert body["error"]["code"] == "resource_missing"


async def _isolation_list(world: World) -> None:
    refund = await create_refund(world)
    listed = _expect(await world.client.get("/v1/refunds", params={"limit": 100}, headers=world.intruder.headers), 200)["data"]
    assert refund["id"] not in {item["id"] for item in listed}
    filtered = _expect(
        await world.client.get("/v1/refunds", params={"payment_intent": refund["payment_intent"]}, headers=world.intruder.headers), 200
    )
    assert filtered["data"] == []
    body = _expect(await world.client.get("/v1/refunds", params={"starting_after": refund["id"]}, headers=world.intruder.headers), 400)
    assert body["error"]["code"] == "resource_missing" and body["error"]["param"] == "starting_after"


async def _isolation_get(world: World) -> None:
    refund = await create_refund(world)
    body = _expect(await world.client.get(f"/v1/refunds/{refund['id']}", headers=world.intruder.headers), 404)
    assert body["error"]["code"] == "resource_missing"


REFUND_ROUTES: list[RouteCase] = [
    RouteCase("POST", "/v1/payment_intents/{intent_id}/refunds", "tenant", "payment_intents:write", _create_call, 201, _create_invalid, _isolation_create),
    # Not `list_route`: the shared pagination tests seed API keys; tests/api/test_refunds.py pages these lists.
    RouteCase("GET", "/v1/payment_intents/{intent_id}/refunds", "tenant", "payment_intents:read", _intent_list_call, 200, _intent_list_invalid, _isolation_intent_list),
    RouteCase("GET", "/v1/refunds", "tenant", "payment_intents:read", _list_call, 200, _list_invalid, _isolation_list),
    RouteCase("GET", "/v1/refunds/{refund_id}", "tenant", "payment_intents:read", _get_call, 200, _get_invalid, _isolation_get),
]
