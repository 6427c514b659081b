"""The HTTP client webhooks are sent with: SSRF-guarded, no redirects, no proxies from the
environment, explicit limits and timeouts.

The guard sits where the connection is made: `GuardedNetworkBackend` resolves the host itself,
refuses it when any address is forbidden, and connects to an address it checked, so DNS rebinding
cannot slip past the check. httpx's own transport gives no way to pass a network backend to its
connection pool, so `GuardedTransport` builds the httpcore pool itself and adapts it to httpx's
transport interface, using only the public names of both libraries.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, Iterable

import httpcore
import httpx

from activities.errors import SettleError
from db.settings import WebhookSettings, get_settings
from domain.webhooks import address_block_reason

_ADDRESSES_TRIED_MAX = 4


class TargetBlocked(SettleError):
    """The URL resolves to an address this deployment may not reach (SSRF guard)."""


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, refuses the connection when any address is forbidden, and
    connects to an address it checked: what was checked is what is reached."""

    def __init__(self, *, allow_private_targets: bool, backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.allow_private_targets = allow_private_targets
        self._backend = backend or httpcore.AnyIOBackend()

    async def _resolve(self, host: str, port: int) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        addresses: list[str] = []
        for _family, _type, _proto, _canonical, sockaddr in infos:
            address = str(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(self._resolve(host, port), timeout)
        except (OSError, UnicodeError) as error:
            raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from error
        except asyncio.TimeoutError as error:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from error
        for address in addresses:
            reason = address_block_reason(ipaddress.ip_address(address.split("%", 1)[0]), allow_private_targets=self.allow_private_targets)
            if reason:
                # Any forbidden address refuses the host: a name answering with a public and a
                # private address is exactly what a rebinding attack looks like.
                raise TargetBlocked(f"{host} resolves to {address}, {reason}")
        last_error: Exception | None = None
        for address in addresses[:_ADDRESSES_TRIED_MAX]:
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                last_error = error
        if last_error is None:
            raise httpcore.ConnectError(f"{host} has no address")
        raise last_error

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None):
        raise TargetBlocked("webhooks are never sent over unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


# httpcore's errors as httpx's, most specific first: callers catch httpx's (httpx.TimeoutException,
# httpx.TransportError), whichever transport is under the client. Anything else (TargetBlocked)
# passes through as it is.
_HTTPX_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as error:
        for core_error, httpx_error in _HTTPX_ERRORS:
            if isinstance(error, core_error):
                raise httpx_error(str(error)) from error
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpcore.Response) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._stream.aiter_stream():
                yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport over an httpcore connection pool that connects through the guarded
    network backend: HTTP/1.1, no retries, the client's limits, TLS verified against the
    default trust store (never one named by the environment)."""

    def __init__(self, *, allow_private_targets: bool, limits: httpx.Limits, verify: bool = True) -> None:
        self.allow_private_targets = allow_private_targets
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            retries=0,
            network_backend=GuardedNetworkBackend(allow_private_targets=allow_private_targets),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host, port=request.url.port, target=request.url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status, headers=response.headers, stream=_ResponseStream(response), extensions=response.extensions
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class GuardedClient(httpx.AsyncClient):
    """An httpx client whose every request goes through a GuardedTransport it built itself, so
    whoever holds one knows it is guarded (and how) without looking inside httpx."""

    def __init__(self, settings: WebhookSettings) -> None:
        assert settings.allow_private_targets is not None
        self.allow_private_targets = settings.allow_private_targets
        limits = httpx.Limits(
            max_connections=settings.http_connections_max,
            max_keepalive_connections=min(settings.http_connections_max, 100),
            keepalive_expiry=30.0,
        )
        super().__init__(
            transport=GuardedTransport(allow_private_targets=settings.allow_private_targets, limits=limits),
            follow_redirects=False,
            trust_env=False,
            timeout=webhook_timeout(settings),
            # Plain bodies only: the logged prefix of a response is readable, and no decompression
            # runs on a receiver's say-so.
            headers={"user-agent": settings.user_agent, "accept-encoding": "identity"},
        )


def create_webhook_http_client(settings: WebhookSettings | None = None) -> GuardedClient:
    """The HTTP client webhook activities need. One per worker; close it when the worker stops."""
    return GuardedClient(settings or get_settings().webhooks)


def webhook_timeout(settings: WebhookSettings) -> httpx.Timeout:
    return httpx.Timeout(
        connect=settings.connect_timeout_s,
        read=settings.read_timeout_s,
        write=settings.read_timeout_s,
        pool=settings.connect_timeout_s,
    )
