"""Webhook endpoints and the delivery log through the API: the signing secret shown once, URLs
checked against the deployment's SSRF policy, rotation with both secrets verifying during the
overlap, deliveries (with their attempts) listed by event and by endpoint, idempotent
redelivery, audit, and other tenants kept out. No worker runs here: the dispatcher's fan-out is
called directly, and attempts are recorded as the sending activity would."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from activities.webhooks import sign_headers
from api.app import create_app
from db.settings import WebhookSettings
from db.secret_box import SecretBox
from db.webhook_attempts import AttemptRecord, load_attempt_context, record_attempt
from domain.webhooks import RESPONSE_BODY_STORED_MAX, parse_signing_secret
from tests.api.conftest import create_key, make_client
from tests.api.helpers import assert_error
from tests.api.routes import WEBHOOK_RECEIVER_URL, create_webhook_endpoint, fan_out_tenant_events, insert_event

BOX = SecretBox(WebhookSettings().secret_encryption_keys())


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def delivery_for(client, db_pool, tenant, **endpoint_fields):
    endpoint = await create_webhook_endpoint(client, tenant, **endpoint_fields)
    event_id = await insert_event(db_pool, tenant_id=tenant.id)
    await fan_out_tenant_events(db_pool, tenant_id=tenant.id)
    return endpoint, event_id, f"whd_{event_id}_{endpoint['id']}"


async def record(db_pool, delivery_id: str, *, round_number: int = 0, attempt_number: int = 1, status_code: int | None = 400,
                 outcome: str = "failed", body: str | None = "nope", error: str | None = None) -> None:
    await record_attempt(
        db_pool,
        record=AttemptRecord(
            delivery_id=delivery_id,
            round=round_number,
            attempt_number=attempt_number,
            url=WEBHOOK_RECEIVER_URL,
            webhook_timestamp=int(datetime.now(timezone.utc).timestamp()),
            started_at=datetime.now(timezone.utc),
            latency_ms=42,
            status_code=status_code,
            response_body=body,
            error=error,
            outcome=outcome,
            next_attempt_at=None,
            endpoint_failed=outcome != "delivered",
        ),
        failing_after_s=3 * 24 * 3600.0,
    )


# ---------------------------------------------------------------------------- endpoints
async def test_create_shows_the_secret_once(client, tenant, db_pool):
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    payload = {"url": WEBHOOK_RECEIVER_URL, "enabled_events": ["payment_intent.succeeded", "payment_intent.failed"], "description": "orders"}
    response = await client.post("/v1/webhook_endpoints", json=payload, headers=headers)
    assert response.status_code == 201, response.text
    created = response.json()
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(parse_signing_secret(secret)) == 32
    assert created["object"] == "webhook_endpoint" and created["id"].startswith("we_")
    assert created["url"] == WEBHOOK_RECEIVER_URL and created["enabled_events"] == payload["enabled_events"]
    assert created["status"] == "enabled" and created["health"] == "healthy" and created["disabled_reason"] is None
    # A replay of the creation carries no secret; reads never do.
    replay = await client.post("/v1/webhook_endpoints", json=payload, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true" and replay.json()["secret"] is None and replay.json()["id"] == created["id"]
    read = await client.get(f"/v1/webhook_endpoints/{created['id']}", headers=tenant.headers)
    assert read.status_code == 200 and "secret" not in read.json() and secret not in read.text
    listed = await client.get("/v1/webhook_endpoints", params={"limit": 100}, headers=tenant.headers)
    assert [item["id"] for item in listed.json()["data"]] == [created["id"]] and secret not in listed.text
    assert all("secret" not in item for item in listed.json()["data"])
    # At rest it is sealed.
    rows = await db_pool.fetch("SELECT * FROM webhook_signing_secrets WHERE owner_id = $1", created["id"])
    assert len(rows) == 1 and secret not in str(dict(rows[0])) and secret.removeprefix("whsec_") not in str(dict(rows[0]))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hooks",
        "https:///no-host",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "https://user:password@example.com/hooks",
        "not a url",
        "",
    ],
)
async def test_bad_urls_are_400_on_url(client, tenant, url):
    response = await client.post("/v1/webhook_endpoints", json={"url": url, "enabled_events": ["*"]}, headers=tenant.headers)
    error = assert_error(response, 400, type="invalid_request_error")
    assert error["param"] == "url", error
    endpoint = await create_webhook_endpoint(client, tenant)
    error = assert_error(await client.patch(f"/v1/webhook_endpoints/{endpoint['id']}", json={"url": url}, headers=tenant.headers), 400)
    assert error["param"] == "url", error


async def test_loopback_is_allowed_only_where_the_settings_allow_it(client, tenant, settings, api_settings, db_pool):
    assert (await client.post("/v1/webhook_endpoints", json={"url": "http://localhost:8080/h", "enabled_events": ["*"]}, headers=tenant.headers)).status_code == 201
    strict = create_app(settings, api_settings, pool=db_pool)
    strict.state.webhook_settings = WebhookSettings(allow_private_targets=False, require_https=True)
    async with strict.router.lifespan_context(strict), make_client(strict) as http:
        for url, code in [("https://127.0.0.1/h", "url_not_allowed"), ("https://10.1.2.3/h", "url_not_allowed"),
                          ("https://localhost/h", "url_not_allowed"), ("http://example.com/h", "parameter_invalid")]:
            error = assert_error(await http.post("/v1/webhook_endpoints", json={"url": url, "enabled_events": ["*"]}, headers=tenant.headers), 400, code=code)
            assert error["param"] == "url"
        ok = await http.post("/v1/webhook_endpoints", json={"url": "https://example.com/h", "enabled_events": ["*"]}, headers=tenant.headers)
        assert ok.status_code == 201, ok.text


@pytest.mark.parametrize(
    "enabled_events, param",
    [
        ([], "enabled_events"),
        (["*", "payment_intent.succeeded"], "enabled_events"),
        (["payment_intent.succeeded", "payment_intent.succeeded"], "enabled_events[1]"),
        (["Payment Intent"], "enabled_events[0]"),
        (["payment_intent"], "enabled_events[0]"),
    ],
)
async def test_enabled_events_rules(client, tenant, enabled_events, param):
    response = await client.post("/v1/webhook_endpoints", json={"url": WEBHOOK_RECEIVER_URL, "enabled_events": enabled_events}, headers=tenant.headers)
    assert assert_error(response, 400)["param"] == param


async def test_update_disable_enable(client, tenant):
    endpoint = await create_webhook_endpoint(client, tenant)
    path = f"/v1/webhook_endpoints/{endpoint['id']}"
    changes = {"url": "http://127.0.0.1:9/other", "enabled_events": ["*"], "description": "all of them"}
    updated = (await client.patch(path, json=changes, headers=tenant.headers)).json()
    assert {name: updated[name] for name in changes} == changes and "secret" not in updated
    disabled = (await client.patch(path, json={"disabled": True}, headers=tenant.headers)).json()
    assert disabled["status"] == "disabled" and disabled["disabled_reason"] == "merchant" and disabled["url"] == changes["url"]
    enabled = (await client.patch(path, json={"disabled": False}, headers=tenant.headers)).json()
    assert enabled["status"] == "enabled" and enabled["disabled_reason"] is None
    assert assert_error(await client.patch(path, json={"url": None}, headers=tenant.headers), 400)["param"] == "url"
    assert assert_error(await client.patch(path, json={"secret": "whsec_x"}, headers=tenant.headers), 400)["param"] == "secret"
    assert_error(await client.patch("/v1/webhook_endpoints/we_DoesNotExist0000", json={"description": "x"}, headers=tenant.headers), 404, code="resource_missing")


async def test_delete(client, tenant, db_pool):
    endpoint = await create_webhook_endpoint(client, tenant)
    path = f"/v1/webhook_endpoints/{endpoint['id']}"
    deleted = await client.delete(path, headers=tenant.headers)
    assert deleted.status_code == 200 and deleted.json() == {"object": "webhook_endpoint", "id": endpoint["id"], "deleted": True}
    assert_error(await client.get(path, headers=tenant.headers), 404, code="resource_missing")
    assert_error(await client.delete(path, headers=tenant.headers), 404)
    assert_error(await client.post(f"{path}/rotate_secret", headers=tenant.headers), 404)
    listed = (await client.get("/v1/webhook_endpoints", headers=tenant.headers)).json()["data"]
    assert endpoint["id"] not in {item["id"] for item in listed}
    assert await db_pool.fetchval("SELECT count(*) FROM webhook_signing_secrets WHERE owner_id = $1", endpoint["id"]) == 0


async def test_endpoints_paginate(client, tenant):
    ids = [(await create_webhook_endpoint(client, tenant, description=f"page {index}"))["id"] for index in range(7)]
    whole = (await client.get("/v1/webhook_endpoints", params={"limit": 100}, headers=tenant.headers)).json()
    assert [item["id"] for item in whole["data"]] == list(reversed(ids)) and not whole["has_more"]
    seen, cursor = [], {}
    while True:
        page = (await client.get("/v1/webhook_endpoints", params={"limit": 2, **cursor}, headers=tenant.headers)).json()
        seen += [item["id"] for item in page["data"]]
        if not page["has_more"]:
            break
        cursor = {"starting_after": page["data"][-1]["id"]}
    assert seen == list(reversed(ids))
    newer = (await client.get("/v1/webhook_endpoints", params={"ending_before": ids[0], "limit": 3}, headers=tenant.headers)).json()
    assert [item["id"] for item in newer["data"]] == [ids[3], ids[2], ids[1]] and newer["has_more"]


# ---------------------------------------------------------------------------- rotation
async def test_rotation_both_secrets_verify_during_the_overlap(client, tenant, db_pool):
    endpoint, event_id, delivery_id = await delivery_for(client, db_pool, tenant)
    old_secret = (await client.post(f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret", json={"overlap_s": 0}, headers=tenant.headers)).json()["secret"]
    response = await client.post(f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret", headers=tenant.headers)
    assert response.status_code == 200, response.text
    rotation = response.json()
    new_secret = rotation["secret"]
    assert new_secret.startswith("whsec_") and new_secret not in (old_secret, endpoint["secret"])
    assert rotation["object"] == "webhook_secret_rotation" and rotation["webhook_endpoint"]["id"] == endpoint["id"]
    expires_at = datetime.fromisoformat(rotation["previous_secret_expires_at"])
    assert abs((expires_at - datetime.now(timezone.utc)).total_seconds() - 24 * 3600) < 60, "the default overlap is a day"
    # What the sending activity signs with now: both secrets, newest first.
    context = await load_attempt_context(db_pool, secret_box=BOX, delivery_id=delivery_id)
    assert context is not None and context.secrets == [parse_signing_secret(new_secret), parse_signing_secret(old_secret)]
    body = b'{"id":"' + event_id.encode() + b'","type":"payment_intent.succeeded"}'
    headers = sign_headers(secrets=context.secrets, message_id=event_id, timestamp_s=int(datetime.now(timezone.utc).timestamp()), body=body)
    for secret in (old_secret, new_secret):
        assert Webhook(secret).verify(body, headers)["id"] == event_id
    # Rotating without overlap stops the previous secret at once.
    stopped = (await client.post(f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret", json={"overlap_s": 0}, headers=tenant.headers)).json()
    assert stopped["previous_secret_expires_at"] is None
    context = await load_attempt_context(db_pool, secret_box=BOX, delivery_id=delivery_id)
    assert context.secrets == [parse_signing_secret(stopped["secret"])]
    headers = sign_headers(secrets=context.secrets, message_id=event_id, timestamp_s=int(datetime.now(timezone.utc).timestamp()), body=body)
    Webhook(stopped["secret"]).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret).verify(body, headers)
    # The secret of a rotation is not kept for replays either, and never readable.
    read = await client.get(f"/v1/webhook_endpoints/{endpoint['id']}", headers=tenant.headers)
    assert stopped["secret"] not in read.text and new_secret not in read.text


async def test_rotation_overlap_bounds(client, tenant):
    endpoint = await create_webhook_endpoint(client, tenant)
    path = f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret"
    for overlap_s in (-1, 7 * 24 * 3600 + 1, "soon"):
        assert assert_error(await client.post(path, json={"overlap_s": overlap_s}, headers=tenant.headers), 400)["param"] == "overlap_s"
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await client.post(path, json={"overlap_s": 3600}, headers=headers)
    replay = await client.post(path, json={"overlap_s": 3600}, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true" and replay.json()["secret"] is None and first.json()["secret"]


# ---------------------------------------------------------------------------- delivery log
async def test_deliveries_of_an_event_with_their_attempts(client, tenant, db_pool):
    wanted = await create_webhook_endpoint(client, tenant, enabled_events=["payment_intent.succeeded"])
    everything = await create_webhook_endpoint(client, tenant, enabled_events=["*"])
    other = await create_webhook_endpoint(client, tenant, enabled_events=["payment_intent.failed"])
    event_id = await insert_event(db_pool, tenant_id=tenant.id)
    assert await db_pool.fetchval("SELECT count(*) FROM webhook_event_queue WHERE event_id = $1", event_id) == 1, "the trigger queues it"
    await fan_out_tenant_events(db_pool, tenant_id=tenant.id)
    listed = await client.get(f"/v1/events/{event_id}/deliveries", headers=tenant.headers)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["object"] == "list" and page["url"] == f"/v1/events/{event_id}/deliveries" and not page["has_more"]
    deliveries = {item["endpoint_id"]: item for item in page["data"]}
    assert set(deliveries) == {wanted["id"], everything["id"]} and other["id"] not in deliveries
    delivery = deliveries[wanted["id"]]
    assert delivery["id"] == f"whd_{event_id}_{wanted['id']}" and delivery["object"] == "webhook_delivery"
    assert delivery["event_id"] == event_id and delivery["event_type"] == "payment_intent.succeeded"
    assert delivery["status"] == "pending" and delivery["round"] == 0 and delivery["attempts"] == [] and not delivery["attempts_has_more"]

    # Two attempts as the sending activity records them: a timeout, then a 400 with a long body.
    await record(db_pool, delivery["id"], status_code=None, outcome="retry", body=None, error="timeout: no answer in 15 s")
    await record(db_pool, delivery["id"], attempt_number=2, status_code=400, outcome="failed", body="x" * 5000)
    page = (await client.get(f"/v1/webhook_endpoints/{wanted['id']}/deliveries", headers=tenant.headers)).json()
    (delivery,) = page["data"]
    assert page["url"] == f"/v1/webhook_endpoints/{wanted['id']}/deliveries"
    assert delivery["status"] == "failed" and delivery["attempts_count"] == 2 and delivery["last_status_code"] == 400
    latest, first = delivery["attempts"]
    assert latest["attempt_number"] == 2 and latest["status_code"] == 400 and latest["latency_ms"] == 42 and latest["outcome"] == "failed"
    assert latest["response_body"].startswith("x" * RESPONSE_BODY_STORED_MAX) and len(latest["response_body"]) < 5000
    assert latest["error"] is None and latest["created_at"] and latest["url"] == WEBHOOK_RECEIVER_URL
    assert first["status_code"] is None and first["error"].startswith("timeout") and first["outcome"] == "retry"
    assert_error(await client.get("/v1/events/evt_DoesNotExist0000_0001/deliveries", headers=tenant.headers), 404, code="resource_missing")


async def test_deliveries_paginate_with_delivery_ids_as_cursors(client, tenant, db_pool):
    endpoint = await create_webhook_endpoint(client, tenant, enabled_events=["*"])
    for _ in range(5):
        await insert_event(db_pool, tenant_id=tenant.id)
        await fan_out_tenant_events(db_pool, tenant_id=tenant.id)
    path = f"/v1/webhook_endpoints/{endpoint['id']}/deliveries"
    whole = (await client.get(path, params={"limit": 100}, headers=tenant.headers)).json()["data"]
    assert len(whole) == 5
    order = [(item["created_at"], item["id"]) for item in whole]
    assert order == sorted(order, reverse=True)
    seen, cursor = [], {}
    while True:
        response = await client.get(path, params={"limit": 2, **cursor}, headers=tenant.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["id"] for item in page["data"]]
        if not page["has_more"]:
            break
        cursor = {"starting_after": page["data"][-1]["id"]}
    assert seen == [item["id"] for item in whole]
    back = (await client.get(path, params={"limit": 100, "ending_before": whole[-1]["id"]}, headers=tenant.headers)).json()["data"]
    assert [item["id"] for item in back] == [item["id"] for item in whole[:-1]]
    assert assert_error(await client.get(path, params={"limit": 101}, headers=tenant.headers), 400)["param"] == "limit"
    assert assert_error(await client.get(path, params={"starting_after": "whd_nope"}, headers=tenant.headers), 400)["param"] == "starting_after"
    missing = f"whd_evt_DoesNotExist0000_0001_{endpoint['id']}"
    assert_error(await client.get(path, params={"starting_after": missing}, headers=tenant.headers), 400, code="resource_missing")
    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    assert (await client.get(path, params={"created_gte": future}, headers=tenant.headers)).json()["data"] == []


async def test_redeliver_is_idempotent(client, tenant, db_pool):
    endpoint, _, delivery_id = await delivery_for(client, db_pool, tenant)
    path = f"/v1/webhook_deliveries/{delivery_id}/redeliver"
    # Still pending: nothing to do, and asking changes nothing.
    pending = (await client.post(path, headers=tenant.headers)).json()
    assert pending["id"] == delivery_id and pending["status"] == "pending" and pending["round"] == 0
    await record(db_pool, delivery_id, status_code=500, outcome="failed", body="down")
    key = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await client.post(path, headers=key)
    assert first.status_code == 200, first.text
    redelivered = first.json()
    assert redelivered["status"] == "pending" and redelivered["round"] == 1 and redelivered["attempts"][0]["status_code"] == 500
    replay = await client.post(path, headers=key)
    assert replay.headers["idempotent-replayed"] == "true" and replay.json() == redelivered
    again = (await client.post(path, headers=tenant.headers)).json()
    assert again["round"] == 1 and again["status"] == "pending", "a pending round is not started twice"
    assert await db_pool.fetchval("SELECT round FROM webhook_deliveries WHERE id = $1", delivery_id) == 1
    # A finished delivery to a disabled endpoint is not redelivered until the endpoint is enabled again.
    await record(db_pool, delivery_id, round_number=1, status_code=404, outcome="failed")
    await client.patch(f"/v1/webhook_endpoints/{endpoint['id']}", json={"disabled": True}, headers=tenant.headers)
    assert_error(await client.post(path, headers=tenant.headers), 409, code="webhook_endpoint_disabled")
    await client.patch(f"/v1/webhook_endpoints/{endpoint['id']}", json={"disabled": False}, headers=tenant.headers)
    assert (await client.post(path, headers=tenant.headers)).json()["round"] == 2
    assert_error(await client.post(f"/v1/webhook_deliveries/whd_evt_DoesNotExist0000_0001_{endpoint['id']}/redeliver", headers=tenant.headers), 404)


# ---------------------------------------------------------------------------- audit, scopes, tenants
async def test_endpoint_changes_are_audited_without_secrets(client, tenant):
    endpoint = await create_webhook_endpoint(client, tenant)
    path = f"/v1/webhook_endpoints/{endpoint['id']}"
    await client.patch(path, json={"description": "renamed"}, headers=tenant.headers)
    rotated = (await client.post(f"{path}/rotate_secret", json={"overlap_s": 60}, headers=tenant.headers)).json()
    await client.delete(path, headers=tenant.headers)
    response = await client.get("/v1/audit_events", params={"object_id": endpoint["id"], "limit": 100}, headers=tenant.headers)
    events = response.json()["data"]
    assert [event["action"] for event in reversed(events)] == [
        "webhook_endpoint.created",
        "webhook_endpoint.updated",
        "webhook_endpoint.secret_rotated",
        "webhook_endpoint.deleted",
    ]
    assert all(event["object_type"] == "webhook_endpoint" and event["actor"]["id"] == tenant.key_id for event in events)
    updated = next(event for event in events if event["action"] == "webhook_endpoint.updated")
    assert updated["data"]["before"]["description"] == "walk" and updated["data"]["after"]["description"] == "renamed"
    assert endpoint["secret"] not in response.text and rotated["secret"] not in response.text


async def test_read_scope_reads_and_cannot_write(client, tenant):
    endpoint = await create_webhook_endpoint(client, tenant)
    reader = await create_key(client, tenant, scopes=["webhooks:read"], name="webhook reader")
    assert (await client.get(f"/v1/webhook_endpoints/{endpoint['id']}", headers=bearer(reader["secret"]))).status_code == 200
    assert_error(await client.post(f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret", headers=bearer(reader["secret"])), 403, code="insufficient_scope")
    assert_error(await client.delete(f"/v1/webhook_endpoints/{endpoint['id']}", headers=bearer(reader["secret"])), 403, code="insufficient_scope")


async def test_another_tenant_gets_404_everywhere(client, tenant, other_tenant, db_pool):
    endpoint, event_id, delivery_id = await delivery_for(client, db_pool, tenant)
    path = f"/v1/webhook_endpoints/{endpoint['id']}"
    for method, url, kwargs in [
        ("GET", path, {}),
        ("PATCH", path, {"json": {"description": "mine now"}}),
        ("DELETE", path, {}),
        ("POST", f"{path}/rotate_secret", {"json": {}}),
        ("GET", f"{path}/deliveries", {}),
        ("GET", f"/v1/events/{event_id}/deliveries", {}),
        ("POST", f"/v1/webhook_deliveries/{delivery_id}/redeliver", {}),
    ]:
        assert_error(await client.request(method, url, headers=other_tenant.headers, **kwargs), 404, code="resource_missing")
    # Nothing changed for the owner.
    read = (await client.get(path, headers=tenant.headers)).json()
    assert read["description"] == endpoint["description"] and read["status"] == "enabled"
    assert (await client.get("/v1/webhook_endpoints", headers=other_tenant.headers)).json()["data"] == []


async def test_each_redelivery_is_audited_once(client, tenant, db_pool):
    endpoint, event_id, delivery_id = await delivery_for(client, db_pool, tenant)
    path = f"/v1/webhook_deliveries/{delivery_id}/redeliver"

    async def audited() -> list[dict]:
        response = await client.get("/v1/audit_events", params={"action": "webhook_delivery.redelivered", "limit": 100}, headers=tenant.headers)
        return response.json()["data"]

    # Pending: nothing is redelivered, nothing audited.
    assert (await client.post(path, headers=tenant.headers)).json()["round"] == 0
    assert await audited() == []
    await record(db_pool, delivery_id, status_code=500, outcome="failed")
    key = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    assert (await client.post(path, headers=key)).json()["round"] == 1
    replay = await client.post(path, headers=key)
    assert replay.headers["idempotent-replayed"] == "true"
    assert (await client.post(path, headers=tenant.headers)).json()["round"] == 1, "still pending"
    [event] = await audited()
    assert event["object_type"] == "webhook_delivery" and event["object_id"] == delivery_id
    assert event["actor"]["id"] == tenant.key_id and event["request_id"]
    assert event["data"] == {"event_id": event_id, "endpoint_id": endpoint["id"], "round": 1, "previous_status": "failed"}
    # The next round is another audit event.
    await record(db_pool, delivery_id, round_number=1, status_code=200, outcome="delivered")
    assert (await client.post(path, headers=tenant.headers)).json()["round"] == 2
    assert [e["data"]["round"] for e in await audited()] == [2, 1]
    # A refused redelivery (the endpoint disabled) writes nothing either.
    await record(db_pool, delivery_id, round_number=2, status_code=400, outcome="failed")
    await client.patch(f"/v1/webhook_endpoints/{endpoint['id']}", json={"disabled": True}, headers=tenant.headers)
    assert_error(await client.post(path, headers=tenant.headers), 409, code="webhook_endpoint_disabled")
    assert len(await audited()) == 2


async def test_a_long_page_of_deliveries_shows_each_ones_latest_attempts(client, tenant, db_pool):
    endpoint = await create_webhook_endpoint(client, tenant, enabled_events=["*"])
    event_ids = []
    for _ in range(8):
        event_ids.append(await insert_event(db_pool, tenant_id=tenant.id))
    await fan_out_tenant_events(db_pool, tenant_id=tenant.id)
    # Delivery i has 2 * i attempts: up to 14, more than the 10 a list shows.
    for index, event_id in enumerate(event_ids):
        for number in range(1, 2 * index + 1):
            await record(db_pool, f"whd_{event_id}_{endpoint['id']}", attempt_number=number, status_code=500, outcome="retry", body=f"{index}/{number}")
    path = f"/v1/webhook_endpoints/{endpoint['id']}/deliveries"
    seen, cursor = {}, {}
    while True:
        page = (await client.get(path, params={"limit": 3, **cursor}, headers=tenant.headers)).json()
        seen.update({item["event_id"]: item for item in page["data"]})
        if not page["has_more"]:
            break
        cursor = {"starting_after": page["data"][-1]["id"]}
    assert set(seen) == set(event_ids)
    for index, event_id in enumerate(event_ids):
        item = seen[event_id]
        shown = list(range(2 * index, max(2 * index - 10, 0), -1))
        assert [a["attempt_number"] for a in item["attempts"]] == shown, (index, item["attempts"])
        assert [a["response_body"] for a in item["attempts"]] == [f"{index}/{n}" for n in shown]
        assert item["attempts_has_more"] == (2 * index > 10) and item["attempts_count"] == 2 * index
        assert item["endpoint_kind"] == "endpoint"
    by_event = (await client.get(f"/v1/events/{event_ids[-1]}/deliveries", headers=tenant.headers)).json()["data"]
    assert [item["id"] for item in by_event] == [seen[event_ids[-1]]["id"]] and len(by_event[0]["attempts"]) == 10
