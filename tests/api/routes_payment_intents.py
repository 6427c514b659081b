"""The payment-intent and event routes of the registry (`tests/api/routes.py` adds them to
ROUTES). Their valid calls create real intents through the session stack's Temporal and worker.

`GET /v1/payment_intents/{intent_id}/public` is not a tenant route (no API key: a client secret),
so the registry's auth/scope/isolation tests cannot express it: it is listed in PUBLIC_ROUTE_IDS
and tested directly in tests/api/test_payment_intents.py.
"""

from __future__ import annotations

from typing import Any

from tests.api.routes import Call, RouteCase, World, _bad_page, _expect

PUBLIC_ROUTE_IDS = frozenset({"GET /v1/payment_intents/{intent_id}/public"})

INTENT_BODY = {"amount": "1000000", "asset": "usdc", "description": "walked"}


async def create_intent(world: World, *, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    response = await world.client.post("/v1/payment_intents", json={**INTENT_BODY, **body}, headers=headers or world.owner.headers)
    return _expect(response, 201)


async def _create_call(world: World) -> Call:
    return Call("POST", "/v1/payment_intents", json=dict(INTENT_BODY))


async def _create_invalid(world: World) -> Call:
    return Call("POST", "/v1/payment_intents", json={"amount": 1.5, "asset": "usdc"})


async def _list_call(world: World) -> Call:
    return Call("GET", "/v1/payment_intents", params={"limit": 3})


async def _get_call(world: World) -> Call:
    intent = await create_intent(world)
    return Call("GET", f"/v1/payment_intents/{intent['id']}")


async def _get_invalid(world: World) -> Call:
    return Call("GET", "/v1/payment_intents/pi_%27%3B--")


async def _cancel_call(world: World) -> Call:
    intent = await create_intent(world)
    return Call("POST", f"/v1/payment_intents/{intent['id']}/cancel")


async def _cancel_invalid(world: World) -> Call:
    return Call("POST", "/v1/payment_intents/not-an-id!/cancel")


async def _list_events_call(world: World) -> Call:
    return Call("GET", "/v1/events", params={"limit": 3})


async def _owner_event(world: World) -> dict[str, Any]:
    intent = await create_intent(world)
    events = _expect(await world.client.get("/v1/events", params={"object_id": intent["id"]}, headers=world.owner.headers), 200)["data"]
    assert events, f"no event for {intent['id']}"
    return events[0]


async def _get_event_call(world: World) -> Call:
    return Call("GET", f"/v1/events/{(await _owner_event(world))['id']}")


async def _get_event_invalid(world: World) -> Call:
    return Call("GET", "/v1/events/evt_%27%3B--")


# ---------------------------------------------------------------------------- isolation
async def _isolation_create(world: World) -> None:
    created = await create_intent(world, headers=world.intruder.headers)
    _expect(await world.client.get(f"/v1/payment_intents/{created['id']}", headers=world.owner.headers), 404)
    # The same Idempotency-Key from two tenants is two intents.
    key = {"Idempotency-Key": "shared-key-" + created["id"]}
    mine = _expect(await world.client.post("/v1/payment_intents", json=INTENT_BODY, headers={**world.owner.headers, **key}), 201)
    theirs = _expect(await world.client.post("/v1/payment_intents", json=INTENT_BODY, headers={**world.intruder.headers, **key}), 201)
    assert mine["id"] != theirs["id"]


async def _isolation_list(world: World) -> None:
    owned = await create_intent(world)
    listed = _expect(await world.client.get("/v1/payment_intents", params={"limit": 100}, headers=world.intruder.headers), 200)["data"]
    assert owned["id"] not in {intent["id"] for intent in listed}
    body = _expect(await world.client.get("/v1/payment_intents", params={"starting_after": owned["id"]}, headers=world.intruder.headers), 400)
    assert body["error"]["code"] == "resource_missing" and body["error"]["param"] == "starting_after"


async def _isolation_get(world: World) -> None:
    owned = await create_intent(world)
    body = _expect(await world.client.get(f"/v1/payment_intents/{owned['id']}", headers=world.intruder.headers), 404)
    assert body["error"]["code"] == "resource_missing"


async def _isolation_cancel(world: World) -> None:
    owned = await create_intent(world)
    _expect(await world.client.post(f"/v1/payment_intents/{owned['id']}/cancel", headers=world.intruder.headers), 404)
    after = _expect(await world.client.get(f"/v1/payment_intents/{owned['id']}", headers=world.owner.headers), 200)
    assert after["status"] == "requires_payment"


async def _isolation_list_events(world: World) -> None:
    event = await _owner_event(world)
    listed = _expect(await world.client.get("/v1/events", params={"limit": 100}, headers=world.intruder.headers), 200)["data"]
    assert event["id"] not in {item["id"] for item in listed}
    filtered = _expect(await world.client.get("/v1/events", params={"object_id": event["object_id"]}, headers=world.intruder.headers), 200)
    assert filtered["data"] == []


async def _isolation_get_event(world: World) -> None:
    event = await _owner_event(world)
    body = _expect(await world.client.get(f"/v1/events/{event['id']}", headers=world.intruder.headers), 404)
    assert body["error"]["code"] == "resource_missing"


INTENT_ROUTES: list[RouteCase] = [
    RouteCase("POST", "/v1/payment_intents", "tenant", "payment_intents:write", _create_call, 201, _create_invalid, _isolation_create),
    # Not `list_route`: the shared pagination tests seed API keys; tests/api/test_payment_intents.py pages these lists.
    RouteCase("GET", "/v1/payment_intents", "tenant", "payment_intents:read", _list_call, 200, lambda world: _bad_page("/v1/payment_intents"), _isolation_list),
    RouteCase("GET", "/v1/payment_intents/{intent_id}", "tenant", "payment_intents:read", _get_call, 200, _get_invalid, _isolation_get),
    RouteCase("POST", "/v1/payment_intents/{intent_id}/cancel", "tenant", "payment_intents:write", _cancel_call, 200, _cancel_invalid, _isolation_cancel),
    RouteCase("GET", "/v1/events", "tenant", "payment_intents:read", _list_events_call, 200, lambda world: _bad_page("/v1/events"), _isolation_list_events),
    RouteCase("GET", "/v1/events/{event_id}", "tenant", "payment_intents:read", _get_event_call, 200, _get_event_invalid, _isolation_get_event),
]
