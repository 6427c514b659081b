"""Tenants: created by the platform admin with a ledger and a first key; the tenant's own
settings changed by the tenant, the platform's (fee, confirmation policy) only by the platform
admin (route or CLI); all validated (EIP-55 non-zero addresses, fee bps, confirmation tiers) and
audited."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from api.app import create_app
from tests.api.conftest import CLIENT_IP, create_key, create_tenant, make_client, settings_for_stack
from tests.api.helpers import assert_error

# anvil's dev accounts 1 and 2, checksummed.
ADDRESS_1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
ADDRESS_2 = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
ZERO_ADDRESS = "0x" + "0" * 40
POLICY = {"tiers": [{"amount_base_units_min": 0, "confirmations_min": 1}, {"amount_base_units_min": 10**24, "confirmations_min": 12}]}


async def test_create_merchant_and_program(client, admin_headers):
    merchant = await create_tenant(client, admin_headers, kind="merchant", name="sGate")
    program = await create_tenant(client, admin_headers, kind="program", name="SGE", fee_bps=250, approvers=[{"address": ADDRESS_1}])
    assert merchant.body["kind"] == "merchant" and program.body["kind"] == "program"
    assert merchant.body["ledger_id"] != program.body["ledger_id"]
    assert program.body["fee_bps"] == 250 and program.body["approvers"] == [{"address": ADDRESS_1, "name": None}]
    assert merchant.body["livemode"] is False and merchant.body["status"] == "active"
    assert merchant.body["api_key"]["type"] == "secret" and merchant.body["api_key"]["status"] == "active"
    read = (await client.get(f"/v1/tenants/{program.id}", headers=admin_headers)).json()
    assert "api_key" not in read and read["name"] == "SGE"


async def test_create_validates(client, admin_headers):
    cases = [
        ({"kind": "bank", "name": "x"}, "kind"),
        ({"name": "no kind"}, "kind"),
        ({"kind": "merchant", "name": "   "}, "name"),
        ({"kind": "merchant", "name": "x", "fee_bps": 10_001}, "fee_bps"),
        ({"kind": "merchant", "name": "x", "fee_bps": -1}, "fee_bps"),
        ({"kind": "merchant", "name": "x", "payout_addresses": [{"chain_id": 1, "address": ADDRESS_1.lower()}]}, "payout_addresses[0].address"),
        ({"kind": "merchant", "name": "x", "payout_addresses": [{"chain_id": 1, "address": ZERO_ADDRESS}]}, "payout_addresses[0].address"),
        ({"kind": "program", "name": "x", "approvers": [{"address": ZERO_ADDRESS}]}, "approvers[0].address"),
        ({"kind": "merchant", "name": "x", "ledger_id": 1}, "ledger_id"),
    ]
    for payload, param in cases:
        error = assert_error(await client.post("/v1/tenants", json=payload, headers=admin_headers), 400)
        assert error["param"] == param, (payload, error)


async def test_unknown_tenant_is_404(client, admin_headers):
    assert_error(await client.get("/v1/tenants/ten_DoesNotExist000000000", headers=admin_headers), 404, code="resource_missing")


async def test_patch_settings(client, tenant):
    payload = {
        "payout_addresses": [{"chain_id": 31337, "address": ADDRESS_1, "label": "treasury"}],
        "approvers": [{"address": ADDRESS_1, "name": "Alice"}, {"address": ADDRESS_2, "name": "Bob"}],
    }
    response = await client.patch("/v1/tenant", json=payload, headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["payout_addresses"][0]["address"] == ADDRESS_1
    assert [approver["name"] for approver in body["approvers"]] == ["Alice", "Bob"]
    assert body["name"] == tenant.body["name"]  # left out, left alone
    again = (await client.get("/v1/tenant", headers=tenant.headers)).json()
    assert again == body
    renamed = (await client.patch("/v1/tenant", json={"name": "Renamed"}, headers=tenant.headers)).json()
    assert renamed["name"] == "Renamed" and renamed["approvers"] == body["approvers"]


async def test_the_admin_changes_the_platform_settings(client, admin_headers, tenant):
    path = f"/v1/tenants/{tenant.id}"
    response = await client.patch(path, json={"fee_bps": 150, "confirmation_policy": POLICY}, headers=admin_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == tenant.id and body["fee_bps"] == 150
    assert body["confirmation_policy"]["tiers"][1]["amount_base_units_min"] == 10**24
    assert body["name"] == tenant.body["name"]  # left out, left alone
    assert (await client.get("/v1/tenant", headers=tenant.headers)).json() == body
    cleared = (await client.patch(path, json={"confirmation_policy": None}, headers=admin_headers)).json()
    assert cleared["confirmation_policy"] is None and cleared["fee_bps"] == 150


async def test_the_admin_route_refuses_bad_input(client, admin_headers, tenant):
    path = f"/v1/tenants/{tenant.id}"
    before = (await client.get("/v1/tenant", headers=tenant.headers)).json()
    cases = [
        ({"fee_bps": 10_001}, "fee_bps", None),
        ({"fee_bps": -1}, "fee_bps", None),
        ({"fee_bps": 1.5}, "fee_bps", None),
        ({"fee_bps": None}, "fee_bps", "cannot be null"),
        # The tenant's own settings are not the platform's to change.
        ({"name": "Renamed by the platform"}, "name", None),
        ({"payout_addresses": [{"chain_id": 1, "address": ADDRESS_1}]}, "payout_addresses", None),
        ({"confirmation_policy": {"tiers": []}}, "confirmation_policy.tiers", None),
        ({"confirmation_policy": {"tiers": [{"amount_base_units_min": 5, "confirmations_min": 1}]}}, "confirmation_policy", "start at"),
        (
            {"confirmation_policy": {"tiers": [{"amount_base_units_min": 0, "confirmations_min": 6}, {"amount_base_units_min": 100, "confirmations_min": 2}]}},
            "confirmation_policy",
            "fewer confirmations",
        ),
    ]
    for payload, param, words in cases:
        error = assert_error(await client.patch(path, json=payload, headers=admin_headers), 400)
        assert error["param"] == param, (payload, error)
        if words is not None:
            assert words in error["message"], (payload, error)
    assert (await client.get("/v1/tenant", headers=tenant.headers)).json() == before
    assert_error(await client.patch("/v1/tenants/ten_DoesNotExist000000000", json={"fee_bps": 1}, headers=admin_headers), 404, code="resource_missing")


async def test_a_merchant_cannot_set_its_own_fee_or_confirmations(client, tenant, db_pool):
    audit_before = await db_pool.fetchval("SELECT count(*) FROM audit_events WHERE tenant_id = $1", tenant.id)
    before = (await client.get("/v1/tenant", headers=tenant.headers)).json()
    one_block = {"tiers": [{"amount_base_units_min": 0, "confirmations_min": 1}]}
    cases = [
        ({"fee_bps": 0}, "fee_bps"),
        ({"fee_bps": before["fee_bps"]}, "fee_bps"),  # even unchanged: the field is not the tenant's
        ({"confirmation_policy": one_block}, "confirmation_policy"),
        ({"confirmation_policy": None}, "confirmation_policy"),
        ({"name": "Sneaky", "fee_bps": 0}, "fee_bps"),
    ]
    for payload, param in cases:
        response = await client.patch("/v1/tenant", json=payload, headers=tenant.headers)
        error = assert_error(response, 403, code="platform_setting", type="permission_error")
        assert error["param"] == param and "platform admin" in error["message"], (payload, error)
    # Nothing changed, not even the name sent beside the fee; nothing audited.
    assert (await client.get("/v1/tenant", headers=tenant.headers)).json() == before
    assert await db_pool.fetchval("SELECT count(*) FROM audit_events WHERE tenant_id = $1", tenant.id) == audit_before


async def test_a_restricted_key_with_tenant_write_cannot_set_the_fee_either(client, admin_headers):
    merchant = await create_tenant(client, admin_headers, kind="merchant", fee_bps=200)
    every = await create_key(client, merchant, scopes=["tenant:read", "tenant:write"], name="settings")
    headers = {"Authorization": f"Bearer {every['secret']}"}
    assert_error(await client.patch("/v1/tenant", json={"fee_bps": 0}, headers=headers), 403, code="platform_setting")
    assert (await client.get("/v1/tenant", headers=headers)).json()["fee_bps"] == 200


def test_the_route_documents_the_refusal():
    document = create_app().openapi()
    merchant_patch = document["paths"]["/v1/tenant"]["patch"]
    assert "platform_setting" in merchant_patch["responses"]["403"]["description"]
    admin_patch = document["paths"]["/v1/tenants/{tenant_id}"]["patch"]
    assert admin_patch["security"] == [{"BearerAuth": ["platform_admin"]}]
    schema = document["components"]["schemas"][admin_patch["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]]
    assert set(schema["properties"]) == {"fee_bps", "confirmation_policy"} and schema["additionalProperties"] is False


async def test_patch_refuses_bad_settings(client, tenant):
    lower = ADDRESS_1.lower()
    broken = ADDRESS_1[:-1] + ("c" if ADDRESS_1[-1] == "8" else "8")
    cases = [
        ({"name": None}, "name", "cannot be null"),
        ({"payout_addresses": [{"chain_id": 1, "address": ZERO_ADDRESS}]}, "payout_addresses[0].address", "zero address"),
        ({"approvers": [{"address": ZERO_ADDRESS}]}, "approvers[0].address", "zero address"),
        ({"payout_addresses": [{"chain_id": 1, "address": lower}]}, "payout_addresses[0].address", ADDRESS_1),
        ({"payout_addresses": [{"chain_id": 1, "address": broken}]}, "payout_addresses[0].address", "checksum"),
        ({"payout_addresses": [{"chain_id": 1, "address": "0x1234"}]}, "payout_addresses[0].address", None),
        ({"payout_addresses": [{"chain_id": 0, "address": ADDRESS_1}]}, "payout_addresses[0].chain_id", None),
        ({"payout_addresses": [{"chain_id": 1, "address": ADDRESS_1}] * 2}, "payout_addresses", "repeat"),
        ({"payout_addresses": [{"chain_id": 1, "address": ADDRESS_1}] * 21}, "payout_addresses", None),
        ({"approvers": [{"address": ADDRESS_2}, {"address": ADDRESS_2}]}, "approvers", "repeat"),
    ]
    before = (await client.get("/v1/tenant", headers=tenant.headers)).json()
    for payload, param, words in cases:
        error = assert_error(await client.patch("/v1/tenant", json=payload, headers=tenant.headers), 400)
        if param is not None:
            assert error["param"] == param, (payload, error)
        if words is not None:
            assert words in error["message"], (payload, error)
    assert (await client.get("/v1/tenant", headers=tenant.headers)).json() == before


async def test_settings_changes_are_audited(client, tenant):
    response = await client.patch("/v1/tenant", json={"name": "Audited", "approvers": []}, headers=tenant.headers)
    events = (await client.get("/v1/audit_events", params={"action": "tenant.settings_updated"}, headers=tenant.headers)).json()["data"]
    assert len(events) == 1
    event = events[0]
    assert event["actor"] == {"type": "api_key", "id": tenant.key_id}
    assert event["request_id"] == response.headers["x-request-id"] and event["ip"] == CLIENT_IP
    # Only what changed: the approvers were sent unchanged.
    assert event["data"] == {"changed": ["name"], "before": {"name": tenant.body["name"]}, "after": {"name": "Audited"}}
    # A change to nothing records nothing.
    await client.patch("/v1/tenant", json={"name": "Audited"}, headers=tenant.headers)
    events = (await client.get("/v1/audit_events", params={"action": "tenant.settings_updated"}, headers=tenant.headers)).json()["data"]
    assert len(events) == 1


async def test_platform_changes_are_audited_and_shown_to_the_tenant(client, admin_headers, tenant):
    response = await client.patch(f"/v1/tenants/{tenant.id}", json={"fee_bps": 75}, headers=admin_headers)
    assert response.status_code == 200, response.text
    events = (await client.get("/v1/audit_events", params={"action": "tenant.settings_updated"}, headers=tenant.headers)).json()["data"]
    assert len(events) == 1
    event = events[0]
    assert event["actor"] == {"type": "platform_admin", "id": "platform_admin"} and event["object_id"] == tenant.id
    assert event["request_id"] == response.headers["x-request-id"] and event["ip"] == CLIENT_IP
    assert event["data"] == {"changed": ["fee_bps"], "before": {"fee_bps": 0}, "after": {"fee_bps": 75}}


# ---------------------------------------------------------------------------- the CLI
def _settle(stack, *args: str) -> subprocess.CompletedProcess:
    env = {"SETTLE_DATABASE_URL": stack["database_url"], "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "cli.main", "tenants", *args], capture_output=True, text=True, env=env, timeout=60)


async def test_the_cli_changes_the_platform_settings_audited(client, tenant, stack, db_pool):
    result = _settle(stack, "update", tenant.id, "--fee-bps", "325", "--confirmation-policy", json.dumps(POLICY), "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["id"] == tenant.id and printed["fee_bps"] == 325 and printed["confirmation_policy"] == POLICY
    assert (await client.get("/v1/tenant", headers=tenant.headers)).json() == printed
    events = (await client.get("/v1/audit_events", params={"action": "tenant.settings_updated"}, headers=tenant.headers)).json()["data"]
    assert len(events) == 1 and events[0]["actor"]["type"] == "cli" and events[0]["actor"]["id"].startswith("cli:")
    assert events[0]["data"]["changed"] == ["confirmation_policy", "fee_bps"]
    assert events[0]["data"]["after"] == {"fee_bps": 325, "confirmation_policy": POLICY}
    cleared = _settle(stack, "update", tenant.id, "--confirmation-policy", "null")
    assert cleared.returncode == 0, cleared.stderr
    assert "325 bps" in cleared.stdout
    assert (await client.get("/v1/tenant", headers=tenant.headers)).json()["confirmation_policy"] is None


@pytest.mark.parametrize(
    "args, words",
    [
        (["--fee-bps", "20000"], "--fee-bps"),
        (["--confirmation-policy", "{not json"], "not JSON"),
        (["--confirmation-policy", '{"tiers": [{"amount_base_units_min": 5, "confirmations_min": 1}]}'], "start at"),
        ([], "nothing to change"),
    ],
)
async def test_the_cli_refuses_bad_input(client, tenant, stack, args, words):
    before = (await client.get("/v1/tenant", headers=tenant.headers)).json()
    result = _settle(stack, "update", tenant.id, *args)
    assert result.returncode == 1 and words in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert (await client.get("/v1/tenant", headers=tenant.headers)).json() == before


def test_the_cli_names_an_unknown_tenant(stack):
    result = _settle(stack, "update", "ten_DoesNotExist000000000", "--fee-bps", "1")
    assert result.returncode == 1 and "No such tenant: ten_DoesNotExist000000000" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------------------- the fee intents carry
@pytest.fixture
async def intents_client(stack, api_settings, db_pool, temporal_client):
    app = create_app(settings_for_stack(stack), api_settings, pool=db_pool, temporal_client=temporal_client)
    async with app.router.lifespan_context(app), make_client(app) as http:
        yield http


async def test_new_intents_carry_the_fee_the_platform_set(intents_client, admin_headers):
    merchant = await create_tenant(intents_client, admin_headers, kind="merchant", fee_bps=100)
    intent = {"amount": "1000000", "asset": "usdc"}
    # The merchant's attempt to waive its fee changes nothing its next intent carries.
    assert_error(await intents_client.patch("/v1/tenant", json={"fee_bps": 0}, headers=merchant.headers), 403, code="platform_setting")
    first = await intents_client.post("/v1/payment_intents", json=intent, headers=merchant.headers)
    assert first.status_code == 201, first.text
    assert first.json()["fee_bps"] == 100
    patched = await intents_client.patch(f"/v1/tenants/{merchant.id}", json={"fee_bps": 250}, headers=admin_headers)
    assert patched.status_code == 200, patched.text
    second = await intents_client.post("/v1/payment_intents", json=intent, headers=merchant.headers)
    assert second.status_code == 201 and second.json()["fee_bps"] == 250
