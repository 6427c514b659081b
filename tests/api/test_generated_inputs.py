"""A generated-input run with schemathesis over every operation of the OpenAPI document, against a
real API process over HTTP on 127.0.0.1 (the session stack's PostgreSQL, Temporal and worker).

Each operation gets a bounded number of requests, valid and invalid (schemathesis's positive and
negative modes), from merchant A (who owns the objects whose ids are mixed into paths), merchant
B (the other tenant: A's ids must be 404 to it), the platform admin, and no key at all. Every
answer must pass `not_a_server_error`, `status_code_conformance`, `response_schema_conformance`
and `content_type_conformance`, carry a request id (the error body's too), never echo the key
that was sent, and come back well within its timeout.

The API under test is a process of its own with generous rate limits, so that the run neither
spends its requests on 429s nor drains the buckets of the stack's API that other tests share.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from api.app import create_app
from cli.processes import free_port, spawn, stop_pid
from cli.stack import PROJECT_ROOT
from domain.webhooks import UrlPolicy, WebhookRuleError, parse_target_url
from tests.api.helpers import REQUEST_ID
from tests.api.routes import WEBHOOK_RECEIVER_URL
from tests.conftest import register_extra_process

EXAMPLES_PER_OPERATION = 40
# The client's timeout per request, and the bound every answer must come in under: an answer that
# takes longer is a request that ran past its timeout (a hang such as a workflow retrying forever).
REQUEST_TIMEOUT_S = 10.0
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
GENEROUS_TIERS = {tier: {"per_key": "1000000/minute", "per_ip": "1000000/minute"} for tier in ("create", "write", "read")}
# What breaks databases, logs and parsers, put in place of a generated string now and then:
# schemathesis's own text seldom holds them.
TRICKY_TEXT = ["\x00", "a\x00b", "\ud800", "\udfff", "\u202e", "'; --", "%00", "\U0001f642", "\\", '"', " ", "\r\n",
               "sk_test_" + "A" * 44]
# What the API says when a value's type is not what its field takes: for a request the document
# calls valid (schemathesis's positive mode), the document and the API disagree.
TYPE_REFUSALS = ("Input should be a valid", "cannot be null", "Field required", "Extra inputs are not permitted")
LOCAL_URL_POLICY = UrlPolicy(allow_private_targets=True, require_https=False)
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

DOCUMENT = create_app().openapi()
OPERATIONS = [f"{method.upper()} {path}" for path, item in DOCUMENT["paths"].items() for method in item]


@dataclass
class Identities:
    """Who calls, and the ids that exist (A's, and B's to be refused to A). No caller's own key is
    among the ids, so no generated request rotates or revokes a caller out of the run."""

    headers: dict[str, dict[str, str]]
    ids: dict[str, list[str]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def api_url(stack_instance, stack, tmp_path_factory):
    port = free_port()
    env = stack_instance.service_env(stack_instance.load_state())
    env.update({"SETTLE_API_RATE_LIMIT_TIERS": json.dumps(GENEROUS_TIERS), "SETTLE_API_LOG_LEVEL": "WARNING"})
    log_path = tmp_path_factory.mktemp("fuzz-api") / "api.log"
    args = [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    process = spawn(args, log_path=log_path, env=env, cwd=PROJECT_ROOT)
    register_extra_process(stack_instance, process.pid)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, f"the API exited: {log_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the API did not answer /healthz within 60 s"
            time.sleep(0.2)
        yield url
    finally:
        stop_pid(process.pid)


@pytest.fixture(scope="module")
def schema(api_url):
    loaded = schemathesis.openapi.from_url(f"{api_url}/openapi.json", timeout=REQUEST_TIMEOUT_S)
    assert sorted(loaded.raw_schema["paths"]) == sorted(DOCUMENT["paths"]), "the served document is not this checkout's"
    return loaded


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def identities(api_url, stack) -> Identities:
    admin = _bearer(stack["admin_api_key"])
    with httpx.Client(base_url=api_url, timeout=REQUEST_TIMEOUT_S) as http:

        def ok(response: httpx.Response) -> dict[str, Any]:
            assert response.status_code in (200, 201), response.text
            return response.json()

        def merchant(name: str) -> dict[str, Any]:
            return ok(http.post("/v1/tenants", json={"kind": "merchant", "name": f"fuzz {name} {uuid.uuid4().hex[:6]}"}, headers=admin))

        a, b = merchant("A"), merchant("B")
        a_key, b_key = _bearer(a["api_key"]["secret"]), _bearer(b["api_key"]["secret"])

        def victim(key: dict[str, str], index: int) -> str:
            return ok(http.post("/v1/api_keys", json={"name": f"victim {index}", "scopes": ["tenant:read"]}, headers=key))["id"]

        # Keys generated requests may rotate or revoke: A's, and one of B's (404 to A).
        victims = [victim(a_key, index) for index in range(4)] + [victim(b_key, 4)]
        endpoint = ok(http.post("/v1/webhook_endpoints", json={"url": WEBHOOK_RECEIVER_URL, "enabled_events": ["*"]}, headers=a_key))
        intent = ok(http.post("/v1/payment_intents", json={"amount": "1000000", "asset": "usdc"}, headers=a_key))
        events = ok(http.get("/v1/events", headers=a_key))["data"]
    event_ids = [event["id"] for event in events]
    return Identities(
        headers={"A": a_key, "B": b_key, "admin": admin},
        ids={
            "tenant_id": [a["id"], b["id"]],
            "key_id": victims,
            "endpoint_id": [endpoint["id"]],
            "intent_id": [intent["id"]],
            "event_id": event_ids,
            "delivery_id": [f"whd_{event_id}_{endpoint['id']}" for event_id in event_ids],
        },
    )


class KeyAuth(requests.auth.AuthBase):
    """The caller's key, set after schemathesis has prepared the request: a negative case that
    drops the generated Authorization header must not drop the caller's (the `none` caller is the
    case without one)."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        request.headers.update(self.headers)
        return request


def _scopes(operation: dict[str, Any]) -> list[str]:
    return [scope for requirement in operation.get("security", []) for scope in next(iter(requirement.values()))]


def _strategy(operation: Any, identities: Identities) -> st.SearchStrategy[Any]:
    """Generated cases, valid and invalid, and as many again with a real id in each path
    parameter that has some."""
    options = [
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    ]
    names = [parameter.name for parameter in operation.path_parameters]
    real = {name: identities.ids.get(name) for name in names if identities.ids.get(name)}
    if real:
        fixed = st.fixed_dictionaries({name: st.sampled_from(ids) for name, ids in real.items()})
        options.append(fixed.flatmap(lambda values: operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=values)))
    return st.one_of(options)


def _keep_urls_local(case: Any) -> None:
    """A webhook URL the API would accept is pointed at a closed local port: the stack's worker
    delivers events to registered endpoints, and this run reaches nothing but 127.0.0.1."""
    body = case.body
    if not isinstance(body, dict):
        return
    for name in ("url", "notify_url"):
        value = body.get(name)
        if not isinstance(value, str):
            continue
        try:
            target = parse_target_url(value, policy=LOCAL_URL_POLICY, param=name)
        except (WebhookRuleError, ValueError):
            continue
        if target.host not in LOCAL_HOSTS:
            body[name] = WEBHOOK_RECEIVER_URL


def _header(response: Any, name: str) -> str:
    return (response.headers.get(name.lower()) or [""])[0]


def _string_slots(value: Any) -> list[tuple[Any, Any]]:
    """(container, key) of every string in a JSON value, keys of objects excepted."""
    slots: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            slots += [(value, key)] if isinstance(item, str) else _string_slots(item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            slots += [(value, index)] if isinstance(item, str) else _string_slots(item)
    return slots


def _inject_tricky_text(case: Any, index: int, text: str) -> None:
    slots = _string_slots(case.body)
    if not any("\ud800" <= character <= "\udfff" for character in text):  # no URL can carry a lone surrogate
        slots += [(case.query, name) for name, value in (case.query or {}).items() if isinstance(value, str)]
    if slots:
        container, key = slots[index % len(slots)]
        container[key] = text


def _integral_floats(value: Any) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_integral_floats(item) for item in value.values())
    if isinstance(value, list):
        return any(_integral_floats(item) for item in value)
    return False


def _check_types_agree(case: Any, response: Any) -> None:
    """A request the document calls valid is never refused for a value's type or nullness."""
    if case.meta is None or case.meta.generation.mode.is_negative or response.status_code != 400:
        return
    message = response.json()["error"]["message"]
    if "Input should be a valid integer" in message and _integral_floats(case.body):
        # JSON Schema's `integer` takes 5.0; the API takes only 5, as its description says.
        return
    assert not any(refusal in message for refusal in TYPE_REFUSALS), (
        f"the document allows what the API refuses: {case.method} {case.path} {case.path_parameters} {case.query} "
        f"{case.body!r:.300} -> {message}"
    )


def _check_conventions(response: Any, sent_headers: dict[str, str]) -> None:
    where = f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text[:300]}"
    request_id = _header(response, "X-Request-Id")
    assert REQUEST_ID.match(request_id), where
    if response.status_code >= 400 and _header(response, "content-type").startswith("application/json"):
        body = response.json()
        assert body["error"]["request_id"] == request_id, where
        assert "Traceback" not in response.text, where
    token = sent_headers.get("Authorization", "").removeprefix("Bearer ")
    assert not token or token not in response.text, f"the key sent came back: {where}"


@pytest.mark.parametrize("label", OPERATIONS)
def test_generated_requests_get_documented_answers_in_time(label, schema, identities, api_url):
    operation = schema.find_operation_by_label(label)
    assert operation is not None, label
    method, path = label.split(" ", 1)
    admin_only = _scopes(DOCUMENT["paths"][path][method.lower()]) == ["platform_admin"]
    primary = "admin" if admin_only else "A"
    # Mostly the caller the operation is for, so requests get past authentication.
    callers = [primary] * 6 + ["A" if admin_only else "B", "admin" if not admin_only else "B", "none"]

    takes_key = any(parameter.name == "Idempotency-Key" for parameter in operation.headers)
    # Three requests in four get a fresh key (uuid4: Hypothesis's own draws repeat across
    # examples, and the store remembers every key); the rest keep the generated one.
    fresh_keys = st.sampled_from([True, True, True, False])
    # One request in three has a tricky string in place of one of its generated ones.
    tricky = st.none() | st.none() | st.tuples(st.integers(min_value=0, max_value=10**6), st.sampled_from(TRICKY_TEXT))

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategy(operation, identities), caller=st.sampled_from(callers), fresh_key=fresh_keys, tricky=tricky)
    def run(case: Any, caller: str, fresh_key: bool, tricky: tuple[int, str] | None) -> None:
        if tricky is not None:
            _inject_tricky_text(case, *tricky)
        _keep_urls_local(case)
        if takes_key and fresh_key:
            # Generated keys repeat ("0", "!"): without fresh ones nearly every POST would be a
            # 409 for reusing a key, and its body would never be looked at.
            case.headers["Idempotency-Key"] = str(uuid.uuid4())
        headers = dict(identities.headers.get(caller, {}))
        started = time.monotonic()
        response = case.call(base_url=api_url, auth=KeyAuth(headers), timeout=REQUEST_TIMEOUT_S)
        elapsed_s = time.monotonic() - started
        assert elapsed_s < REQUEST_TIMEOUT_S, f"{label} took {elapsed_s:.1f} s"
        case.validate_response(response, checks=CHECKS, headers=headers)
        _check_conventions(response, headers)
        if tricky is None:  # schemathesis still calls a case positive after a tricky string went in
            _check_types_agree(case, response)

    run()
