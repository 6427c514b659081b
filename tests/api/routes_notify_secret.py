"""The notify secret's routes in the registry (`tests/api/routes.py` adds them to ROUTES): the
tenant's secret that signs deliveries to the `notify_url`s its payment intents name."""

from __future__ import annotations

from tests.api.routes import Call, RouteCase, World, _expect, app_pool


async def _get_call(world: World) -> Call:
    return Call("GET", "/v1/notify_secret")


async def _rotate_call(world: World) -> Call:
    return Call("POST", "/v1/notify_secret/rotate", json={"overlap_s": 60})


async def _rotate_invalid(world: World) -> Call:
    return Call("POST", "/v1/notify_secret/rotate", json={"overlap_s": -1})


async def _notify_secrets(world: World, tenant_id: str) -> list[tuple[str, object]]:
    rows = await app_pool(world).fetch(
        "SELECT id, expires_at FROM webhook_signing_secrets WHERE owner_kind = 'tenant' AND owner_id = $1 ORDER BY id", tenant_id
    )
    return [(row["id"], row["expires_at"]) for row in rows]


async def _isolation_get(world: World) -> None:
    _expect(await world.client.post("/v1/notify_secret/rotate", json={"overlap_s": 0}, headers=world.owner.headers), 200)
    mine = _expect(await world.client.get("/v1/notify_secret", headers=world.owner.headers), 200)
    theirs = _expect(await world.client.get("/v1/notify_secret", headers=world.intruder.headers), 200)
    assert mine["created_at"] is not None and theirs["created_at"] != mine["created_at"]


async def _isolation_rotate(world: World) -> None:
    _expect(await world.client.post("/v1/notify_secret/rotate", json={"overlap_s": 0}, headers=world.owner.headers), 200)
    before = await _notify_secrets(world, world.owner.id)
    rotated = _expect(await world.client.post("/v1/notify_secret/rotate", json={"overlap_s": 0}, headers=world.intruder.headers), 200)
    assert rotated["secret"].startswith("whsec_")
    # The intruder rotated its own secret; the owner's is untouched.
    assert await _notify_secrets(world, world.owner.id) == before and len(before) == 1


NOTIFY_SECRET_ROUTES: list[RouteCase] = [
    RouteCase("GET", "/v1/notify_secret", "tenant", "webhooks:read", _get_call, 200, None, _isolation_get),
    RouteCase("POST", "/v1/notify_secret/rotate", "tenant", "webhooks:write", _rotate_call, 200, _rotate_invalid, _isolation_rotate),
]
