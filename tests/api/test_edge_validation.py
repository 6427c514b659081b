"""What the API refuses at the edge, before anything is stored or started: text PostgreSQL cannot
store (NUL, unpaired surrogates) anywhere in a body, a path or a query; a JSON key named twice;
NaN; integers sent as strings, floats or booleans; numeric spellings of metadata and loopback hosts
as webhook URLs. Each is a quick 400 in the one error shape, naming the field, and leaves nothing
behind: no row, no workflow."""

from __future__ import annotations

import asyncio
import json
import time
import typing
import uuid

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from api.app import create_app
from api.routing import iter_api_routes
from api.schemas import Input
from tests.api.conftest import create_tenant
from tests.api.helpers import assert_error
from tests.api.routes import WEBHOOK_RECEIVER_URL

INTENT = {"amount": "2500000", "asset": "usdc", "description": "Order 42", "metadata": {"order": "42"}}
# The whole answer, refusal included, well within any client's timeout.
ANSWER_S_MAX = 5.0
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def merchant(http, admin_headers):
    return await create_tenant(http, admin_headers, kind="merchant")


async def _post_raw(http, path: str, raw: str | bytes, headers: dict[str, str]):
    """POST a body as written: json.dumps cannot write a duplicate key, and `\\ud800` must reach
    the server as the JSON escape a client would send."""
    content = raw.encode() if isinstance(raw, str) else raw
    started = time.monotonic()
    response = await asyncio.wait_for(http.post(path, content=content, headers={**headers, **JSON}), timeout=ANSWER_S_MAX * 2)
    assert time.monotonic() - started < ANSWER_S_MAX, f"{path} took {time.monotonic() - started:.1f} s"
    return response


def _raw_intent(**fields_as_json: str) -> str:
    """The intent's body with some fields written as raw JSON text."""
    parts = [f'"{name}": {json.dumps(value)}' for name, value in INTENT.items() if name not in fields_as_json]
    parts += [f'"{name}": {text}' for name, text in fields_as_json.items()]
    return "{" + ", ".join(parts) + "}"


async def _workflows_of(temporal_client, tenant_id: str) -> list[str]:
    return [execution.id async for execution in temporal_client.list_workflows(f"SettleTenant = '{tenant_id}'")]


# ---------------------------------------------------------------------------- text PostgreSQL cannot store
UNSTORABLE = [
    pytest.param(_raw_intent(description='"Order \\u0000 42"'), "description", id="nul-in-description"),
    pytest.param(_raw_intent(metadata='{"order": "4\\u00002"}'), "metadata.order", id="nul-in-metadata-value"),
    pytest.param(_raw_intent(metadata='{"or\\u0000der": "42"}'), "metadata", id="nul-in-metadata-key"),
    pytest.param(_raw_intent(description='"Order \\ud800 42"'), "description", id="lone-surrogate-in-description"),
    pytest.param(_raw_intent(metadata='{"order": "\\udfff"}'), "metadata.order", id="lone-surrogate-in-metadata-value"),
    pytest.param(_raw_intent(success_url='"https://shop.example/\\u0000"'), "success_url", id="nul-in-success-url"),
]


@pytest.mark.parametrize("raw, param", UNSTORABLE)
async def test_unstorable_text_in_an_intent_is_a_quick_400_that_creates_nothing(http, merchant, db_pool, temporal_client, raw, param):
    key = str(uuid.uuid4())
    response = await _post_raw(http, "/v1/payment_intents", raw, {**merchant.headers, "Idempotency-Key": key})
    error = assert_error(response, 400, code="parameter_invalid")
    assert error["param"] == param, error
    assert "must not contain" in error["message"]
    listed = await http.get("/v1/payment_intents", headers=merchant.headers)
    assert listed.status_code == 200 and listed.json()["data"] == []
    assert await db_pool.fetchval("SELECT count(*) FROM payment_intents WHERE tenant_id = $1", merchant.id) == 0
    # The key was given back: the same key with a good body creates the intent.
    created = await http.post("/v1/payment_intents", json=INTENT, headers={**merchant.headers, "Idempotency-Key": key})
    assert created.status_code == 201, created.text
    # Only that intent's workflow ever started for this tenant (waiting until visibility shows it
    # makes the absence of any other meaningful).
    deadline = time.monotonic() + 20
    workflows = await _workflows_of(temporal_client, merchant.id)
    while created.json()["id"] not in workflows and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        workflows = await _workflows_of(temporal_client, merchant.id)
    assert workflows == [created.json()["id"]]


async def test_unstorable_text_is_refused_in_every_body(http, merchant, admin_headers):
    cases = [
        ("/v1/webhook_endpoints", f'{{"url": "{WEBHOOK_RECEIVER_URL}", "enabled_events": ["*"], "description": "a\\u0000b"}}', "description"),
        ("/v1/webhook_endpoints", f'{{"url": "{WEBHOOK_RECEIVER_URL}\\ud800", "enabled_events": ["*"]}}', "url"),
        ("/v1/api_keys", '{"name": "reader\\u0000", "scopes": ["tenant:read"]}', "name"),
        # Validation comes before the intent is looked up: no such intent, still a 400 naming the field.
        ("/v1/payment_intents/pi_aaaaaaaaaaaaaaaaaaaaaaaa/refunds",
         '{"amount": "1", "address": "0x90F79bf6EB2c4f870365E785982E1f101E93b906", "metadata": {"k": "\\u0000"}}', "metadata.k"),
        # An unknown field whose name is unstorable: refused without echoing the name back.
        ("/v1/api_keys", '{"name": "reader", "scopes": ["tenant:read"], "\\ud800": 1}', None),
    ]
    for path, raw, param in cases:
        error = assert_error(await _post_raw(http, path, raw, merchant.headers), 400, code="parameter_invalid")
        assert error["param"] == param, (path, error)
    nested = '{"kind": "merchant", "name": "Shop", "payout_addresses": [{"chain_id": 1, "address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "label": "\\u0000"}]}'
    error = assert_error(await _post_raw(http, "/v1/tenants", nested, admin_headers), 400, code="parameter_invalid")
    assert error["param"] == "payout_addresses[0].label"
    patch = await http.patch("/v1/tenant", content=b'{"name": "Shop\\u0000"}', headers={**merchant.headers, **JSON})
    assert assert_error(patch, 400, code="parameter_invalid")["param"] == "name"


async def test_unstorable_text_in_a_path_or_query_is_a_400(http, merchant):
    query = await http.get("/v1/payment_intents/pi_aaaaaaaaaaaaaaaaaaaaaaaa/public", params={"client_secret": "a\x00b"})
    assert assert_error(query, 400, code="parameter_invalid")["param"] == "client_secret"
    path = await http.get("/v1/payment_intents/pi_aaaa%00aaaa", headers=merchant.headers)
    assert assert_error(path, 400, code="parameter_invalid")["param"] == "intent_id"
    # A parameter the route does not read is ignored, as any other undeclared one is.
    undeclared = await http.get("/v1/tenant", params={"unused": "a\x00b"}, headers=merchant.headers)
    assert undeclared.status_code == 200, undeclared.text


# ---------------------------------------------------------------------------- JSON as RFC 8259 has it
async def test_a_key_named_twice_is_refused(http, merchant, db_pool):
    response = await _post_raw(http, "/v1/payment_intents", '{"amount": "1", "amount": "2", "asset": "usdc"}', merchant.headers)
    error = assert_error(response, 400, code="parameter_invalid")
    assert error["param"] == "amount" and "more than once" in error["message"]
    nested = _raw_intent(metadata='{"order": "1", "order": "2"}')
    assert assert_error(await _post_raw(http, "/v1/payment_intents", nested, merchant.headers), 400)["param"] == "order"
    assert await db_pool.fetchval("SELECT count(*) FROM payment_intents WHERE tenant_id = $1", merchant.id) == 0
    # The same key in two different objects is no duplicate.
    ok = _raw_intent(metadata='{"amount": "1"}')
    assert (await _post_raw(http, "/v1/payment_intents", ok, merchant.headers)).status_code == 201


async def test_nan_and_infinity_are_not_json(http, merchant):
    for constant in ("NaN", "Infinity", "-Infinity"):
        response = await _post_raw(http, "/v1/payment_intents", _raw_intent(amount=constant), merchant.headers)
        assert_error(response, 400, code="body_invalid_json")


async def test_a_body_that_is_not_utf8_is_invalid_json(http, merchant):
    response = await _post_raw(http, "/v1/payment_intents", b'{"amount": "1", "asset": "\xff"}', merchant.headers)
    assert_error(response, 400, code="body_invalid_json")


# ---------------------------------------------------------------------------- integers are integers
@pytest.mark.parametrize("value", ['"3600"', "3600.0", "true"], ids=["string", "float", "boolean"])
async def test_an_integer_field_takes_only_a_json_integer(http, merchant, value):
    response = await _post_raw(http, "/v1/payment_intents", _raw_intent(expires_in=value), merchant.headers)
    assert assert_error(response, 400, code="parameter_invalid")["param"] == "expires_in"


async def test_integers_and_booleans_are_strict_in_other_bodies(http, merchant, admin_headers):
    fee = await http.post("/v1/tenants", json={"kind": "merchant", "name": "Shop", "fee_bps": "5"}, headers=admin_headers)
    assert assert_error(fee, 400, code="parameter_invalid")["param"] == "fee_bps"
    policy = {"tiers": [{"amount_base_units_min": "0", "confirmations_min": 1}]}
    tiers = await http.post("/v1/tenants", json={"kind": "merchant", "name": "Shop", "confirmation_policy": policy}, headers=admin_headers)
    assert assert_error(tiers, 400, code="parameter_invalid")["param"] == "confirmation_policy.tiers[0].amount_base_units_min"
    rotate = await http.post(f"/v1/api_keys/{merchant.key_id}/rotate", json={"expires_in_s": "0"}, headers=merchant.headers)
    assert assert_error(rotate, 400, code="parameter_invalid")["param"] == "expires_in_s"
    endpoint = await http.post(
        "/v1/webhook_endpoints", json={"url": WEBHOOK_RECEIVER_URL, "enabled_events": ["*"]}, headers=merchant.headers
    )
    assert endpoint.status_code == 201, endpoint.text
    disabled = await http.patch(f"/v1/webhook_endpoints/{endpoint.json()['id']}", json={"disabled": "true"}, headers=merchant.headers)
    assert assert_error(disabled, 400, code="parameter_invalid")["param"] == "disabled"


async def test_the_amount_takes_an_integer_or_a_string_of_digits_as_documented(http, merchant):
    for amount in (2500000, "2500000"):
        response = await http.post("/v1/payment_intents", json={**INTENT, "amount": amount}, headers=merchant.headers)
        assert response.status_code == 201 and response.json()["amount"] == "2500000", response.text
    for amount in (2500000.0, True, "2.5", "0x10"):
        response = await http.post("/v1/payment_intents", json={**INTENT, "amount": amount}, headers=merchant.headers)
        assert assert_error(response, 400, code="parameter_invalid")["param"] == "amount"


def _request_models() -> set[type[BaseModel]]:
    models: set[type[BaseModel]] = set()
    for route in iter_api_routes(create_app()):
        if route.body_field is None:
            continue
        annotation = route.body_field.field_info.annotation
        for candidate in typing.get_args(annotation) or (annotation,):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                models.add(candidate)
    return models


def _nested_inputs(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        for candidate in _types_in(field.annotation):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                _nested_inputs(candidate, seen)


def _types_in(annotation: typing.Any) -> list[typing.Any]:
    found = [annotation]
    for argument in typing.get_args(annotation):
        found += _types_in(argument)
    return found


def _lax_numbers(annotation: typing.Any, *, strict: bool) -> list[typing.Any]:
    """The int/bool types within `annotation` that no Strict() covers."""
    if typing.get_origin(annotation) is typing.Annotated:
        inner, *metadata = typing.get_args(annotation)
        return _lax_numbers(inner, strict=strict or any(getattr(item, "strict", None) is True for item in metadata))
    if annotation in (int, bool):
        return [] if strict else [annotation]
    return [lax for argument in typing.get_args(annotation) for lax in _lax_numbers(argument, strict=strict)]


def _field_is_strict(field: FieldInfo) -> bool:
    return any(getattr(item, "strict", None) is True for item in field.metadata)


def test_every_request_body_is_an_input_with_strict_integers_and_booleans():
    models = _request_models()
    assert {"PaymentIntentCreate", "RefundCreate", "TenantCreate", "WebhookEndpointCreate"} <= {model.__name__ for model in models}
    every: set[type[BaseModel]] = set()
    for model in models:
        _nested_inputs(model, every)
    for model in every:
        assert issubclass(model, Input), f"{model.__name__} must derive from api.schemas.Input"
        for name, field in model.model_fields.items():
            lax = _lax_numbers(field.annotation, strict=_field_is_strict(field))
            assert not lax, f"{model.__name__}.{name} must be strict (Field(strict=True) or Strict()): {lax}"


# ---------------------------------------------------------------------------- numeric hosts
METADATA_SPELLINGS = [
    "http://2852039166/",
    "http://0xa9fea9fe/",
    "http://0251.0376.0251.0376/",
    "http://169.254.43518/",
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://169.254.169.254./",
]


@pytest.mark.parametrize("url", METADATA_SPELLINGS)
async def test_a_numeric_spelling_of_the_metadata_address_is_refused_at_registration(http, merchant, url):
    response = await http.post("/v1/webhook_endpoints", json={"url": url, "enabled_events": ["*"]}, headers=merchant.headers)
    error = assert_error(response, 400, code="url_not_allowed")
    assert error["param"] == "url" and "metadata" in error["message"]
    intent = await http.post("/v1/payment_intents", json={**INTENT, "notify_url": url}, headers=merchant.headers)
    assert assert_error(intent, 400, code="url_not_allowed")["param"] == "notify_url"
    listed = await http.get("/v1/webhook_endpoints", headers=merchant.headers)
    assert listed.json()["data"] == []


async def test_a_host_ending_in_a_number_that_is_no_address_is_refused(http, merchant):
    for url in ("http://1.2.3.4.5/", "http://99999999999/", "http://example.0/"):
        response = await http.post("/v1/webhook_endpoints", json={"url": url, "enabled_events": ["*"]}, headers=merchant.headers)
        assert assert_error(response, 400, code="parameter_invalid")["param"] == "url"
