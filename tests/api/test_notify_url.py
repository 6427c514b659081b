"""A payment intent's own `notify_url`, end to end on the real stack: the in-process API with a
real Temporal client, the session stack's worker running the intent and the webhook dispatcher,
and a real receiver on 127.0.0.1 verifying with the Standard Webhooks package. Every event of an
intent naming a notify_url is delivered there, signed with the tenant's notify secret (created on
first need, shown once, rotatable with an overlap); bad URLs are refused before anything exists."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from datetime import datetime, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks.webhooks import Webhook

from api.app import create_app
from db.settings import WebhookSettings
from domain.webhooks import URL_LENGTH_MAX
from tests.api.conftest import create_key, create_tenant, make_client, settings_for_stack
from tests.api.helpers import assert_error
from tests.webhooks_receiver import WebhookReceiver

BODY = {"amount": "1500000", "asset": "usdc", "description": "notify me"}
DELIVERED_WITHIN_S = 30.0


@pytest.fixture
async def merchant(http, admin_headers):
    return await create_tenant(http, admin_headers, kind="merchant")


@pytest.fixture
async def receiver():
    async with WebhookReceiver() as running:
        yield running


async def create_intent(http, merchant, **body) -> dict:
    response = await http.post("/v1/payment_intents", json={**BODY, **body}, headers=merchant.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def event_of(http, merchant, intent_id: str, event_type: str) -> dict:
    deadline = time.monotonic() + DELIVERED_WITHIN_S
    while True:
        events = (await http.get("/v1/events", params={"object_id": intent_id, "limit": 100}, headers=merchant.headers)).json()["data"]
        found = [event for event in events if event["type"] == event_type]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no {event_type} event for {intent_id}: {[e['type'] for e in events]}"
        await asyncio.sleep(0.1)


async def received(receiver: WebhookReceiver, path: str, event_id: str):
    await receiver.wait_for(
        lambda: any(r.webhook_id == event_id for r in receiver.requests(path)), timeout_s=DELIVERED_WITHIN_S, what=f"{event_id} at {path}"
    )
    return next(r for r in receiver.requests(path) if r.webhook_id == event_id)


async def deliveries_when_delivered(http, merchant, event_id: str, *, count: int) -> list[dict]:
    """The event's delivery log once `count` deliveries are delivered (the receiver answers before
    the attempt is recorded)."""
    deadline = time.monotonic() + DELIVERED_WITHIN_S
    while True:
        response = await http.get(f"/v1/events/{event_id}/deliveries", headers=merchant.headers)
        assert response.status_code == 200, response.text
        deliveries = response.json()["data"]
        if len(deliveries) == count and all(d["status"] == "delivered" for d in deliveries):
            return deliveries
        assert time.monotonic() < deadline, f"deliveries of {event_id}: {deliveries}"
        await asyncio.sleep(0.1)


async def counts(db_pool, tenant_id: str) -> tuple[int, int, int]:
    """(intents, notify_url endpoints, notify secrets) of a tenant."""
    return (
        await db_pool.fetchval("SELECT count(*) FROM payment_intents WHERE tenant_id = $1", tenant_id),
        await db_pool.fetchval("SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1 AND kind = 'notify_url'", tenant_id),
        await db_pool.fetchval("SELECT count(*) FROM webhook_signing_secrets WHERE owner_kind = 'tenant' AND owner_id = $1", tenant_id),
    )


# ---------------------------------------------------------------------------- delivery
async def test_every_event_of_the_intent_is_delivered_to_its_notify_url_signed(http, merchant, receiver, db_pool):
    path = f"ipn/{merchant.id}"
    url = receiver.url(path)
    receiver.expect(path, secrets=[])  # verified below, with the secret the create response shows
    intent = await create_intent(http, merchant, notify_url=url)
    assert intent["notify_url"] == url
    secret = intent["notify_secret"]["secret"]
    assert secret.startswith("whsec_") and intent["notify_secret"]["object"] == "notify_secret"

    created = await event_of(http, merchant, intent["id"], "payment_intent.created")
    assert created["data"]["notify_url"] == url
    request = await received(receiver, path, created["id"])
    assert Webhook(secret).verify(request.body, request.headers)["id"] == created["id"]
    envelope = json.loads(request.body)
    assert envelope["type"] == "payment_intent.created" and envelope["tenant"] == merchant.id
    assert envelope["data"]["object"]["id"] == intent["id"] and envelope["data"]["object"]["notify_url"] == url

    # Later events go there too.
    canceled = await http.post(f"/v1/payment_intents/{intent['id']}/cancel", headers=merchant.headers)
    assert canceled.status_code == 200, canceled.text
    canceled_event = await event_of(http, merchant, intent["id"], "payment_intent.canceled")
    request = await received(receiver, path, canceled_event["id"])
    assert Webhook(secret).verify(request.body, request.headers)["type"] == "payment_intent.canceled"

    # The event's delivery log shows the notify_url delivery like an endpoint's.
    [delivery] = await deliveries_when_delivered(http, merchant, created["id"], count=1)
    assert delivery["endpoint_kind"] == "notify_url" and delivery["attempts_count"] == 1
    assert delivery["attempts"][0]["status_code"] == 200 and delivery["attempts"][0]["url"] == url
    hidden = delivery["endpoint_id"]
    # Its endpoint is the tenant's yet hidden: not listed, not readable, not editable there.
    assert (await http.get("/v1/webhook_endpoints", headers=merchant.headers)).json()["data"] == []
    for method, target, kwargs in [
        ("GET", f"/v1/webhook_endpoints/{hidden}", {}),
        ("PATCH", f"/v1/webhook_endpoints/{hidden}", {"json": {"url": "https://evil.example/x"}}),
        ("DELETE", f"/v1/webhook_endpoints/{hidden}", {}),
        ("POST", f"/v1/webhook_endpoints/{hidden}/rotate_secret", {"json": {}}),
        ("GET", f"/v1/webhook_endpoints/{hidden}/deliveries", {}),
    ]:
        assert_error(await http.request(method, target, headers=merchant.headers, **kwargs), 404, code="resource_missing")

    # The merchant's view shows the notify_url; the checkout page's does not.
    read = (await http.get(f"/v1/payment_intents/{intent['id']}", headers=merchant.headers)).json()
    assert read["notify_url"] == url and "notify_secret" not in read
    public = await http.get(f"/v1/payment_intents/{intent['id']}/public", params={"client_secret": intent["client_secret"]})
    assert public.status_code == 200 and "notify_url" not in public.json() and url not in public.text

    # The secret exists once per tenant: the next intent neither shows it nor makes another.
    again = await create_intent(http, merchant, notify_url=url)
    assert again["notify_secret"] is None
    assert (await counts(db_pool, merchant.id))[1:] == (1, 1)
    audit = (await http.get("/v1/audit_events", params={"action": "notify_secret.created"}, headers=merchant.headers)).json()["data"]
    assert len(audit) == 1 and audit[0]["object_type"] == "notify_secret" and secret not in json.dumps(audit)


async def test_a_rotated_notify_secret_signs_beside_the_new_one_during_the_overlap(http, merchant, receiver):
    path = f"rotating/{merchant.id}"
    url = receiver.url(path)
    first = (await create_intent(http, merchant, notify_url=url))["notify_secret"]["secret"]
    response = await http.post("/v1/notify_secret/rotate", json={"overlap_s": 3600}, headers=merchant.headers)
    assert response.status_code == 200, response.text
    rotation = response.json()
    second = rotation["secret"]
    assert second.startswith("whsec_") and second != first and rotation["object"] == "notify_secret_rotation"
    expires_at = datetime.fromisoformat(rotation["previous_secret_expires_at"])
    assert abs((expires_at - datetime.now(timezone.utc)).total_seconds() - 3600) < 60
    metadata = await http.get("/v1/notify_secret", headers=merchant.headers)
    assert metadata.json()["previous_secret_expires_at"] == rotation["previous_secret_expires_at"]
    assert set(metadata.json()) == {"object", "created_at", "previous_secret_expires_at"} and "whsec_" not in metadata.text

    receiver.expect(path, secrets=[first, second])
    intent = await create_intent(http, merchant, notify_url=url)
    created = await event_of(http, merchant, intent["id"], "payment_intent.created")
    request = await received(receiver, path, created["id"])
    # A receiver on either secret accepts it.
    assert request.verified_with == [0, 1] and len(request.signatures) == 2

    # Overlap 0: the previous secrets stop at once.
    third = (await http.post("/v1/notify_secret/rotate", json={"overlap_s": 0}, headers=merchant.headers)).json()
    assert third["previous_secret_expires_at"] is None and third["notify_secret"]["previous_secret_expires_at"] is None
    receiver.set_secrets(path, [first, second, third["secret"]])
    await http.post(f"/v1/payment_intents/{intent['id']}/cancel", headers=merchant.headers)
    canceled = await event_of(http, merchant, intent["id"], "payment_intent.canceled")
    request = await received(receiver, path, canceled["id"])
    assert request.verified_with == [2] and len(request.signatures) == 1
    actions = [e["action"] for e in (await http.get("/v1/audit_events", params={"limit": 100}, headers=merchant.headers)).json()["data"]]
    assert actions.count("notify_secret.rotated") == 2 and actions.count("notify_secret.created") == 1


async def test_without_notify_url_only_the_endpoints_get_the_events(http, merchant, receiver, db_pool):
    endpoint = await http.post(
        "/v1/webhook_endpoints", json={"url": receiver.url(f"ep/{merchant.id}"), "enabled_events": ["*"]}, headers=merchant.headers
    )
    assert endpoint.status_code == 201, endpoint.text
    receiver.expect(f"ep/{merchant.id}", secrets=[endpoint.json()["secret"]])
    intent = await create_intent(http, merchant)
    assert intent["notify_url"] is None and intent["notify_secret"] is None
    created = await event_of(http, merchant, intent["id"], "payment_intent.created")
    assert created["data"]["notify_url"] is None
    assert (await received(receiver, f"ep/{merchant.id}", created["id"])).verified
    [delivery] = await deliveries_when_delivered(http, merchant, created["id"], count=1)
    assert delivery["endpoint_id"] == endpoint.json()["id"] and delivery["endpoint_kind"] == "endpoint"
    assert (await counts(db_pool, merchant.id))[1:] == (0, 0), "no notify endpoint, no notify secret"

    # With a notify_url, the endpoints still get every event and the notify_url gets it too.
    path = f"ipn/{merchant.id}"
    receiver.expect(path, secrets=[])
    both = await create_intent(http, merchant, notify_url=receiver.url(path))
    created = await event_of(http, merchant, both["id"], "payment_intent.created")
    deliveries = await deliveries_when_delivered(http, merchant, created["id"], count=2)
    assert sorted(d["endpoint_kind"] for d in deliveries) == ["endpoint", "notify_url"]
    request = await received(receiver, path, created["id"])
    assert Webhook(both["notify_secret"]["secret"]).verify(request.body, request.headers)["id"] == created["id"]


async def test_the_worker_exports_the_delivery_metrics(http, merchant, receiver, stack):
    """Deliveries by outcome, attempts by result and event-to-2xx latency, on the worker's
    metrics port (what Prometheus scrapes), after a delivery the stack's worker made."""
    path = f"metrics/{merchant.id}"
    intent = await create_intent(http, merchant, notify_url=receiver.url(path))
    receiver.expect(path, secrets=[intent["notify_secret"]["secret"]])
    created = await event_of(http, merchant, intent["id"], "payment_intent.created")
    await received(receiver, path, created["id"])
    await deliveries_when_delivered(http, merchant, created["id"], count=1)
    url = stack["metrics_urls"]["worker_app"]
    text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read().decode())
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("settle_webhook_deliveries_total", (("outcome", "delivered"),))] >= 1
    assert samples[("settle_webhook_attempts_total", (("result", "2xx"),))] >= 1
    assert samples[("settle_webhook_event_to_delivered_seconds_count", ())] >= 1
    assert ("settle_webhook_attempt_latency_seconds_count", ()) in samples


# ---------------------------------------------------------------------------- refused
@pytest.mark.parametrize(
    "notify_url, code",
    [
        ("not a url", "parameter_invalid"),
        ("ftp://example.com/ipn", "parameter_invalid"),
        ("https://user:password@example.com/ipn", "parameter_invalid"),
        ("https://example.com/" + "a" * URL_LENGTH_MAX, "parameter_invalid"),
        ("", "parameter_invalid"),
        ("https:///no-host", "parameter_invalid"),
        ("http://169.254.169.254/latest/meta-data/", "url_not_allowed"),
        ("http://[::ffff:169.254.169.254]/", "url_not_allowed"),
        ("http://metadata.google.internal/computeMetadata/v1/", "url_not_allowed"),
        (42, "parameter_invalid"),
    ],
)
async def test_bad_notify_urls_are_400_and_create_nothing(http, merchant, db_pool, notify_url, code):
    error = assert_error(await http.post("/v1/payment_intents", json={**BODY, "notify_url": notify_url}, headers=merchant.headers), 400)
    assert error["param"] == "notify_url" and error["code"] == code, error
    assert await counts(db_pool, merchant.id) == (0, 0, 0)


async def test_private_targets_and_plain_http_are_refused_where_the_deployment_refuses_them(
    stack, api_settings, db_pool, temporal_client, admin_headers
):
    strict = create_app(settings_for_stack(stack), api_settings, pool=db_pool, temporal_client=temporal_client)
    strict.state.webhook_settings = WebhookSettings(allow_private_targets=False, require_https=True)
    async with strict.router.lifespan_context(strict), make_client(strict) as http:
        merchant = await create_tenant(http, admin_headers, kind="merchant")
        for url, code in [
            ("https://127.0.0.1/ipn", "url_not_allowed"),
            ("https://10.1.2.3/ipn", "url_not_allowed"),
            ("https://[::1]/ipn", "url_not_allowed"),
            ("https://localhost/ipn", "url_not_allowed"),
            ("https://shop.internal/ipn", "url_not_allowed"),
            ("http://example.com/ipn", "parameter_invalid"),
        ]:
            response = await http.post("/v1/payment_intents", json={**BODY, "notify_url": url}, headers=merchant.headers)
            error = assert_error(response, 400, code=code)
            assert error["param"] == "notify_url", (url, error)
            # Exactly what a webhook endpoint with that URL gets.
            endpoint = await http.post("/v1/webhook_endpoints", json={"url": url, "enabled_events": ["*"]}, headers=merchant.headers)
            assert assert_error(endpoint, 400, code=code)["param"] == "url"
        assert await counts(db_pool, merchant.id) == (0, 0, 0)


async def test_the_notify_secret_is_shown_only_to_a_key_that_may_manage_webhooks(http, merchant, receiver, db_pool):
    writer = await create_key(http, merchant, scopes=["payment_intents:write", "payment_intents:read"], name="intents only")
    response = await http.post(
        "/v1/payment_intents", json={**BODY, "notify_url": receiver.url("ipn/restricted")}, headers={"Authorization": f"Bearer {writer['secret']}"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["notify_secret"] is None and response.json()["notify_url"] == receiver.url("ipn/restricted")
    # It exists (deliveries are signed from the first event on); a webhooks:write key learns it by rotating.
    assert (await counts(db_pool, merchant.id))[1:] == (1, 1)
    metadata = (await http.get("/v1/notify_secret", headers=merchant.headers)).json()
    assert metadata["created_at"] is not None and metadata["previous_secret_expires_at"] is None
    rotated = (await http.post("/v1/notify_secret/rotate", json={"overlap_s": 0}, headers=merchant.headers)).json()
    assert rotated["secret"].startswith("whsec_")


async def test_a_notify_url_in_the_idempotent_replay_carries_no_secret(http, merchant, receiver):
    headers = {**merchant.headers, "Idempotency-Key": f"notify-{merchant.id}"}
    body = {**BODY, "notify_url": receiver.url("ipn/replay")}
    first = await http.post("/v1/payment_intents", json=body, headers=headers)
    replay = await http.post("/v1/payment_intents", json=body, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert first.json()["notify_secret"]["secret"].startswith("whsec_")
    assert replay.headers["idempotent-replayed"] == "true" and replay.json()["notify_secret"] == {"object": "notify_secret", "secret": None}
    other = await http.post("/v1/payment_intents", json={**body, "notify_url": receiver.url("ipn/other")}, headers=headers)
    assert_error(other, 409, code="idempotency_key_reused")


async def test_a_new_intent_naming_a_notify_url_that_answered_410_enables_it_again(http, merchant, receiver, db_pool):
    url = receiver.url(f"gone/{merchant.id}")
    await create_intent(http, merchant, notify_url=url)
    # As the sending activity leaves it after a 410 Gone.
    await db_pool.execute(
        "UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = 'gone' WHERE tenant_id = $1 AND kind = 'notify_url'", merchant.id
    )
    await create_intent(http, merchant, notify_url=url)
    row = await db_pool.fetchrow("SELECT status, disabled_reason FROM webhook_endpoints WHERE tenant_id = $1 AND kind = 'notify_url'", merchant.id)
    assert (row["status"], row["disabled_reason"]) == ("enabled", None)
