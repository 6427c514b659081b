"""asyncpg pools: the activities' and the API's path to PostgreSQL."""

from __future__ import annotations

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
