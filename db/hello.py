"""The hello_runs repository."""

from __future__ import annotations

import asyncpg


async def insert_hello_run(
    pool: asyncpg.Pool, *, workflow_id: str, chain_id: int, block_number: int, block_hash: str
) -> bool:
    """Insert once per workflow id; a retried activity changes nothing. True if this call inserted."""
    status = await pool.execute(
        """
        INSERT INTO hello_runs (workflow_id, chain_id, block_number, block_hash)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (workflow_id) DO NOTHING
        """,
        workflow_id,
        chain_id,
        block_number,
        block_hash,
    )
    return status.endswith(" 1")


async def get_hello_run(pool: asyncpg.Pool, *, workflow_id: str) -> dict | None:
    row = await pool.fetchrow("SELECT * FROM hello_runs WHERE workflow_id = $1", workflow_id)
    return dict(row) if row else None
