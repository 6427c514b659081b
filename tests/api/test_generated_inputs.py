"""A generated-input run over the OpenAPI document: for every operation, a bounded number of
requests (valid, half-valid and junk: parameters, bodies, headers, keys) against the app and the
session's PostgreSQL. No answer may be a 5xx; every answer must be one the document lists, with
a request id, in the error shape when it is an error, and in the documented schema when not."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.config import ApiSettings
from tests.api.conftest import GENEROUS_TIERS, settings_for_stack
from tests.api.helpers import REQUEST_ID
from tests.api.openapi_strategies import ANY_JSON, NASTY_TEXT, TEXT, Document

EXAMPLES_PER_OPERATION = 60

DOCUMENT = Document(create_app().openapi())
OPERATIONS = [
    (path, method)
    for path, item in DOCUMENT.document["paths"].items()
    for method in item
]


@dataclass
class Identities:
    """Who calls and which ids exist: the fuzzed tenant's key is never in the path ids, so it
    cannot rotate or revoke itself out of the run."""

    headers: dict[str, dict[str, str] | None]
    ids: list[str]


class AppInThread:
    """The app, its lifespan (and so its own pool) and an httpx client on an event loop in a
    thread of their own, so Hypothesis's synchronous tests can call it and still shrink."""

    def __init__(self, app) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-app", daemon=True)
        self.thread.start()
        self.stack = contextlib.AsyncExitStack()
        self.client = self._run(self._open())

    async def _open(self) -> httpx.AsyncClient:
        await self.stack.enter_async_context(self.app.router.lifespan_context(self.app))
        transport = httpx.ASGITransport(app=self.app, client=("203.0.113.99", 5000))
        return await self.stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://settle.test"))

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._run(self.client.request(method, url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        try:
            self._run(self.stack.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()


@pytest.fixture(scope="module")
def fuzz_client(stack):
    app = create_app(settings_for_stack(stack), ApiSettings(rate_limit_tiers=GENEROUS_TIERS, json_logs=False))
    client = AppInThread(app)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def identities(fuzz_client, stack) -> Identities:
    admin = {"Authorization": f"Bearer {stack['admin_api_key']}"}

    def tenant(kind: str) -> dict[str, Any]:
        response = fuzz_client.post("/v1/tenants", json={"kind": kind, "name": f"fuzz {kind}"}, headers=admin)
        assert response.status_code == 201, response.text
        return response.json()

    owner, other = tenant("merchant"), tenant("program")
    owner_headers = {"Authorization": f"Bearer {owner['api_key']['secret']}"}
    victims = []
    for index in range(6):
        response = fuzz_client.post("/v1/api_keys", json={"name": f"victim {index}", "scopes": ["tenant:read"]}, headers=owner_headers)
        victims.append(response.json()["id"])
    restricted = fuzz_client.post("/v1/api_keys", json={"name": "reader", "scopes": ["tenant:read", "audit_events:read"]}, headers=owner_headers).json()
    return Identities(
        headers={
            "owner": owner_headers,
            "admin": admin,
            "other": {"Authorization": f"Bearer {other['api_key']['secret']}"},
            "restricted": {"Authorization": f"Bearer {restricted['secret']}"},
            "none": None,
            "garbage": {"Authorization": "Bearer sk_test_" + "x" * 44},
            "basic": {"Authorization": "Basic Zm9vOmJhcg=="},
        },
        ids=[*victims, other["api_key"]["id"], owner["id"], other["id"], "key_DoesNotExist0000", "ten_DoesNotExist0000"],
    )


def _parameter_values(parameter: dict[str, Any], ids: list[str]) -> st.SearchStrategy[Any]:
    schema = parameter.get("schema", {})
    if parameter["in"] == "path":
        plain = TEXT.filter(lambda value: value.strip() not in ("", ".", ".."))
        return st.one_of(st.sampled_from(ids), st.sampled_from(ids), DOCUMENT.values(schema), plain)
    if parameter["in"] == "header":
        printable = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)
        return st.one_of(st.uuids().map(str), DOCUMENT.values(schema).filter(lambda value: value is None or value.isascii()), printable)
    if parameter["name"] in ("starting_after", "ending_before"):
        return st.one_of(st.sampled_from(ids), DOCUMENT.values(schema), TEXT)
    return st.one_of(DOCUMENT.values(schema), DOCUMENT.values(schema), TEXT, st.integers())


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, str) else json.dumps(value)


@st.composite
def requests(draw, path: str, method: str, identities: Identities) -> dict[str, Any]:
    operation = DOCUMENT.document["paths"][path][method]
    url, query, headers = path, {}, {}
    for parameter in operation.get("parameters", []):
        required = parameter.get("required", False)
        if not required and draw(st.booleans()):
            continue
        value = draw(_parameter_values(parameter, identities.ids))
        if value is None:
            continue
        if parameter["in"] == "path":
            url = url.replace("{" + parameter["name"] + "}", quote(_as_text(value), safe=""))
        elif parameter["in"] == "query":
            query[parameter["name"]] = _as_text(value)
        elif parameter["in"] == "header":
            headers[parameter["name"]] = _as_text(value)
    # Mostly the caller the operation is for, so requests get past authentication.
    scopes = [scope for requirement in operation.get("security", []) for scope in next(iter(requirement.values()))]
    primary = "admin" if scopes == ["platform_admin"] else "owner"
    who = draw(st.sampled_from([primary] * 7 + ["admin", "owner", "other", "restricted", "none", "garbage", "basic"]))
    if identities.headers[who]:
        headers.update(identities.headers[who])
    content: bytes | None = None
    if "requestBody" in operation or method in ("post", "patch"):
        schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        choice = draw(st.sampled_from(["schema"] * 6 + ["json", "bytes", "none"]))
        if choice == "schema":
            content = json.dumps(draw(DOCUMENT.values_or_junk(schema))).encode()
        elif choice == "json":
            content = json.dumps(draw(ANY_JSON)).encode()
        elif choice == "bytes":
            content = draw(st.binary(max_size=60) | NASTY_TEXT.map(lambda text: text.encode("utf-8", "surrogatepass")))
        if content is not None:
            headers["Content-Type"] = draw(st.sampled_from(["application/json"] * 5 + ["text/plain", "application/merge-patch+json"]))
    return {"method": method.upper(), "url": url, "params": query, "headers": headers, "content": content}


def check_response(path: str, method: str, request: dict[str, Any], response) -> None:
    where = f"{request['method']} {request['url']} {request['params']} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, where
    assert REQUEST_ID.match(response.headers.get("x-request-id", "")), where
    documented = DOCUMENT.document["paths"][path][method]["responses"]
    status = str(response.status_code)
    if request["url"].count("/") != path.count("/") and response.status_code == 404:
        return  # A path parameter held a "/" and the URL named no route: the app-wide 404.
    assert status in documented, f"undocumented status: {where}"
    content = documented[status].get("content", {}).get("application/json")
    if content is None:
        return
    body = response.json()
    DOCUMENT.check(body, content["schema"])
    if response.status_code >= 400:
        assert body["error"]["request_id"] == response.headers["x-request-id"], where
        assert "Traceback" not in response.text
        for secret_header in (request["headers"].get("Authorization", ""),):
            token = secret_header.removeprefix("Bearer ").removeprefix("Basic ")
            assert not token or token not in response.text, where


@pytest.mark.parametrize("path, method", OPERATIONS, ids=[f"{method.upper()} {path}" for path, method in OPERATIONS])
def test_no_5xx_and_only_documented_answers(path, method, fuzz_client, identities):
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(request=requests(path, method, identities))
    def run(request: dict[str, Any]) -> None:
        response = fuzz_client.request(
            request["method"], request["url"], params=request["params"], headers=request["headers"], content=request["content"]
        )
        check_response(path, method, request, response)

    run()
