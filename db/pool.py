"""asyncpg pools: the activities' and the API's path to PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg


async def create_pool(database_url: str, *, size_min: int = 1, size_max: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        database_url,
        min_size=size_min,
        max_size=size_max,
        command_timeout=30,
        # Connections outlive a PostgreSQL restart badly; recycle idle ones.
        max_inactive_connection_lifetime=60,
    )


@asynccontextmanager
async def transaction(connection: asyncpg.Pool | asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on a pool's connection, or, on a connection, a savepoint of the caller's
    transaction: a repository function that writes several rows is atomic either way, and the
    API can add its audit event to the same transaction."""
    if isinstance(connection, asyncpg.Pool):
        async with connection.acquire() as acquired, acquired.transaction():
            yield acquired
    else:
        async with connection.transaction():
            yield connection
