"""API keys: prefixes, shown once, stored as a hash, scopes never escalated (not by creating,
rotating or revoking a key), rotation with an overlap window, revocation, last-used time,
publishable keys."""

from __future__ import annotations

import asyncio
import hashlib

from api.app import create_app
from api.routing import iter_api_routes
from domain.tenants import SECRET_SCOPES
from tests.api.conftest import create_key
from tests.api.helpers import assert_error

ALL_SECRET_SCOPES = sorted(str(scope) for scope in SECRET_SCOPES)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_prefixes_and_secret_shown_once(client, tenant, db_pool):
    assert tenant.secret.startswith("sk_test_") and len(tenant.secret) == len("sk_test_") + 44
    restricted = await create_key(client, tenant, scopes=["payment_intents:read", "payment_intents:write"])
    publishable = await create_key(client, tenant, scopes=[], key_type="publishable")
    assert restricted["secret"].startswith("rk_test_") and publishable["secret"].startswith("pk_test_")
    assert restricted["scopes"] == ["payment_intents:read", "payment_intents:write"]
    assert publishable["scopes"] == ["checkout:read"]
    assert restricted["redacted_key"].startswith("rk_test_") and restricted["redacted_key"].endswith(restricted["secret"][-4:])
    # Readable afterwards without the secret, and the database holds only its hash.
    read = (await client.get(f"/v1/api_keys/{restricted['id']}", headers=tenant.headers)).json()
    assert "secret" not in read and restricted["secret"] not in str(read)
    listed = await client.get("/v1/api_keys", params={"limit": 100}, headers=tenant.headers)
    assert restricted["secret"] not in listed.text and tenant.secret not in listed.text
    row = await db_pool.fetchrow("SELECT * FROM api_keys WHERE id = $1", restricted["id"])
    assert bytes(row["secret_hash"]) == hashlib.sha256(restricted["secret"].encode()).digest()
    assert restricted["secret"] not in str(dict(row))


async def test_restricted_key_cannot_grant_more_than_it_holds(client, tenant):
    limited = await create_key(client, tenant, scopes=["api_keys:write", "tenant:read"], name="limited admin")
    response = await client.post("/v1/api_keys", json={"name": "escalate", "scopes": ["tenant:write"]}, headers=bearer(limited["secret"]))
    error = assert_error(response, 400, code="parameter_invalid")
    assert error["param"] == "scopes" and "tenant:write" in error["message"]
    ok = await client.post("/v1/api_keys", json={"name": "narrower", "scopes": ["tenant:read"]}, headers=bearer(limited["secret"]))
    assert ok.status_code == 201


async def test_key_creation_rules(client, tenant):
    cases = [
        ({"name": "no scopes", "type": "restricted"}, "scopes"),
        ({"name": "empty scopes", "scopes": []}, "scopes"),
        ({"name": "pk with scopes", "type": "publishable", "scopes": ["tenant:read"]}, "scopes"),
        ({"name": "checkout on rk", "scopes": ["checkout:read"]}, "scopes"),
        ({"name": "secret type", "type": "secret", "scopes": ["tenant:read"]}, "type"),
        ({"name": "", "scopes": ["tenant:read"]}, "name"),
        ({"name": "nul\x00", "scopes": ["tenant:read"]}, "name"),
        ({"name": "x" * 101, "scopes": ["tenant:read"]}, "name"),
        ({"name": "unknown scope", "scopes": ["root"]}, "scopes[0]"),
    ]
    for payload, param in cases:
        error = assert_error(await client.post("/v1/api_keys", json=payload, headers=tenant.headers), 400)
        assert error["param"] == param, (payload, error)


async def test_rotation_keeps_the_old_key_for_the_overlap(client, tenant):
    old = await create_key(client, tenant, scopes=["tenant:read"], name="rotating")
    response = await client.post(f"/v1/api_keys/{old['id']}/rotate", json={"expires_in_s": 3600}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    rotation = response.json()
    new, previous = rotation["api_key"], rotation["previous_api_key"]
    assert new["secret"].startswith("rk_test_") and new["secret"] != old["secret"]
    assert new["scopes"] == old["scopes"] and new["name"] == old["name"] and new["rotated_from"] == old["id"]
    assert previous["id"] == old["id"] and previous["status"] == "expiring" and previous["rotated_to"] == new["id"]
    assert previous["expires_at"] is not None
    # Both work during the overlap.
    assert (await client.get("/v1/tenant", headers=bearer(old["secret"]))).status_code == 200
    assert (await client.get("/v1/tenant", headers=bearer(new["secret"]))).status_code == 200
    # A key is rotated once; the successor is what rotates next.
    assert_error(await client.post(f"/v1/api_keys/{old['id']}/rotate", headers=tenant.headers), 409, code="api_key_already_rotated")


async def test_rotation_without_overlap_stops_the_old_key(client, tenant):
    old = await create_key(client, tenant, scopes=["tenant:read"], name="now")
    rotation = (await client.post(f"/v1/api_keys/{old['id']}/rotate", json={"expires_in_s": 0}, headers=tenant.headers)).json()
    assert rotation["previous_api_key"]["status"] == "expired"
    assert_error(await client.get("/v1/tenant", headers=bearer(old["secret"])), 401, code="api_key_expired")
    assert (await client.get("/v1/tenant", headers=bearer(rotation["api_key"]["secret"]))).status_code == 200


async def test_rotation_default_overlap_is_a_day(client, tenant):
    old = await create_key(client, tenant, scopes=["tenant:read"], name="default overlap")
    rotation = (await client.post(f"/v1/api_keys/{old['id']}/rotate", headers=tenant.headers)).json()
    from datetime import datetime

    expires_at = datetime.fromisoformat(rotation["previous_api_key"]["expires_at"])
    created_at = datetime.fromisoformat(rotation["api_key"]["created_at"])
    assert abs((expires_at - created_at).total_seconds() - 86400) < 5


async def test_rotating_the_first_secret_key_gives_a_secret_key(client, tenant):
    rotation = (await client.post(f"/v1/api_keys/{tenant.key_id}/rotate", json={"expires_in_s": 60}, headers=tenant.headers)).json()
    assert rotation["api_key"]["type"] == "secret" and rotation["api_key"]["secret"].startswith("sk_test_")


async def test_revocation_is_immediate_and_idempotent(client, tenant):
    key = await create_key(client, tenant, scopes=["tenant:read"], name="doomed")
    assert (await client.get("/v1/tenant", headers=bearer(key["secret"]))).status_code == 200
    revoked = (await client.post(f"/v1/api_keys/{key['id']}/revoke", headers=tenant.headers)).json()
    assert revoked["status"] == "revoked" and revoked["revoked_at"]
    assert_error(await client.get("/v1/tenant", headers=bearer(key["secret"])), 401, code="api_key_revoked")
    again = await client.post(f"/v1/api_keys/{key['id']}/revoke", headers=tenant.headers)
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked["revoked_at"]
    assert_error(await client.post(f"/v1/api_keys/{key['id']}/rotate", headers=tenant.headers), 409, code="api_key_not_active")


async def test_the_last_admin_key_cannot_be_revoked(client, tenant):
    assert_error(await client.post(f"/v1/api_keys/{tenant.key_id}/revoke", headers=tenant.headers), 409, code="last_admin_key")
    second = await create_key(client, tenant, scopes=["api_keys:write", "api_keys:read"], name="second admin")
    assert (await client.post(f"/v1/api_keys/{tenant.key_id}/revoke", headers=tenant.headers)).status_code == 200
    assert_error(await client.get("/v1/tenant", headers=tenant.headers), 401, code="api_key_revoked")
    assert_error(await client.post(f"/v1/api_keys/{second['id']}/revoke", headers=bearer(second["secret"])), 409, code="last_admin_key")


async def test_concurrent_revocations_leave_an_admin_key(client, tenant):
    # Every scope of the secret key, so each of the two may revoke the other.
    second = await create_key(client, tenant, scopes=ALL_SECRET_SCOPES, name="second admin")
    results = await asyncio.gather(
        client.post(f"/v1/api_keys/{tenant.key_id}/revoke", headers=bearer(second["secret"])),
        client.post(f"/v1/api_keys/{second['id']}/revoke", headers=tenant.headers),
    )
    assert sorted(response.status_code for response in results) in ([200, 409], [200, 401]), [r.text for r in results]


async def test_last_used_is_recorded(client, tenant):
    key = await create_key(client, tenant, scopes=["tenant:read"], name="used")
    assert key["last_used_at"] is None
    await client.get("/v1/tenant", headers=bearer(key["secret"]))
    read = (await client.get(f"/v1/api_keys/{key['id']}", headers=tenant.headers)).json()
    assert read["last_used_at"] is not None


async def test_unknown_key_id_is_404(client, tenant):
    error = assert_error(await client.get("/v1/api_keys/key_DoesNotExist00000000", headers=tenant.headers), 404, code="resource_missing")
    assert error["param"] == "id"
    assert_error(await client.post("/v1/api_keys/key_DoesNotExist00000000/rotate", headers=tenant.headers), 404)
    assert_error(await client.post("/v1/api_keys/key_DoesNotExist00000000/revoke", headers=tenant.headers), 404)


# ---------------------------------------------------------------------------- managing wider keys
async def _key_state(db_pool, tenant) -> tuple[list, list]:
    keys = await db_pool.fetch(
        "SELECT id, scopes, revoked_at, expires_at, rotated_to FROM api_keys WHERE tenant_id = $1 ORDER BY id", tenant.id
    )
    audit = await db_pool.fetch("SELECT id FROM audit_events WHERE tenant_id = $1 ORDER BY id", tenant.id)
    return [dict(row) for row in keys], [row["id"] for row in audit]


async def test_a_narrow_key_cannot_rotate_the_secret_key(client, tenant, db_pool):
    # The attack: a key that may only write keys rotates the owner's secret key with no overlap,
    # and would hold a new secret with every scope while the owner's key stops working.
    limited = await create_key(client, tenant, scopes=["api_keys:write"], name="key manager")
    before = await _key_state(db_pool, tenant)
    response = await client.post(f"/v1/api_keys/{tenant.key_id}/rotate", json={"expires_in_s": 0}, headers=bearer(limited["secret"]))
    error = assert_error(response, 403, code="insufficient_scope", type="permission_error")
    assert "sk_" not in response.text and "payouts:approve" in error["message"]
    assert await _key_state(db_pool, tenant) == before  # no new key, no expiry, no audit row
    assert (await client.get("/v1/tenant", headers=tenant.headers)).status_code == 200


async def test_a_narrow_key_cannot_revoke_a_wider_key(client, tenant, db_pool):
    limited = await create_key(client, tenant, scopes=["api_keys:write"], name="key manager")
    before = await _key_state(db_pool, tenant)
    error = assert_error(
        await client.post(f"/v1/api_keys/{tenant.key_id}/revoke", headers=bearer(limited["secret"])), 403, code="insufficient_scope"
    )
    assert tenant.key_id in error["message"]
    assert await _key_state(db_pool, tenant) == before
    assert (await client.get("/v1/tenant", headers=tenant.headers)).status_code == 200


async def test_one_scope_short_is_enough_to_refuse(client, tenant, db_pool):
    manager = await create_key(client, tenant, scopes=["api_keys:write", "tenant:read"], name="manager")
    target = await create_key(client, tenant, scopes=["tenant:read", "payment_intents:read"], name="target")
    before = await _key_state(db_pool, tenant)
    for action in ("rotate", "revoke"):
        response = await client.post(f"/v1/api_keys/{target['id']}/{action}", headers=bearer(manager["secret"]))
        error = assert_error(response, 403, code="insufficient_scope")
        assert "payment_intents:read" in error["message"] and "tenant:read" not in error["message"].split("(")[1]
    assert await _key_state(db_pool, tenant) == before


async def test_a_key_manages_keys_within_its_scopes(client, tenant):
    manager = await create_key(client, tenant, scopes=["api_keys:write", "tenant:read"], name="manager")
    peer = await create_key(client, tenant, scopes=["tenant:read"], name="narrower")
    publishable = await create_key(client, tenant, scopes=[], key_type="publishable", name="checkout")
    rotation = await client.post(f"/v1/api_keys/{peer['id']}/rotate", json={"expires_in_s": 0}, headers=bearer(manager["secret"]))
    assert rotation.status_code == 200, rotation.text
    assert rotation.json()["api_key"]["scopes"] == ["tenant:read"]
    revoked = await client.post(f"/v1/api_keys/{publishable['id']}/revoke", headers=bearer(manager["secret"]))
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    # Itself, too: it holds its own scopes.
    itself = await client.post(f"/v1/api_keys/{manager['id']}/rotate", json={"expires_in_s": 60}, headers=bearer(manager["secret"]))
    assert itself.status_code == 200 and itself.json()["api_key"]["type"] == "restricted"


async def test_a_key_with_every_scope_may_rotate_the_secret_key(client, tenant):
    equal = await create_key(client, tenant, scopes=ALL_SECRET_SCOPES, name="full restricted")
    rotation = await client.post(f"/v1/api_keys/{tenant.key_id}/rotate", json={"expires_in_s": 60}, headers=bearer(equal["secret"]))
    assert rotation.status_code == 200, rotation.text
    assert rotation.json()["api_key"]["type"] == "secret"


def test_every_route_that_changes_a_key_is_checked_here():
    """Rotate and revoke are the routes that change an existing key; a new one (an update of
    name or scopes) must refuse a caller lacking the key's scopes, with a test above."""
    app = create_app()
    changing = {
        f"{method} {route.path}"
        for route in iter_api_routes(app)
        if route.path.startswith("/v1/api_keys/{key_id}")
        for method in route.methods
        if method not in ("GET", "HEAD")
    }
    assert changing == {"POST /v1/api_keys/{key_id}/rotate", "POST /v1/api_keys/{key_id}/revoke"}
