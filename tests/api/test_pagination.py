"""Cursor pagination on every list route: forward and backward pages add up to the whole list,
newest first, in a stable order; `limit` is bounded; cursors and created-time filters work."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.api.conftest import create_key, create_tenant
from tests.api.helpers import assert_error, by_id
from tests.api.routes import ROUTES, World

LIST_ROUTES = [case for case in ROUTES if case.list_route]


async def seed(case, world: World) -> tuple[str, dict, dict[str, str]]:
    """Objects for the list (7 or more), the path, fixed params, and the headers to read it with."""
    since = datetime.now(timezone.utc) - timedelta(milliseconds=1)
    if case.path == "/v1/tenants":
        for _ in range(7):
            await create_tenant(world.client, world.admin_headers, kind="program")
        return case.path, {"kind": "program", "created_gte": since.isoformat()}, world.admin_headers
    for index in range(6):
        await create_key(world.client, world.owner, scopes=["tenant:read"], name=f"page {index}")
    return case.path, {}, world.owner.headers


async def walk(world: World, path: str, params: dict, headers: dict, *, limit: int, backwards_from: str | None = None) -> list[dict]:
    seen: list[dict] = []
    cursor = {"ending_before": backwards_from} if backwards_from else {}
    for _ in range(100):
        response = await world.client.get(path, params={**params, **cursor, "limit": limit}, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["object"] == "list" and page["url"] == path and len(page["data"]) <= limit
        if backwards_from:
            seen = page["data"] + seen
            if not page["has_more"]:
                return seen
            cursor = {"ending_before": page["data"][0]["id"]}
        else:
            seen += page["data"]
            if not page["has_more"]:
                return seen
            cursor = {"starting_after": page["data"][-1]["id"]}
    raise AssertionError("pagination did not end")


@by_id(LIST_ROUTES)
async def test_pages_add_up_to_the_whole_list(case, world):
    path, params, headers = await seed(case, world)
    whole = (await world.client.get(path, params={**params, "limit": 100}, headers=headers)).json()
    assert not whole["has_more"] and len(whole["data"]) >= 7
    ids = [item["id"] for item in whole["data"]]
    order = [(item["created_at"], item["id"]) for item in whole["data"]]
    assert order == sorted(order, reverse=True), "newest first, ties broken by id"
    forward = await walk(world, path, params, headers, limit=2)
    assert [item["id"] for item in forward] == ids
    backward = await walk(world, path, params, headers, limit=3, backwards_from=ids[-1])
    assert [item["id"] for item in backward] == ids[:-1]


@by_id(LIST_ROUTES)
async def test_created_filters(case, world):
    path, params, headers = await seed(case, world)
    items = (await world.client.get(path, params={**params, "limit": 100}, headers=headers)).json()["data"]
    middle = items[len(items) // 2]["created_at"]
    newer = (await world.client.get(path, params={**params, "limit": 100, "created_gte": middle}, headers=headers)).json()["data"]
    older = (await world.client.get(path, params={**params, "limit": 100, "created_lte": middle}, headers=headers)).json()["data"]
    assert newer and older and all(item["created_at"] >= middle for item in newer) and all(item["created_at"] <= middle for item in older)
    assert {item["id"] for item in newer} | {item["id"] for item in older} == {item["id"] for item in items}
    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    assert (await world.client.get(path, params={"created_gte": future}, headers=headers)).json()["data"] == []


@by_id(LIST_ROUTES)
@pytest.mark.parametrize(
    "params, param",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"starting_after": "key_AAAAAAAAAAAA", "ending_before": "key_BBBBBBBBBBBB"}, "ending_before"),
        ({"starting_after": "not an id"}, "starting_after"),
        ({"created_gte": "yesterday"}, "created_gte"),
        ({"created_lte": "0001-01-01T00:00:00+14:00"}, "created_lte"),
    ],
)
async def test_bad_list_parameters_are_400(case, world, params, param):
    headers = world.admin_headers if case.auth == "platform" else world.owner.headers
    error = assert_error(await world.client.get(case.path, params=params, headers=headers), 400, type="invalid_request_error")
    assert error["param"] == param


@by_id(LIST_ROUTES)
async def test_unknown_cursor_is_400(case, world):
    headers = world.admin_headers if case.auth == "platform" else world.owner.headers
    error = assert_error(await world.client.get(case.path, params={"starting_after": "key_DoesNotExist0000"}, headers=headers), 400, code="resource_missing")
    assert error["param"] == "starting_after"


async def test_filters_by_status(client, tenant):
    revoked = await create_key(client, tenant, scopes=["tenant:read"], name="to revoke")
    rotated = await create_key(client, tenant, scopes=["tenant:read"], name="to rotate")
    await client.post(f"/v1/api_keys/{revoked['id']}/revoke", headers=tenant.headers)
    await client.post(f"/v1/api_keys/{rotated['id']}/rotate", json={"expires_in_s": 3600}, headers=tenant.headers)

    async def ids(**params) -> set[str]:
        response = await client.get("/v1/api_keys", params={"limit": 100, **params}, headers=tenant.headers)
        assert response.status_code == 200, response.text
        return {key["id"] for key in response.json()["data"]}

    assert await ids(status="revoked") == {revoked["id"]}
    assert await ids(status="expiring") == {rotated["id"]}
    assert tenant.key_id in await ids(status="active") and revoked["id"] not in await ids(status="active")
    assert await ids(type="secret") == {tenant.key_id}
    assert_error(await client.get("/v1/api_keys", params={"status": "sleeping"}, headers=tenant.headers), 400)


async def test_audit_filters(client, tenant):
    key = await create_key(client, tenant, scopes=["tenant:read"], name="audited")
    await client.post(f"/v1/api_keys/{key['id']}/revoke", headers=tenant.headers)
    events = (await client.get("/v1/audit_events", params={"action": "api_key.revoked"}, headers=tenant.headers)).json()["data"]
    assert [event["object_id"] for event in events] == [key["id"]]
    about = (await client.get("/v1/audit_events", params={"object_id": key["id"]}, headers=tenant.headers)).json()["data"]
    assert [event["action"] for event in about] == ["api_key.revoked", "api_key.created"]
    by_actor = (await client.get("/v1/audit_events", params={"actor_id": tenant.key_id, "limit": 100}, headers=tenant.headers)).json()["data"]
    assert {event["action"] for event in by_actor} == {"api_key.created", "api_key.revoked"}


async def test_tenants_filter_by_kind(client, admin_headers):
    since = datetime.now(timezone.utc).isoformat()
    merchant = await create_tenant(client, admin_headers, kind="merchant")
    program = await create_tenant(client, admin_headers, kind="program")
    listed = (await client.get("/v1/tenants", params={"kind": "program", "created_gte": since}, headers=admin_headers)).json()["data"]
    assert program.id in {tenant["id"] for tenant in listed} and merchant.id not in {tenant["id"] for tenant in listed}
