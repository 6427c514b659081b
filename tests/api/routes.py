"""Every `/v1` route, with what the convention tests need to call it: who may call it, the scope it
needs, a valid call for a tenant, and what another tenant must (not) see through it.

A new route fails `test_every_route_is_registered` until it is described here; then every
convention test (auth, scopes, errors, request ids, idempotency, rate limits, isolation) runs
against it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Literal

import httpx

from tests.api.conftest import TenantHandle, create_key

NO_BODY = object()


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = NO_BODY
    params: dict[str, Any] | None = None

    def kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.json is not NO_BODY:
            kwargs["json"] = self.json
        if self.params:
            kwargs["params"] = self.params
        return kwargs


async def send(client: httpx.AsyncClient, call: Call, headers: dict[str, str] | None = None) -> httpx.Response:
    return await client.request(call.method, call.path, headers=headers or {}, **call.kwargs())


@dataclass
class World:
    """Two tenants and a platform admin, for walking routes."""

    client: httpx.AsyncClient
    admin_headers: dict[str, str]
    owner: TenantHandle
    intruder: TenantHandle


@dataclass(frozen=True)
class RouteCase:
    method: str
    path: str
    auth: Literal["platform", "tenant"]
    scope: str | None
    # A call `owner` may make that succeeds (objects it needs are created on the way).
    valid_call: Callable[[World], Awaitable[Call]]
    success_status: int
    # A call with bad input that must be a 400, if the route takes input.
    invalid_call: Callable[[World], Awaitable[Call]] | None = None
    # The isolation check: `intruder` walks `owner`'s objects through this route.
    isolation: Callable[[World], Awaitable[None]] | None = None
    list_route: bool = False

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def _expect(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
    return response.json()


# ---------------------------------------------------------------------------- valid calls
async def _create_tenant_call(world: World) -> Call:
    return Call("POST", "/v1/tenants", json={"kind": "merchant", "name": "Walked merchant"})


async def _list_tenants_call(world: World) -> Call:
    return Call("GET", "/v1/tenants", params={"limit": 3})


async def _get_tenant_call(world: World) -> Call:
    return Call("GET", f"/v1/tenants/{world.owner.id}")


async def _patch_tenant_call(world: World) -> Call:
    return Call("PATCH", f"/v1/tenants/{world.owner.id}", json={"fee_bps": 125})


async def _get_own_tenant_call(world: World) -> Call:
    return Call("GET", "/v1/tenant")


async def _patch_own_tenant_call(world: World) -> Call:
    # The tenant's own settings only: its fee is the platform's (PATCH /v1/tenants/{id}).
    return Call("PATCH", "/v1/tenant", json={"name": "Walked tenant"})


async def _create_key_call(world: World) -> Call:
    # Publishable: any key that may write keys may create one (no scopes to out-grant).
    return Call("POST", "/v1/api_keys", json={"name": "walk", "type": "publishable"})


async def _list_keys_call(world: World) -> Call:
    return Call("GET", "/v1/api_keys", params={"limit": 5})


async def _get_key_call(world: World) -> Call:
    return Call("GET", f"/v1/api_keys/{world.owner.key_id}")


async def _publishable_key(world: World) -> dict[str, Any]:
    # Publishable: a key holding only `api_keys:write` may rotate or revoke it (it holds no scope
    # beyond checkout's); a key with scopes the caller lacks is refused (test_api_keys.py).
    return await create_key(world.client, world.owner, scopes=[], key_type="publishable", name="walk")


async def _rotate_key_call(world: World) -> Call:
    key = await _publishable_key(world)
    return Call("POST", f"/v1/api_keys/{key['id']}/rotate", json={"expires_in_s": 60})


async def _revoke_key_call(world: World) -> Call:
    key = await _publishable_key(world)
    return Call("POST", f"/v1/api_keys/{key['id']}/revoke")


async def _list_audit_call(world: World) -> Call:
    return Call("GET", "/v1/audit_events", params={"limit": 5})


# ---------------------------------------------------------------------------- invalid calls
async def _bad_page(path: str) -> Call:
    return Call("GET", path, params={"limit": 101})


async def _create_tenant_invalid(world: World) -> Call:
    return Call("POST", "/v1/tenants", json={"kind": "bank", "name": "x"})


async def _patch_tenant_invalid(world: World) -> Call:
    return Call("PATCH", f"/v1/tenants/{world.owner.id}", json={"fee_bps": 10_001})


async def _patch_invalid(world: World) -> Call:
    return Call("PATCH", "/v1/tenant", json={"payout_addresses": [{"chain_id": 1, "address": "0x" + "0" * 40}]})


async def _create_key_invalid(world: World) -> Call:
    return Call("POST", "/v1/api_keys", json={"name": "x", "scopes": ["everything:always"]})


async def _rotate_invalid(world: World) -> Call:
    return Call("POST", f"/v1/api_keys/{world.owner.key_id}/rotate", json={"expires_in_s": -1})


async def _revoke_invalid(world: World) -> Call:
    return Call("POST", "/v1/api_keys/not-an-id!/revoke")


async def _get_key_invalid(world: World) -> Call:
    return Call("GET", "/v1/api_keys/%00")


async def _get_tenant_invalid(world: World) -> Call:
    return Call("GET", "/v1/tenants/ten_%27%3B--")


# ---------------------------------------------------------------------------- isolation
async def _platform_only(world: World, call: Call) -> None:
    for handle in (world.owner, world.intruder):
        body = _expect(await send(world.client, call, handle.headers), 403)
        assert body["error"]["code"] == "platform_admin_required"


async def _isolation_create_tenant(world: World) -> None:
    await _platform_only(world, await _create_tenant_call(world))


async def _isolation_list_tenants(world: World) -> None:
    await _platform_only(world, await _list_tenants_call(world))


async def _isolation_get_tenant(world: World) -> None:
    await _platform_only(world, await _get_tenant_call(world))


async def _isolation_patch_tenant_platform(world: World) -> None:
    before = _expect(await world.client.get("/v1/tenant", headers=world.owner.headers), 200)
    await _platform_only(world, Call("PATCH", f"/v1/tenants/{world.owner.id}", json={"fee_bps": 777}))
    await _platform_only(world, Call("PATCH", f"/v1/tenants/{world.intruder.id}", json={"fee_bps": 0}))
    after = _expect(await world.client.get("/v1/tenant", headers=world.owner.headers), 200)
    assert after["fee_bps"] == before["fee_bps"] != 777


async def _isolation_own_tenant(world: World) -> None:
    body = _expect(await world.client.get("/v1/tenant", headers=world.intruder.headers), 200)
    assert body["id"] == world.intruder.id


async def _isolation_patch_tenant(world: World) -> None:
    before = _expect(await world.client.get("/v1/tenant", headers=world.owner.headers), 200)
    body = _expect(await world.client.patch("/v1/tenant", json={"name": "Intruder's rename"}, headers=world.intruder.headers), 200)
    assert body["id"] == world.intruder.id
    after = _expect(await world.client.get("/v1/tenant", headers=world.owner.headers), 200)
    assert after["name"] == before["name"] != "Intruder's rename"


async def _isolation_create_key(world: World) -> None:
    created = _expect(
        await world.client.post("/v1/api_keys", json={"name": "intruder's", "scopes": ["tenant:read"]}, headers=world.intruder.headers), 201
    )
    # The new key speaks for the intruder, never for the owner.
    me = _expect(await world.client.get("/v1/tenant", headers={"Authorization": f"Bearer {created['secret']}"}), 200)
    assert me["id"] == world.intruder.id
    _expect(await world.client.get(f"/v1/api_keys/{created['id']}", headers=world.owner.headers), 404)


async def _isolation_list_keys(world: World) -> None:
    owner_keys = {key["id"] for key in _expect(await world.client.get("/v1/api_keys", params={"limit": 100}, headers=world.owner.headers), 200)["data"]}
    intruder_keys = {key["id"] for key in _expect(await world.client.get("/v1/api_keys", params={"limit": 100}, headers=world.intruder.headers), 200)["data"]}
    assert owner_keys and intruder_keys and not owner_keys & intruder_keys
    # Another tenant's object as a cursor is "no such object", like one that does not exist.
    body = _expect(await world.client.get("/v1/api_keys", params={"starting_after": world.owner.key_id}, headers=world.intruder.headers), 400)
    assert body["error"]["code"] == "resource_missing" and body["error"]["param"] == "starting_after"


async def _isolation_get_key(world: World) -> None:
    body = _expect(await world.client.get(f"/v1/api_keys/{world.owner.key_id}", headers=world.intruder.headers), 404)
    assert body["error"]["code"] == "resource_missing"


async def _isolation_rotate_key(world: World) -> None:
    _expect(await world.client.post(f"/v1/api_keys/{world.owner.key_id}/rotate", json={}, headers=world.intruder.headers), 404)
    key = _expect(await world.client.get(f"/v1/api_keys/{world.owner.key_id}", headers=world.owner.headers), 200)
    assert key["status"] == "active" and key["rotated_to"] is None


async def _isolation_revoke_key(world: World) -> None:
    _expect(await world.client.post(f"/v1/api_keys/{world.owner.key_id}/revoke", headers=world.intruder.headers), 404)
    key = _expect(await world.client.get(f"/v1/api_keys/{world.owner.key_id}", headers=world.owner.headers), 200)
    assert key["status"] == "active"


async def _isolation_audit(world: World) -> None:
    owner_events = _expect(await world.client.get("/v1/audit_events", params={"limit": 100}, headers=world.owner.headers), 200)["data"]
    assert owner_events
    intruder_events = _expect(await world.client.get("/v1/audit_events", params={"limit": 100}, headers=world.intruder.headers), 200)["data"]
    assert not {event["id"] for event in owner_events} & {event["id"] for event in intruder_events}
    filtered = _expect(
        await world.client.get("/v1/audit_events", params={"object_id": world.owner.key_id}, headers=world.intruder.headers), 200
    )
    assert filtered["data"] == []


# ---------------------------------------------------------------------------- webhooks
# Never contacted: no worker delivers in the API tests (loopback is allowed in test deployments).
WEBHOOK_RECEIVER_URL = "http://127.0.0.1:9/settle-webhooks"


def app_pool(world: World) -> Any:
    """The pool of the app `world.client` talks to (ASGI transport), for objects only workers make."""
    return world.client._transport.app.state.pool  # type: ignore[attr-defined]


async def create_webhook_endpoint(client: httpx.AsyncClient, handle: TenantHandle, **fields: Any) -> dict[str, Any]:
    payload = {"url": WEBHOOK_RECEIVER_URL, "enabled_events": ["payment_intent.succeeded"], "description": "walk", **fields}
    return _expect(await client.post("/v1/webhook_endpoints", json=payload, headers=handle.headers), 201)


def _private_route(tenant_id: str) -> str:
    return f"api_test_{tenant_id}"


async def insert_event(pool: Any, *, tenant_id: str, event_type: str = "payment_intent.succeeded") -> str:
    """An event as a workflow would insert it; the trigger of migration 0005 queues it. The
    tenant is first moved to a dispatch route of its own, so a dispatcher another test runs on
    the default route never takes (and delivers) it: only `fan_out_tenant_events` does."""
    from db.webhook_dispatch import set_dispatch_route
    from tests.events import insert_test_event

    await set_dispatch_route(pool, tenant_id=tenant_id, route=_private_route(tenant_id))
    return await insert_test_event(pool, tenant_id=tenant_id, event_type=event_type, data={"object": "payment_intent"})


async def fan_out_tenant_events(pool: Any, *, tenant_id: str) -> None:
    """What the dispatcher does, for this tenant only: its events go through a route of its own."""
    from db.settings import WebhookSettings
    from db.secret_box import SecretBox
    from db.webhook_dispatch import fan_out_events

    route = _private_route(tenant_id)
    box = SecretBox(WebhookSettings().secret_encryption_keys())
    while await fan_out_events(pool, secret_box=box, route=route, batch_size_max=100):
        pass


async def webhook_delivery(world: World, handle: TenantHandle | None = None) -> tuple[dict[str, Any], str, str]:
    """An endpoint, an event it wants and the delivery between them: (endpoint, event id, delivery id)."""
    handle = handle or world.owner
    endpoint = await create_webhook_endpoint(world.client, handle)
    pool = app_pool(world)
    event_id = await insert_event(pool, tenant_id=handle.id)
    await fan_out_tenant_events(pool, tenant_id=handle.id)
    return endpoint, event_id, f"whd_{event_id}_{endpoint['id']}"


async def _create_webhook_call(world: World) -> Call:
    return Call("POST", "/v1/webhook_endpoints", json={"url": WEBHOOK_RECEIVER_URL, "enabled_events": ["*"], "description": "walk"})


async def _list_webhooks_call(world: World) -> Call:
    return Call("GET", "/v1/webhook_endpoints", params={"limit": 5})


async def _get_webhook_call(world: World) -> Call:
    endpoint = await create_webhook_endpoint(world.client, world.owner)
    return Call("GET", f"/v1/webhook_endpoints/{endpoint['id']}")


async def _patch_webhook_call(world: World) -> Call:
    endpoint = await create_webhook_endpoint(world.client, world.owner)
    return Call("PATCH", f"/v1/webhook_endpoints/{endpoint['id']}", json={"description": "changed", "enabled_events": ["*"]})


async def _delete_webhook_call(world: World) -> Call:
    endpoint = await create_webhook_endpoint(world.client, world.owner)
    return Call("DELETE", f"/v1/webhook_endpoints/{endpoint['id']}")


async def _rotate_webhook_call(world: World) -> Call:
    endpoint = await create_webhook_endpoint(world.client, world.owner)
    return Call("POST", f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret", json={"overlap_s": 60})


async def _endpoint_deliveries_call(world: World) -> Call:
    endpoint, _, _ = await webhook_delivery(world)
    return Call("GET", f"/v1/webhook_endpoints/{endpoint['id']}/deliveries", params={"limit": 5})


async def _event_deliveries_call(world: World) -> Call:
    _, event_id, _ = await webhook_delivery(world)
    return Call("GET", f"/v1/events/{event_id}/deliveries", params={"limit": 5})


async def _redeliver_call(world: World) -> Call:
    _, _, delivery_id = await webhook_delivery(world)
    return Call("POST", f"/v1/webhook_deliveries/{delivery_id}/redeliver")


async def _create_webhook_invalid(world: World) -> Call:
    return Call("POST", "/v1/webhook_endpoints", json={"url": "ftp://example.com/hooks", "enabled_events": ["*"]})


async def _get_webhook_invalid(world: World) -> Call:
    return Call("GET", "/v1/webhook_endpoints/%00")


async def _patch_webhook_invalid(world: World) -> Call:
    return Call("PATCH", "/v1/webhook_endpoints/we_DoesNotExist0000", json={"enabled_events": []})


async def _delete_webhook_invalid(world: World) -> Call:
    return Call("DELETE", "/v1/webhook_endpoints/not-an-id!")


async def _rotate_webhook_invalid(world: World) -> Call:
    return Call("POST", "/v1/webhook_endpoints/we_DoesNotExist0000/rotate_secret", json={"overlap_s": -1})


async def _redeliver_invalid(world: World) -> Call:
    return Call("POST", "/v1/webhook_deliveries/whd_not-a-delivery/redeliver")


async def _isolation_create_webhook(world: World) -> None:
    theirs = await create_webhook_endpoint(world.client, world.intruder)
    _expect(await world.client.get(f"/v1/webhook_endpoints/{theirs['id']}", headers=world.owner.headers), 404)
    listed = _expect(await world.client.get("/v1/webhook_endpoints", params={"limit": 100}, headers=world.owner.headers), 200)
    assert theirs["id"] not in {endpoint["id"] for endpoint in listed["data"]}


async def _isolation_list_webhooks(world: World) -> None:
    mine = await create_webhook_endpoint(world.client, world.owner)
    theirs = await create_webhook_endpoint(world.client, world.intruder)
    listed = _expect(await world.client.get("/v1/webhook_endpoints", params={"limit": 100}, headers=world.intruder.headers), 200)
    assert [endpoint["id"] for endpoint in listed["data"]] == [theirs["id"]]
    body = _expect(await world.client.get("/v1/webhook_endpoints", params={"starting_after": mine["id"]}, headers=world.intruder.headers), 400)
    assert body["error"]["code"] == "resource_missing" and body["error"]["param"] == "starting_after"


async def _isolation_get_webhook(world: World) -> None:
    mine = await create_webhook_endpoint(world.client, world.owner)
    body = _expect(await world.client.get(f"/v1/webhook_endpoints/{mine['id']}", headers=world.intruder.headers), 404)
    assert body["error"]["code"] == "resource_missing"


async def _isolation_patch_webhook(world: World) -> None:
    mine = await create_webhook_endpoint(world.client, world.owner)
    patch = {"url": "https://intruder.example/steal", "disabled": True}
    _expect(await world.client.patch(f"/v1/webhook_endpoints/{mine['id']}", json=patch, headers=world.intruder.headers), 404)
    after = _expect(await world.client.get(f"/v1/webhook_endpoints/{mine['id']}", headers=world.owner.headers), 200)
    assert after["url"] == mine["url"] and after["status"] == "enabled"


async def _isolation_delete_webhook(world: World) -> None:
    mine = await create_webhook_endpoint(world.client, world.owner)
    _expect(await world.client.delete(f"/v1/webhook_endpoints/{mine['id']}", headers=world.intruder.headers), 404)
    _expect(await world.client.get(f"/v1/webhook_endpoints/{mine['id']}", headers=world.owner.headers), 200)


async def _isolation_rotate_webhook(world: World) -> None:
    mine = await create_webhook_endpoint(world.client, world.owner)
    pool = app_pool(world)
    before = await pool.fetchval("SELECT count(*) FROM webhook_signing_secrets WHERE owner_id = $1", mine["id"])
    _expect(await world.client.post(f"/v1/webhook_endpoints/{mine['id']}/rotate_secret", json={}, headers=world.intruder.headers), 404)
    assert await pool.fetchval("SELECT count(*) FROM webhook_signing_secrets WHERE owner_id = $1", mine["id"]) == before == 1


async def _isolation_endpoint_deliveries(world: World) -> None:
    endpoint, _, _ = await webhook_delivery(world)
    _expect(await world.client.get(f"/v1/webhook_endpoints/{endpoint['id']}/deliveries", headers=world.intruder.headers), 404)


async def _isolation_event_deliveries(world: World) -> None:
    _, event_id, _ = await webhook_delivery(world)
    _expect(await world.client.get(f"/v1/events/{event_id}/deliveries", headers=world.intruder.headers), 404)


async def _isolation_redeliver(world: World) -> None:
    _, _, delivery_id = await webhook_delivery(world)
    _expect(await world.client.post(f"/v1/webhook_deliveries/{delivery_id}/redeliver", headers=world.intruder.headers), 404)


WEBHOOK_ROUTES: list[RouteCase] = [
    RouteCase("POST", "/v1/webhook_endpoints", "tenant", "webhooks:write", _create_webhook_call, 201, _create_webhook_invalid, _isolation_create_webhook),
    # Paginated; test_pagination's seed knows only keys and tenants, so the webhook tests walk these lists themselves.
    RouteCase("GET", "/v1/webhook_endpoints", "tenant", "webhooks:read", _list_webhooks_call, 200, lambda world: _bad_page("/v1/webhook_endpoints"), _isolation_list_webhooks),
    RouteCase("GET", "/v1/webhook_endpoints/{endpoint_id}", "tenant", "webhooks:read", _get_webhook_call, 200, _get_webhook_invalid, _isolation_get_webhook),
    RouteCase("PATCH", "/v1/webhook_endpoints/{endpoint_id}", "tenant", "webhooks:write", _patch_webhook_call, 200, _patch_webhook_invalid, _isolation_patch_webhook),
    RouteCase("DELETE", "/v1/webhook_endpoints/{endpoint_id}", "tenant", "webhooks:write", _delete_webhook_call, 200, _delete_webhook_invalid, _isolation_delete_webhook),
    RouteCase("POST", "/v1/webhook_endpoints/{endpoint_id}/rotate_secret", "tenant", "webhooks:write", _rotate_webhook_call, 200, _rotate_webhook_invalid, _isolation_rotate_webhook),
    RouteCase("GET", "/v1/webhook_endpoints/{endpoint_id}/deliveries", "tenant", "webhooks:read", _endpoint_deliveries_call, 200, lambda world: _bad_page("/v1/webhook_endpoints/we_DoesNotExist0000/deliveries"), _isolation_endpoint_deliveries),
    RouteCase("GET", "/v1/events/{event_id}/deliveries", "tenant", "webhooks:read", _event_deliveries_call, 200, lambda world: _bad_page("/v1/events/evt_DoesNotExist0000/deliveries"), _isolation_event_deliveries),
    RouteCase("POST", "/v1/webhook_deliveries/{delivery_id}/redeliver", "tenant", "webhooks:write", _redeliver_call, 200, _redeliver_invalid, _isolation_redeliver),
]


ROUTES: list[RouteCase] = [
    RouteCase("POST", "/v1/tenants", "platform", None, _create_tenant_call, 201, _create_tenant_invalid, _isolation_create_tenant),
    RouteCase("GET", "/v1/tenants", "platform", None, _list_tenants_call, 200, lambda world: _bad_page("/v1/tenants"), _isolation_list_tenants, list_route=True),
    RouteCase("GET", "/v1/tenants/{tenant_id}", "platform", None, _get_tenant_call, 200, _get_tenant_invalid, _isolation_get_tenant),
    RouteCase("PATCH", "/v1/tenants/{tenant_id}", "platform", None, _patch_tenant_call, 200, _patch_tenant_invalid, _isolation_patch_tenant_platform),
    RouteCase("GET", "/v1/tenant", "tenant", "tenant:read", _get_own_tenant_call, 200, None, _isolation_own_tenant),
    RouteCase("PATCH", "/v1/tenant", "tenant", "tenant:write", _patch_own_tenant_call, 200, _patch_invalid, _isolation_patch_tenant),
    RouteCase("POST", "/v1/api_keys", "tenant", "api_keys:write", _create_key_call, 201, _create_key_invalid, _isolation_create_key),
    RouteCase("GET", "/v1/api_keys", "tenant", "api_keys:read", _list_keys_call, 200, lambda world: _bad_page("/v1/api_keys"), _isolation_list_keys, list_route=True),
    RouteCase("GET", "/v1/api_keys/{key_id}", "tenant", "api_keys:read", _get_key_call, 200, _get_key_invalid, _isolation_get_key),
    RouteCase("POST", "/v1/api_keys/{key_id}/rotate", "tenant", "api_keys:write", _rotate_key_call, 200, _rotate_invalid, _isolation_rotate_key),
    RouteCase("POST", "/v1/api_keys/{key_id}/revoke", "tenant", "api_keys:write", _revoke_key_call, 200, _revoke_invalid, _isolation_revoke_key),
    RouteCase("GET", "/v1/audit_events", "tenant", "audit_events:read", _list_audit_call, 200, lambda world: _bad_page("/v1/audit_events"), _isolation_audit, list_route=True),
]
ROUTES += WEBHOOK_ROUTES
# Payment intents and events (their cases live beside, to keep this file's edits small).
from tests.api.routes_payment_intents import INTENT_ROUTES, PUBLIC_ROUTE_IDS  # noqa: E402

ROUTES += INTENT_ROUTES
from tests.api.routes_notify_secret import NOTIFY_SECRET_ROUTES  # noqa: E402

ROUTES += NOTIFY_SECRET_ROUTES
from tests.api.routes_refunds import REFUND_ROUTES  # noqa: E402

ROUTES += REFUND_ROUTES
ROUTES_BY_ID = {case.id: case for case in ROUTES}
