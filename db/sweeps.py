"""Sweep requests: what each deposit address holds per the ledger (what its intent holds, plus the
unattributed payments the watcher posted), what was swept, and the batch that is sweeping it now. A batch id is claimed once: claiming it again returns the same items, so
a retried claim never widens a batch whose transaction may already be signed."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

Connection = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True)
class SweepRequest:
    intent_id: str
    tenant_id: str
    ledger_id: str
    asset_key: str
    chain_id: int
    token_address: str
    salt: str
    held_base_units: int


@dataclass(frozen=True)
class SweepItem:
    intent_id: str
    tenant_id: str
    ledger_id: str
    asset_key: str
    token_address: str
    salt: str
    swept_before_base_units: int
    target_base_units: int


async def request_sweep(connection: Connection, *, request: SweepRequest) -> None:
    """Raise what the address holds per the ledger; never lowers it (a retried older call is a no-op)."""
    assert request.held_base_units > 0
    await connection.execute(
        """
        INSERT INTO sweep_requests (intent_id, tenant_id, ledger_id, asset_key, chain_id, token_address, salt, held_base_units)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (intent_id) DO UPDATE
            SET held_base_units = GREATEST(sweep_requests.held_base_units, EXCLUDED.held_base_units), updated_at = now()
        """,
        request.intent_id, request.tenant_id, request.ledger_id, request.asset_key, request.chain_id,
        request.token_address.lower(), request.salt, request.held_base_units,
    )


async def count_sweeps_due(pool: asyncpg.Pool, *, chain_id: int) -> int:
    return await pool.fetchval(
        """
        SELECT count(*) FROM sweep_requests
        WHERE chain_id = $1 AND held_base_units + unattributed_base_units > swept_base_units AND batch_id IS NULL
        """,
        chain_id,
    )


def _item(row: asyncpg.Record) -> SweepItem:
    return SweepItem(
        intent_id=row["intent_id"],
        tenant_id=row["tenant_id"],
        ledger_id=row["ledger_id"],
        asset_key=row["asset_key"],
        token_address=row["token_address"],
        salt=row["salt"],
        swept_before_base_units=int(row["swept_base_units"]),
        target_base_units=int(row["batch_target_base_units"]),
    )


ITEM_COLUMNS = "intent_id, tenant_id, ledger_id, asset_key, token_address, salt, swept_base_units, batch_target_base_units"


async def claim_sweep_batch(pool: asyncpg.Pool, *, chain_id: int, batch_id: str, size_max: int) -> list[SweepItem]:
    """The batch's items: those it already claimed, or up to `size_max` due rows, oldest first."""
    assert size_max >= 1
    async with pool.acquire() as connection, connection.transaction():
        claimed = await sweep_batch_items(connection, batch_id=batch_id)
        if claimed:
            return claimed
        rows = await connection.fetch(
            f"""
            UPDATE sweep_requests SET batch_id = $2, batch_target_base_units = held_base_units + unattributed_base_units,
                updated_at = now()
            WHERE intent_id IN (
                SELECT intent_id FROM sweep_requests
                WHERE chain_id = $1 AND held_base_units + unattributed_base_units > swept_base_units AND batch_id IS NULL
                ORDER BY updated_at LIMIT $3 FOR UPDATE SKIP LOCKED
            )
            RETURNING {ITEM_COLUMNS}
            """,
            chain_id, batch_id, size_max,
        )
        return sorted((_item(row) for row in rows), key=lambda item: item.intent_id)


async def sweep_batch_items(connection: Connection, *, batch_id: str, lock: bool = False) -> list[SweepItem]:
    """The items a batch claimed and has not finished; none once it finished (or never claimed)."""
    rows = await connection.fetch(
        f"SELECT {ITEM_COLUMNS} FROM sweep_requests WHERE batch_id = $1 ORDER BY intent_id" + (" FOR UPDATE" if lock else ""),
        batch_id,
    )
    return [_item(row) for row in rows]


async def finish_sweep_batch(connection: asyncpg.Connection, *, batch_id: str) -> None:
    """The batch's transaction was mined: its targets become swept; the rows are free again."""
    await connection.execute(
        """
        UPDATE sweep_requests SET swept_base_units = batch_target_base_units, batch_id = NULL,
            batch_target_base_units = NULL, updated_at = now()
        WHERE batch_id = $1
        """,
        batch_id,
    )


async def release_sweep_batch(pool: asyncpg.Pool, *, batch_id: str) -> int:
    """The batch's transaction failed: its rows are due again, for a later batch."""
    result = await pool.execute(
        "UPDATE sweep_requests SET batch_id = NULL, batch_target_base_units = NULL, updated_at = now() WHERE batch_id = $1",
        batch_id,
    )
    return int(result.split()[-1])
