"""Tenants: created by the platform admin with a ledger and a first key; settings changed by the
tenant, validated (EIP-55 addresses, fee bps, confirmation tiers) and audited."""

from __future__ import annotations

from tests.api.conftest import CLIENT_IP, create_tenant
from tests.api.helpers import assert_error

# anvil's dev accounts 1 and 2, checksummed.
ADDRESS_1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
ADDRESS_2 = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


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
        ({"kind": "merchant", "name": "x", "ledger_id": 1}, "ledger_id"),
    ]
    for payload, param in cases:
        error = assert_error(await client.post("/v1/tenants", json=payload, headers=admin_headers), 400)
        assert error["param"] == param, (payload, error)


async def test_unknown_tenant_is_404(client, admin_headers):
    assert_error(await client.get("/v1/tenants/ten_DoesNotExist000000000", headers=admin_headers), 404, code="resource_missing")


async def test_patch_settings(client, tenant):
    payload = {
        "fee_bps": 150,
        "payout_addresses": [{"chain_id": 31337, "address": ADDRESS_1, "label": "treasury"}],
        "confirmation_policy": {"tiers": [{"amount_base_units_min": 0, "confirmations_min": 1}, {"amount_base_units_min": 10**24, "confirmations_min": 12}]},
        "approvers": [{"address": ADDRESS_1, "name": "Alice"}, {"address": ADDRESS_2, "name": "Bob"}],
    }
    response = await client.patch("/v1/tenant", json=payload, headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["fee_bps"] == 150 and body["payout_addresses"][0]["address"] == ADDRESS_1
    assert body["confirmation_policy"]["tiers"][1]["amount_base_units_min"] == 10**24
    assert [approver["name"] for approver in body["approvers"]] == ["Alice", "Bob"]
    assert body["name"] == tenant.body["name"]  # left out, left alone
    again = (await client.get("/v1/tenant", headers=tenant.headers)).json()
    assert again == body
    cleared = (await client.patch("/v1/tenant", json={"confirmation_policy": None}, headers=tenant.headers)).json()
    assert cleared["confirmation_policy"] is None and cleared["fee_bps"] == 150


async def test_patch_refuses_bad_settings(client, tenant):
    lower = ADDRESS_1.lower()
    broken = ADDRESS_1[:-1] + ("c" if ADDRESS_1[-1] == "8" else "8")
    cases = [
        ({"fee_bps": 10_001}, "fee_bps", None),
        ({"fee_bps": 1.5}, "fee_bps", None),
        ({"fee_bps": None}, "fee_bps", "cannot be null"),
        ({"name": None}, "name", "cannot be null"),
        ({"payout_addresses": [{"chain_id": 1, "address": lower}]}, "payout_addresses[0].address", ADDRESS_1),
        ({"payout_addresses": [{"chain_id": 1, "address": broken}]}, "payout_addresses[0].address", "checksum"),
        ({"payout_addresses": [{"chain_id": 1, "address": "0x1234"}]}, "payout_addresses[0].address", None),
        ({"payout_addresses": [{"chain_id": 0, "address": ADDRESS_1}]}, "payout_addresses[0].chain_id", None),
        ({"payout_addresses": [{"chain_id": 1, "address": ADDRESS_1}] * 2}, "payout_addresses", "repeat"),
        ({"payout_addresses": [{"chain_id": 1, "address": ADDRESS_1}] * 21}, "payout_addresses", None),
        ({"approvers": [{"address": ADDRESS_2}, {"address": ADDRESS_2}]}, "approvers", "repeat"),
        ({"confirmation_policy": {"tiers": []}}, "confirmation_policy.tiers", None),
        ({"confirmation_policy": {"tiers": [{"amount_base_units_min": 5, "confirmations_min": 1}]}}, "confirmation_policy", "start at"),
        (
            {"confirmation_policy": {"tiers": [{"amount_base_units_min": 0, "confirmations_min": 6}, {"amount_base_units_min": 100, "confirmations_min": 2}]}},
            "confirmation_policy",
            "fewer confirmations",
        ),
        ({"confirmation_policy": {"tiers": [{"amount_base_units_min": 0, "confirmations_min": 1, "extra": 1}]}}, "confirmation_policy.tiers[0].extra", None),
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
    response = await client.patch("/v1/tenant", json={"fee_bps": 42, "name": tenant.body["name"]}, headers=tenant.headers)
    events = (await client.get("/v1/audit_events", params={"action": "tenant.settings_updated"}, headers=tenant.headers)).json()["data"]
    assert len(events) == 1
    event = events[0]
    assert event["actor"] == {"type": "api_key", "id": tenant.key_id}
    assert event["request_id"] == response.headers["x-request-id"] and event["ip"] == CLIENT_IP
    # Only what changed: the name was sent unchanged.
    assert event["data"] == {"changed": ["fee_bps"], "before": {"fee_bps": 0}, "after": {"fee_bps": 42}}
    # A change to nothing records nothing.
    await client.patch("/v1/tenant", json={"fee_bps": 42}, headers=tenant.headers)
    events = (await client.get("/v1/audit_events", params={"action": "tenant.settings_updated"}, headers=tenant.headers)).json()["data"]
    assert len(events) == 1
