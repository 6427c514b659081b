"""SSRF: a merchant-supplied URL may not reach loopback, private, link-local or metadata
addresses unless the deployment allows them; the address is checked when the connection is made
(so DNS rebinding cannot slip past), and what is refused is never contacted."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from activities.webhook_transport import GuardedNetworkBackend, TargetBlocked, create_webhook_http_client
from activities.webhooks import WebhookActivities
from domain.webhooks import DeliveryStatus, WebhookRuleError
from tests.webhooks_receiver import WebhookReceiver, fast_settings, webhook_test_bed

PUBLIC_ADDRESS = "93.184.216.34"


def resolving(answers: dict[str, list[list[str]]]):
    """A stand-in resolver: each name answers from its list, one answer per lookup (the last
    repeats), like a rebinding DNS server."""
    calls: dict[str, int] = {}
    real = GuardedNetworkBackend._resolve

    async def resolve(self, host: str, port: int) -> list[str]:
        if host not in answers:
            return await real(self, host, port)
        index = calls.get(host, 0)
        calls[host] = index + 1
        return answers[host][min(index, len(answers[host]) - 1)]

    return resolve


async def test_private_targets_are_refused_where_the_deployment_does_not_allow_them(temporal_client, db_pool, unique_id):
    settings = fast_settings(allow_private_targets=False)
    async with WebhookReceiver() as receiver, webhook_test_bed(temporal_client, db_pool, unique_id=unique_id, settings=settings) as bed:
        created = await bed.create_endpoint(receiver.url("internal"))
        receiver.expect("internal", secrets=[created.secret])
        event_id = await bed.insert_event()
        delivery = await bed.wait_delivery(f"whd_{event_id}_{created.endpoint.id}", timeout_s=20)
        assert delivery.status is DeliveryStatus.FAILED and delivery.attempts_count == 1  # refused, not retried
        assert delivery.last_error.startswith("blocked") and "loopback" in delivery.last_error
        assert receiver.received == []
        # A refused target says nothing about the receiver's health.
        assert await bed.pool.fetchval("SELECT failing_since FROM webhook_endpoints WHERE id = $1", created.endpoint.id) is None


async def test_dns_rebinding_is_caught_at_connect_time(temporal_client, db_pool, unique_id, monkeypatch):
    # The name looks public when checked, then answers with the receiver's loopback address.
    monkeypatch.setattr(
        GuardedNetworkBackend,
        "_resolve",
        resolving({"hooks.rebind.test": [[PUBLIC_ADDRESS], ["127.0.0.1"]], "mixed.rebind.test": [[PUBLIC_ADDRESS, "127.0.0.1"]]}),
    )
    settings = fast_settings(allow_private_targets=False)
    async with WebhookReceiver() as receiver, webhook_test_bed(temporal_client, db_pool, unique_id=unique_id, settings=settings) as bed:
        rebinding = await bed.create_endpoint(receiver.url("rebind", host="hooks.rebind.test"))
        mixed = await bed.create_endpoint(receiver.url("mixed", host="mixed.rebind.test"))
        event_id = await bed.insert_event()
        for endpoint, host in ((rebinding, "hooks.rebind.test"), (mixed, "mixed.rebind.test")):
            delivery = await bed.wait_delivery(f"whd_{event_id}_{endpoint.endpoint.id}", timeout_s=20)
            assert delivery.status is DeliveryStatus.FAILED
            assert delivery.last_error == f"blocked: {host} resolves to 127.0.0.1, a loopback address"
        assert receiver.received == []


async def test_the_guarded_client_connects_to_the_address_it_checked(monkeypatch):
    monkeypatch.setattr(GuardedNetworkBackend, "_resolve", resolving({"hooks.local.test": [["127.0.0.1"]]}))
    async with WebhookReceiver() as receiver:
        receiver.expect("x", secrets=[])
        allowed = create_webhook_http_client(fast_settings(allow_private_targets=True))
        refused = create_webhook_http_client(fast_settings(allow_private_targets=False))
        try:
            response = await allowed.post(receiver.url("x", host="hooks.local.test"), content=b"{}")
            assert response.status_code == 200
            assert receiver.received[0].headers["host"] == f"hooks.local.test:{receiver.port}"
            with pytest.raises(TargetBlocked):
                await refused.post(receiver.url("x", host="hooks.local.test"), content=b"{}")
            with pytest.raises(TargetBlocked):
                await refused.post(receiver.url("x"), content=b"{}")
            assert len(receiver.received) == 1
        finally:
            await allowed.aclose()
            await refused.aclose()


async def test_metadata_addresses_are_refused_even_in_local_development(temporal_client, db_pool, unique_id):
    async with webhook_test_bed(temporal_client, db_pool, unique_id=unique_id) as bed:
        assert bed.settings.allow_private_targets
        with pytest.raises(WebhookRuleError):
            await bed.create_endpoint("http://169.254.169.254/latest/meta-data/")
        # A notify_url is named by an object, not registered: it is checked when sent.
        event_id = await bed.insert_event(data={"id": "pi_m", "notify_url": "http://169.254.169.254/latest/meta-data/"})
        endpoint_id = None
        for _ in range(200):
            endpoint_id = await bed.pool.fetchval(
                "SELECT id FROM webhook_endpoints WHERE tenant_id = $1 AND kind = 'notify_url'", bed.tenant_id
            )
            if endpoint_id:
                break
            await asyncio.sleep(0.05)
        delivery = await bed.wait_delivery(f"whd_{event_id}_{endpoint_id}", timeout_s=20)
        assert delivery.status is DeliveryStatus.FAILED and "metadata" in delivery.last_error


async def test_activities_refuse_an_unguarded_http_client(db_pool):
    async with httpx.AsyncClient() as plain:
        with pytest.raises(ValueError, match="SSRF-guarded"):
            WebhookActivities(db_pool, plain, settings=fast_settings())
    guarded = create_webhook_http_client(fast_settings(allow_private_targets=True))
    try:
        with pytest.raises(ValueError, match="allow_private_targets"):
            WebhookActivities(db_pool, guarded, settings=fast_settings(allow_private_targets=False))
    finally:
        await guarded.aclose()
