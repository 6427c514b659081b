"""The SSRF-guarded client as httpx callers see it: its transport is built from the public names
of httpx and httpcore (no private attribute of either), and what the pool raises reaches the
caller as httpx's own errors, which the sending activity sorts into timeout and network."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from activities.webhook_transport import GuardedClient, GuardedTransport, create_webhook_http_client
from cli.processes import free_port
from tests.webhooks_receiver import Reply, WebhookReceiver, fast_settings


async def test_a_response_streams_through_with_its_status_headers_and_body():
    async with WebhookReceiver() as receiver:
        receiver.expect("x", secrets=[], replies=[Reply(status=503, headers={"retry-after": "7"}, body="busy " * 1000)])
        async with create_webhook_http_client(fast_settings(allow_private_targets=True)) as client:
            assert isinstance(client, GuardedClient) and client.allow_private_targets
            async with client.stream("POST", receiver.url("x"), content=b'{"a": 1}') as response:
                body = b"".join([chunk async for chunk in response.aiter_raw()])
        assert response.status_code == 503 and response.headers["retry-after"] == "7" and body == b"busy " * 1000
        assert receiver.received[0].body == b'{"a": 1}' and receiver.received[0].headers["accept-encoding"] == "identity"


async def test_a_receiver_that_hangs_is_an_httpx_read_timeout():
    release = asyncio.Event()
    async with WebhookReceiver() as receiver:
        receiver.expect("slow", secrets=[], replies=[Reply(hold=release)])
        async with create_webhook_http_client(fast_settings(allow_private_targets=True, read_timeout_s=0.3)) as client:
            try:
                with pytest.raises(httpx.ReadTimeout):
                    await client.post(receiver.url("slow"), content=b"{}")
            finally:
                release.set()


async def test_a_closed_port_is_an_httpx_connect_error():
    async with create_webhook_http_client(fast_settings(allow_private_targets=True)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{free_port()}/x", content=b"{}")


def test_the_transport_is_httpxs_public_interface_over_httpcores_public_pool():
    transport = GuardedTransport(allow_private_targets=False, limits=httpx.Limits(max_connections=2))
    assert isinstance(transport, httpx.AsyncBaseTransport) and not isinstance(transport, httpx.AsyncHTTPTransport)
