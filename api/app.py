"""The HTTP front. It authenticates, validates, starts/signals/queries workflows and serves read
models; it never posts to the ledger and never signs a chain transaction.

`create_app(settings, pool=None)` builds an app from the one `Settings` (its `api`, `webhooks`
and `checkout` sections included); its lifespan opens the asyncpg
pool from `settings.database_url` (unless a pool is handed in, which then stays the caller's)
and purges expired idempotency keys in the background. `app` is what `uvicorn api.app:app` runs,
configured from the environment.

The conventions every `/v1` route follows live in one place each: auth, scopes and rate limits
in `api.auth`, idempotency in `api.idempotency`, errors in `api.errors`, lists in
`api.pagination`, request ids and logs in `api.context`/`api.logs`, the routers' checks in
`api.routing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from fastapi import FastAPI

from api.context import RequestContextMiddleware
from api.errors import install_error_handlers
from api.idempotency import IdempotentReplay, replay_response
from api.logs import LOGGER_NAME, configure_logging
from api.openapi import install_openapi
from api.ratelimit import TokenBuckets
from api.routers import api_keys, audit_events, ops, tenants
from api.routers import webhook_endpoints
from api.routers import payment_intents
from api.routers import refunds
from api import checkout
from api.temporal import TemporalConnector
from db.idempotency import purge_expired_idempotency_keys
from db.pool import create_pool
from db.settings import ApiSettings, Settings

DESCRIPTION = """Durable settlement engine for crypto payments.

Conventions of every `/v1` route:

- **Auth**: `Authorization: Bearer <API key>`; each operation names the scope it needs.
- **Errors**: `{"error": {"type", "code", "message", "param", "request_id"}}`, 4xx for every bad input.
- **Idempotency**: every POST takes an `Idempotency-Key` header (kept 24 h).
- **Lists**: `limit` (≤ 100), `starting_after`/`ending_before` cursors, `has_more`, newest first.
- **Bodies**: JSON objects, each key once; an integer field takes a JSON integer (`5`: never `5.0`,
  `"5"` or `true`, though JSON Schema's `integer` would let `5.0` through); amounts are base units,
  as an integer or a string of digits. Text that PostgreSQL cannot store (NUL, unpaired surrogates)
  is refused anywhere in a request.
- **Rate limits**: per key and per client IP by tier; `429` with `Retry-After` and `RateLimit-*` headers.
- **Request ids**: `X-Request-Id` on every response.
"""

logger = logging.getLogger(LOGGER_NAME)


async def _purge_idempotency_keys(pool: asyncpg.Pool, api_settings: ApiSettings) -> None:
    while True:
        await asyncio.sleep(api_settings.idempotency_purge_interval_s)
        try:
            purged = await purge_expired_idempotency_keys(pool, batch_size_max=api_settings.idempotency_purge_batch_size_max)
            if purged:
                logger.info("purged expired idempotency keys", extra={"count": purged})
        except (asyncpg.PostgresError, OSError):
            logger.warning("could not purge idempotency keys; will retry", exc_info=True)


def create_app(
    settings: Settings | None = None,
    api_settings: ApiSettings | None = None,
    *,
    pool: asyncpg.Pool | None = None,
    temporal_client: Any | None = None,
) -> FastAPI:
    settings = settings or Settings()
    if api_settings is not None:
        # Tests tune rate limits and timeouts this way without rebuilding the whole root.
        settings = settings.model_copy(update={"api": api_settings})
    api_settings = settings.api

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(
            level=api_settings.log_level,
            json_lines=api_settings.json_logs,
            extra_secrets=(settings.admin_api_key.get_secret_value(), settings.relayer_private_key.get_secret_value()),
        )
        own_pool = pool is None
        app.state.pool = await create_pool(settings.database_url) if own_pool else pool
        purge = asyncio.create_task(_purge_idempotency_keys(app.state.pool, api_settings), name="purge-idempotency-keys")
        # Temporal is connected in the background: the API starts (and serves everything but
        # the intent routes, which answer 503) while Temporal is unreachable.
        app.state.temporal.start()
        try:
            yield
        finally:
            await app.state.temporal.stop()
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
            if own_pool:
                await app.state.pool.close()

    app = FastAPI(
        title="Settle",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        separate_input_output_schemas=True,
    )
    app.state.settings = settings
    app.state.api_settings = api_settings
    app.state.rate_limiter = TokenBuckets(buckets_max=api_settings.rate_limit_buckets_max)
    app.state.pool = pool
    app.state.temporal = TemporalConnector(settings, client=temporal_client)

    install_error_handlers(app)
    app.add_exception_handler(IdempotentReplay, replay_response)  # type: ignore[arg-type]
    app.add_middleware(RequestContextMiddleware, body_bytes_max=api_settings.request_body_bytes_max, logger=logger)

    app.include_router(ops.router)
    app.include_router(tenants.platform_router)
    app.include_router(tenants.tenant_router)
    app.include_router(api_keys.router)
    app.include_router(audit_events.router)
    app.include_router(webhook_endpoints.router)
    app.include_router(payment_intents.router)
    app.include_router(payment_intents.events_router)
    app.include_router(refunds.router)
    app.include_router(checkout.router)
    install_openapi(app)
    return app


app = create_app()
