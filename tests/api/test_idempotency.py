"""`Idempotency-Key` on every POST: replay, mismatch, concurrency, release on failure, scoping
per tenant, retention, takeover of a dead claim, and no secret kept for replays."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from api.idempotency import IdempotencyContext, replayed_body, request_fingerprint, stored_body
from db.idempotency import IdempotencyRecord, IdempotencyStatus
from db.secret_box import SecretBox
from tests.api.conftest import create_key
from tests.api.routes import NO_BODY, ROUTES, Call, send
from tests.api.helpers import assert_error, by_id, owner_headers

POST_ROUTES = [case for case in ROUTES if case.method == "POST"]


def _null_secrets(value):
    if isinstance(value, dict):
        return {key: (None if key == "secret" else _null_secrets(item)) for key, item in value.items()}
    if isinstance(value, list):
        return [_null_secrets(item) for item in value]
    return value


def _other_request(call: Call) -> Call:
    if call.json is NO_BODY:
        return Call(call.method, call.path, json={})
    body = dict(call.json)
    if "name" in body:
        body["name"] += " (other)"
    elif "expires_in_s" in body:
        body["expires_in_s"] += 1
    else:
        body["unexpected"] = True
    return Call(call.method, call.path, json=body)


def test_every_post_route_takes_the_header(api_app):
    document = api_app.openapi()
    for case in POST_ROUTES:
        parameters = document["paths"][case.path]["post"].get("parameters", [])
        assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in parameters), case.id


@by_id(POST_ROUTES)
async def test_same_key_same_request_replays_the_first_response(case, world):
    call = await case.valid_call(world)
    headers = {**owner_headers(case, world), "Idempotency-Key": str(uuid.uuid4())}
    first = await send(world.client, call, headers)
    assert first.status_code == case.success_status, first.text
    assert "idempotent-replayed" not in first.headers
    second = await send(world.client, call, headers)
    assert second.status_code == first.status_code
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["original-request-id"] == first.headers["x-request-id"]
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    # The same body, except that a secret is shown once only.
    assert second.json() == _null_secrets(first.json())
    # A body with other key order or spacing is the same request.
    if isinstance(call.json, dict) and len(call.json) > 1:
        reordered = dict(reversed(list(call.json.items())))
        third = await world.client.request(call.method, call.path, json=reordered, headers=headers)
        assert third.headers.get("idempotent-replayed") == "true"


@by_id(POST_ROUTES)
async def test_same_key_other_request_is_409(case, world):
    call = await case.valid_call(world)
    headers = {**owner_headers(case, world), "Idempotency-Key": str(uuid.uuid4())}
    assert (await send(world.client, call, headers)).status_code == case.success_status
    error = assert_error(await send(world.client, _other_request(call), headers), 409, code="idempotency_key_reused", type="idempotency_error")
    assert error["param"] == "Idempotency-Key" and "different request" in error["message"]


async def test_concurrent_requests_with_one_key_have_one_effect(client, tenant):
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    payload = {"name": f"concurrent {uuid.uuid4().hex[:6]}", "scopes": ["payment_intents:read"]}
    responses = await asyncio.gather(*(client.post("/v1/api_keys", json=payload, headers=headers) for _ in range(8)))
    assert {response.status_code for response in responses} == {201}, [r.text for r in responses]
    assert len({response.json()["id"] for response in responses}) == 1
    listed = (await client.get("/v1/api_keys", params={"limit": 100}, headers=tenant.headers)).json()["data"]
    assert sum(1 for key in listed if key["name"] == payload["name"]) == 1
    assert sum(1 for response in responses if "idempotent-replayed" not in response.headers) == 1


async def test_a_failed_request_gives_its_key_back(client, tenant):
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    # Refused (a scope the key may not grant): nothing changed, so the key is free again.
    assert_error(await client.post("/v1/api_keys", json={"name": "x", "scopes": ["checkout:read"]}, headers=headers), 400)
    retried = await client.post("/v1/api_keys", json={"name": "x", "scopes": ["tenant:read"]}, headers=headers)
    assert retried.status_code == 201, retried.text


async def test_keys_are_per_tenant(client, tenant, other_tenant):
    key = str(uuid.uuid4())
    first = await client.post("/v1/api_keys", json={"name": "a", "type": "publishable"}, headers={**tenant.headers, "Idempotency-Key": key})
    second = await client.post("/v1/api_keys", json={"name": "a", "type": "publishable"}, headers={**other_tenant.headers, "Idempotency-Key": key})
    assert first.status_code == second.status_code == 201
    assert "idempotent-replayed" not in second.headers and first.json()["id"] != second.json()["id"]


@pytest.mark.parametrize("bad_key", ["", "has space", "x" * 256, "é".encode()])
async def test_a_malformed_key_is_400(client, tenant, bad_key):
    response = await client.post(
        "/v1/api_keys", json={"name": "a", "type": "publishable"}, headers={**tenant.headers, "Idempotency-Key": bad_key}
    )
    error = assert_error(response, 400)
    assert error["param"] == "Idempotency-Key"


async def test_kept_24_hours_without_the_secret(client, tenant, db_pool):
    key = str(uuid.uuid4())
    response = await client.post("/v1/api_keys", json={"name": "kept", "type": "publishable"}, headers={**tenant.headers, "Idempotency-Key": key})
    secret = response.json()["secret"]
    row = await db_pool.fetchrow("SELECT * FROM idempotency_keys WHERE owner = $1 AND key = $2", tenant.id, key)
    assert row["status"] == "completed" and row["response_status"] == 201
    assert row["expires_at"] - row["created_at"] >= timedelta(hours=24)
    assert secret.encode() not in bytes(row["response_body"])


async def test_an_expired_key_may_be_used_again(client, tenant, db_pool):
    key = str(uuid.uuid4())
    headers = {**tenant.headers, "Idempotency-Key": key}
    first = await client.post("/v1/api_keys", json={"name": "one", "type": "publishable"}, headers=headers)
    await db_pool.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE owner = $1 AND key = $2", tenant.id, key)
    second = await client.post("/v1/api_keys", json={"name": "two", "type": "publishable"}, headers=headers)
    assert second.status_code == 201 and second.json()["id"] != first.json()["id"]


async def test_a_dead_claim_is_taken_over_by_the_same_request(client, tenant, db_pool):
    key = str(uuid.uuid4())
    body = b'{"name":"after a crash","type":"publishable"}'
    fingerprint = request_fingerprint(method="POST", path="/v1/api_keys", query="", body=body)
    await db_pool.execute(
        """
        INSERT INTO idempotency_keys (owner, key, request_hash, method, path, status, request_id, locked_at, expires_at)
        VALUES ($1, $2, $3, 'POST', '/v1/api_keys', 'in_progress', 'req_dead', now() - interval '1 hour', now() + interval '1 day')
        """,
        tenant.id, key, fingerprint,
    )
    headers = {**tenant.headers, "Idempotency-Key": key, "Content-Type": "application/json"}
    response = await client.post("/v1/api_keys", content=body, headers=headers)
    assert response.status_code == 201, response.text


async def test_a_live_claim_makes_others_wait_then_409(settings, db_pool, tenant):
    from api.app import create_app
    from db.settings import ApiSettings
    from tests.api.conftest import GENEROUS_TIERS, make_client

    app = create_app(settings, ApiSettings(rate_limit_tiers=GENEROUS_TIERS, json_logs=False, idempotency_wait_s=0.2), pool=db_pool)
    key = str(uuid.uuid4())
    body = b'{"name":"slow","type":"publishable"}'
    fingerprint = request_fingerprint(method="POST", path="/v1/api_keys", query="", body=body)
    await db_pool.execute(
        """
        INSERT INTO idempotency_keys (owner, key, request_hash, method, path, status, request_id, expires_at)
        VALUES ($1, $2, $3, 'POST', '/v1/api_keys', 'in_progress', 'req_busy', now() + interval '1 day')
        """,
        tenant.id, key, fingerprint,
    )
    async with app.router.lifespan_context(app), make_client(app) as http:
        response = await http.post("/v1/api_keys", content=body, headers={**tenant.headers, "Idempotency-Key": key, "Content-Type": "application/json"})
    error = assert_error(response, 409, code="idempotency_key_in_use")
    assert response.headers["retry-after"] == "1" and error["param"] == "Idempotency-Key"


def _record(body: bytes, *, owner: str = "ten_1", key: str = "order-42", request_id: str = "req_1") -> IdempotencyRecord:
    now = datetime.now(timezone.utc)
    return IdempotencyRecord(
        owner=owner, key=key, request_hash=b"h", method="POST", path="/v1/payment_intents", status=IdempotencyStatus.COMPLETED,
        request_id=request_id, response_status=201, response_body=body, response_content_type="application/json",
        created_at=now, expires_at=now + timedelta(days=1),
    )


def test_a_client_secret_is_kept_sealed_and_opens_only_for_its_own_replay():
    box = SecretBox([bytes(range(32))])
    secret = "pi_1_secret_s3cr3tv4lue"
    response = {
        "id": "pi_1", "client_secret": secret, "checkout_url": f"https://settle.test/checkout/pi_1?client_secret={secret}",
        "notify_secret": {"secret": "whsec_abc"}, "metadata": {"note": "kept as is"},
    }
    stored = stored_body(json.dumps(response).encode(), box=box, owner="ten_1", key="order-42", request_id="req_1")
    assert b"s3cr3tv4lue" not in stored and b"whsec_abc" not in stored and b"kept as is" in stored
    assert json.loads(replayed_body(_record(stored), box=box)) == {**response, "notify_secret": {"secret": None}}
    # Bound to its row: another tenant's, key's or request's row, or another deployment key, opens nothing.
    for other in ({"owner": "ten_2"}, {"key": "order-43"}, {"request_id": "req_2"}):
        replayed = json.loads(replayed_body(_record(stored, **other), box=box))
        assert replayed["client_secret"] is None and replayed["checkout_url"] is None and replayed["id"] == "pi_1", other
    assert json.loads(replayed_body(_record(stored), box=SecretBox([bytes(32)])))["client_secret"] is None
    # A rotated deployment key still opens what the previous one sealed.
    assert json.loads(replayed_body(_record(stored), box=SecretBox([bytes(32), bytes(range(32))])))["client_secret"] == secret


def test_the_key_maps_to_a_stable_workflow_id():
    context = IdempotencyContext(key="order-42", owner="ten_abc")
    assert context.workflow_id("pi") == context.workflow_id("pi")
    assert context.workflow_id("pi").startswith("pi_") and len(context.workflow_id("pi")) == 27
    assert IdempotencyContext(key="order-42", owner="ten_other").workflow_id("pi") != context.workflow_id("pi")
    assert IdempotencyContext(key=None, owner="ten_abc").workflow_id("pi") is None


async def test_restricted_key_replays_in_its_tenant_only(client, tenant):
    # Another key of the same tenant shares the tenant's idempotency keys (Stripe's behaviour).
    second = await create_key(client, tenant, scopes=["api_keys:write", "api_keys:read"], name="second admin")
    key = str(uuid.uuid4())
    payload = {"name": "shared", "type": "publishable"}
    first = await client.post("/v1/api_keys", json=payload, headers={**tenant.headers, "Idempotency-Key": key})
    again = await client.post("/v1/api_keys", json=payload, headers={"Authorization": f"Bearer {second['secret']}", "Idempotency-Key": key})
    assert again.headers.get("idempotent-replayed") == "true" and again.json()["id"] == first.json()["id"]
