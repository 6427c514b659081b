"""The API's conventions, route by route: every `/v1` route is registered in `routes.py`, and each
one authenticates, checks its scope, answers errors in the one shape with a request id, refuses
bad input with a 400, and keeps tenants apart."""

from __future__ import annotations

from typing import Annotated

import pytest

from api.app import create_app
from api.auth import PLATFORM_ADMIN, Principal
from api.idempotency import Idempotency
from api.routing import SettleRoute, iter_api_routes, settle_router
from domain.tenants import SECRET_SCOPES
from tests.api.conftest import create_key, make_client
from tests.api.helpers import REQUEST_ID, assert_error, by_id, owner_headers
from tests.api.routes import PUBLIC_ROUTE_IDS, ROUTES, send

def test_every_route_is_registered():
    app = create_app()
    served = set()
    for route in iter_api_routes(app):
        if route.path.startswith("/v1"):
            assert isinstance(route, SettleRoute), f"{route.path} must come from api.routing.settle_router"
            served |= {f"{method} {route.path}" for method in route.methods}
    # Public routes (no API key) are tested on their own; see tests/api/routes_payment_intents.py.
    registered = {case.id for case in ROUTES} | PUBLIC_ROUTE_IDS
    assert served == registered, f"describe new routes in tests/api/routes.py: {served - registered}; gone: {registered - served}"


def test_a_post_without_principal_then_idempotency_does_not_start():
    router = settle_router(prefix="/v1/things")
    with pytest.raises(TypeError, match="Idempotency"):

        @router.post("")
        async def no_idempotency(principal: Annotated[Principal, PLATFORM_ADMIN]) -> None: ...

    with pytest.raises(TypeError, match="Idempotency"):

        @router.post("/other")
        async def wrong_order(idempotency: Idempotency, principal: Annotated[Principal, PLATFORM_ADMIN]) -> None: ...

    @router.post("/fine")
    async def fine(principal: Annotated[Principal, PLATFORM_ADMIN], idempotency: Idempotency) -> None: ...


@by_id(ROUTES)
async def test_valid_call_succeeds_with_request_id(case, world):
    response = await send(world.client, await case.valid_call(world), owner_headers(case, world))
    assert response.status_code == case.success_status, response.text
    assert REQUEST_ID.match(response.headers["x-request-id"])
    assert response.headers["cache-control"] == "no-store"
    assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy"} <= set(response.headers)


@by_id(ROUTES)
async def test_no_key_is_401(case, world):
    call = await case.valid_call(world)
    error = assert_error(await send(world.client, call), 401, code="api_key_missing", type="authentication_error")
    assert error["param"] is None
    error = assert_error(await send(world.client, call, {"Authorization": "Basic dXNlcjpwYXNz"}), 401, code="authorization_malformed")
    wrong = "sk_test_" + "A" * 44
    response = await send(world.client, call, {"Authorization": f"Bearer {wrong}"})
    error = assert_error(response, 401, code="api_key_invalid")
    assert wrong not in response.text and response.headers["www-authenticate"].startswith("Bearer")
    # A real key's lookup with a wrong secret is just as invalid.
    guessed = world.owner.secret[:-4] + ("AAAA" if not world.owner.secret.endswith("AAAA") else "BBBB")
    assert_error(await send(world.client, call, {"Authorization": f"Bearer {guessed}"}), 401, code="api_key_invalid")


@by_id(ROUTES)
async def test_wrong_kind_of_key_is_403(case, world):
    call = await case.valid_call(world)
    if case.auth == "platform":
        assert_error(await send(world.client, call, world.owner.headers), 403, code="platform_admin_required", type="permission_error")
    else:
        assert_error(await send(world.client, call, world.admin_headers), 403, code="tenant_key_required", type="permission_error")


@by_id([case for case in ROUTES if case.auth == "tenant"])
async def test_scope_is_enforced(case, world):
    others = sorted(str(scope) for scope in SECRET_SCOPES if scope != case.scope)
    without = await create_key(world.client, world.owner, scopes=others, name="all but one")
    call = await case.valid_call(world)
    error = assert_error(await send(world.client, call, {"Authorization": f"Bearer {without['secret']}"}), 403, code="insufficient_scope")
    assert case.scope in error["message"]
    only = await create_key(world.client, world.owner, scopes=[case.scope], name="just enough")
    response = await send(world.client, await case.valid_call(world), {"Authorization": f"Bearer {only['secret']}"})
    assert response.status_code == case.success_status, response.text
    publishable = await create_key(world.client, world.owner, scopes=[], key_type="publishable", name="checkout")
    assert_error(await send(world.client, call, {"Authorization": f"Bearer {publishable['secret']}"}), 403, code="insufficient_scope")


def test_openapi_names_each_routes_scope():
    document = create_app().openapi()
    for case in ROUTES:
        operation = document["paths"][case.path][case.method.lower()]
        (requirement,) = operation["security"]
        expected = ["platform_admin"] if case.auth == "platform" else [case.scope]
        assert requirement == {"BearerAuth": expected}, case.id


@by_id([case for case in ROUTES if case.invalid_call is not None])
async def test_bad_input_is_400(case, world):
    call = await case.invalid_call(world)
    error = assert_error(await send(world.client, call, owner_headers(case, world)), 400, type="invalid_request_error")
    assert error["code"] in {"parameter_invalid", "parameter_missing"}
    assert error["param"], error


@by_id(ROUTES)
async def test_another_tenant_sees_nothing(case, world):
    assert case.isolation is not None, f"{case.id}: describe what another tenant must not see"
    await case.isolation(world)


async def test_unknown_route_and_method_use_the_error_shape(client):
    assert_error(await client.get("/v1/nothing-here"), 404, code="route_not_found")
    assert_error(await client.delete("/v1/tenant"), 405, code="method_not_allowed")


async def test_malformed_json_is_a_400(client, tenant):
    headers = {**tenant.headers, "Content-Type": "application/json"}
    error = assert_error(await client.patch("/v1/tenant", content=b"{not json", headers=headers), 400, code="body_invalid_json")
    assert error["param"] is None
    error = assert_error(await client.post("/v1/api_keys", content=b"", headers=headers), 400, code="parameter_missing")


async def test_body_too_large_is_413(client, tenant):
    payload = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = await client.patch("/v1/tenant", content=payload, headers={**tenant.headers, "Content-Type": "application/json"})
    assert_error(response, 413, code="request_too_large")


async def test_unknown_fields_are_refused(client, tenant):
    error = assert_error(await client.patch("/v1/tenant", json={"fee_bsp": 10}, headers=tenant.headers), 400)
    assert error["param"] == "fee_bsp"


async def test_healthz_needs_no_key_and_has_a_request_id(client):
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert REQUEST_ID.match(response.headers["x-request-id"])
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200 and b"settle_api_requests" in metrics.content


async def test_a_fault_is_a_500_in_the_error_shape_without_details(settings, api_settings, db_pool):
    app = create_app(settings, api_settings, pool=db_pool)

    @app.get("/boom", include_in_schema=False)
    async def boom() -> None:
        raise RuntimeError(f"secret detail {settings.admin_api_key.get_secret_value()}")

    async with app.router.lifespan_context(app), make_client(app) as http:
        response = await http.get("/boom")
    error = assert_error(response, 500, code="internal_error", type="api_error")
    assert "secret detail" not in response.text and settings.admin_api_key.get_secret_value() not in response.text
    assert error["param"] is None


async def test_deeply_nested_json_is_refused_before_parsing(client, tenant):
    # The JSON parser recurses in C: a few hundred kilobytes of brackets must never reach it.
    headers = {**tenant.headers, "Content-Type": "application/json"}
    body = b"[" * 200_000 + b"]" * 200_000
    assert_error(await client.patch("/v1/tenant", content=body, headers=headers), 400, code="body_too_deep")
    shallow_but_bracketed = b'{"name": "' + b"[" * 150 + b'"}'
    response = await client.patch("/v1/tenant", content=shallow_but_bracketed, headers=headers)
    assert response.status_code == 200 and response.json()["name"] == "[" * 150


def test_json_nesting_is_measured_outside_strings():
    from api.routing import json_nesting_exceeds

    assert not json_nesting_exceeds(b'{"a": [[1]]}', depth_max=3)
    assert json_nesting_exceeds(b'{"a": [[[1]]]}', depth_max=3)
    assert not json_nesting_exceeds(b'{"a": "[[[[\\"[[[["}', depth_max=2)
