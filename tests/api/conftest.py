"""API fixtures: the app in-process (httpx over ASGI) against the session's real PostgreSQL,
and tenants made through the API itself. Tests isolate themselves by creating their own tenants."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from api.app import create_app
from db.settings import ApiSettings, Settings

# High enough that only the rate-limit tests, with their own app, ever see a 429.
GENEROUS_TIERS = {
    tier: {"per_key": "1000000/minute", "per_ip": "1000000/minute"} for tier in ("create", "write", "read")
}
CLIENT_IP = "203.0.113.10"


def settings_for_stack(stack: dict) -> Settings:
    return Settings(
        env="test",
        database_url=stack["database_url"],
        admin_api_key=stack["admin_api_key"],
        # The stack's Temporal and worker (task queue, chain, tokens): the intent routes use them.
        temporal_address=stack["temporal_address"],
        temporal_namespace=stack["temporal_namespace"],
        task_queue=stack["task_queue"],
        rpc_url=stack["rpc_url"],
        chain_id=stack["chain_id"],
        contracts=stack["contracts"],
        treasury_address=stack["accounts"]["treasury"]["address"],
    )


def make_client(app: Any, *, ip: str = CLIENT_IP) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 50000)), base_url="http://settle.test")


@dataclass
class TenantHandle:
    id: str
    kind: str
    secret: str
    key_id: str
    body: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


async def create_tenant(client: httpx.AsyncClient, admin_headers: dict[str, str], *, kind: str = "merchant", name: str | None = None, **settings: Any) -> TenantHandle:
    response = await client.post(
        "/v1/tenants", json={"kind": kind, "name": name or f"Test {kind} {uuid.uuid4().hex[:8]}", **settings}, headers=admin_headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return TenantHandle(id=body["id"], kind=kind, secret=body["api_key"]["secret"], key_id=body["api_key"]["id"], body=body)


async def create_key(client: httpx.AsyncClient, owner: TenantHandle, *, scopes: list[str], name: str = "restricted", key_type: str = "restricted") -> dict[str, Any]:
    payload: dict[str, Any] = {"name": name, "type": key_type}
    if key_type == "restricted":
        payload["scopes"] = scopes
    response = await client.post("/v1/api_keys", json=payload, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="session")
def settings(stack) -> Settings:
    return settings_for_stack(stack)


@pytest.fixture(scope="session")
def api_settings() -> ApiSettings:
    return ApiSettings(rate_limit_tiers=GENEROUS_TIERS, json_logs=False)


@pytest.fixture(scope="session")
async def api_app(settings, api_settings, db_pool):
    app = create_app(settings, api_settings, pool=db_pool)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(api_app):
    async with make_client(api_app) as http:
        yield http


@pytest.fixture(scope="session")
def admin_headers(stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack['admin_api_key']}"}


@pytest.fixture
async def tenant(client, admin_headers) -> TenantHandle:
    return await create_tenant(client, admin_headers, kind="merchant")


@pytest.fixture
async def other_tenant(client, admin_headers) -> TenantHandle:
    return await create_tenant(client, admin_headers, kind="program")


@pytest.fixture
def world(client, admin_headers, tenant, other_tenant):
    from tests.api.routes import World

    return World(client=client, admin_headers=admin_headers, owner=tenant, intruder=other_tenant)


@pytest.fixture(scope="module")
async def intents_app(stack, api_settings, db_pool, temporal_client):
    """An app that can start workflows (the session's `api_app` has no Temporal client), per module."""
    app = create_app(settings_for_stack(stack), api_settings, pool=db_pool, temporal_client=temporal_client)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def http(intents_app):
    async with make_client(intents_app) as client:
        yield client
