"""The audit log: every key and settings change, with actor, time, request id and IP; append-only
in the database itself; readable by the tenant's admins only."""

from __future__ import annotations

import asyncpg
import pytest

from tests.api.conftest import CLIENT_IP, create_key
from tests.api.helpers import assert_error


async def test_key_lifecycle_is_audited(client, tenant):
    created = await client.post("/v1/api_keys", json={"name": "audited", "scopes": ["tenant:read"]}, headers=tenant.headers)
    key = created.json()
    rotated = await client.post(f"/v1/api_keys/{key['id']}/rotate", json={"expires_in_s": 60}, headers=tenant.headers)
    successor = rotated.json()["api_key"]
    revoked = await client.post(f"/v1/api_keys/{successor['id']}/revoke", headers=tenant.headers)
    events = (await client.get("/v1/audit_events", params={"limit": 100}, headers=tenant.headers)).json()["data"]
    by_request = {}
    for event in events:
        by_request.setdefault(event["request_id"], []).append(event)
    assert [e["action"] for e in by_request[created.headers["x-request-id"]]] == ["api_key.created"]
    assert sorted(e["action"] for e in by_request[rotated.headers["x-request-id"]]) == ["api_key.created", "api_key.rotated"]
    assert [e["action"] for e in by_request[revoked.headers["x-request-id"]]] == ["api_key.revoked"]
    for event in events:
        assert event["ip"] == CLIENT_IP and event["created_at"]
        for secret in (tenant.secret, key["secret"], successor["secret"]):
            assert secret not in str(event)
    rotation = by_request[rotated.headers["x-request-id"]]
    assert {e["object_id"] for e in rotation} == {key["id"], successor["id"]}
    ours = {created.headers["x-request-id"], rotated.headers["x-request-id"], revoked.headers["x-request-id"]}
    assert all(e["actor"] == {"type": "api_key", "id": tenant.key_id} for e in events if e["request_id"] in ours)


async def test_tenant_creation_is_audited_for_the_tenant(client, tenant):
    events = (await client.get("/v1/audit_events", params={"limit": 100}, headers=tenant.headers)).json()["data"]
    first = [event for event in events if event["actor"]["type"] == "platform_admin"]
    assert {event["action"] for event in first} == {"tenant.created", "api_key.created"}


async def test_audit_log_is_append_only(db_pool, client, tenant):
    event_id = (await client.get("/v1/audit_events", headers=tenant.headers)).json()["data"][0]["id"]
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await db_pool.execute("UPDATE audit_events SET action = 'nothing' WHERE id = $1", event_id)
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await db_pool.execute("DELETE FROM audit_events WHERE id = $1", event_id)
    async with db_pool.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            with pytest.raises(asyncpg.PostgresError, match="append-only"):
                await connection.execute("TRUNCATE audit_events")
        finally:
            await transaction.rollback()


async def test_only_keys_with_the_audit_scope_read_it(client, tenant):
    reader = await create_key(client, tenant, scopes=["tenant:read"], name="no audit")
    assert_error(await client.get("/v1/audit_events", headers={"Authorization": f"Bearer {reader['secret']}"}), 403, code="insufficient_scope")
