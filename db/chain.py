"""Repositories of the chain side: the watcher's cursor and block hashes, deposit addresses, the
payments it matched, and the signed-transaction outbox with its nonces."""

from __future__ import annotations

import json
from dataclasses import dataclass

import asyncpg

BLOCKS_KEPT_PER_CHAIN = 256


@dataclass(frozen=True)
class DepositAddress:
    chain_id: int
    address: str
    intent_id: str
    token_address: str


@dataclass(frozen=True)
class ObservedPayment:
    chain_id: int
    tx_hash: str
    log_index: int
    intent_id: str
    token_address: str
    sender: str
    amount_base_units: int
    block_number: int
    block_hash: str


@dataclass(frozen=True)
class StoredTransaction:
    idempotency_key: str
    chain_id: int
    sender: str
    nonce: int
    tx_hash: str
    raw_tx: str
    status: str
    # Earlier signatures of the same nonce, replaced by a fee bump: any of them may be the one mined.
    replaced_tx_hashes: tuple[str, ...] = ()

    @property
    def tx_hashes(self) -> tuple[str, ...]:
        """Newest first."""
        return (self.tx_hash, *reversed(self.replaced_tx_hashes))


# ------------------------------------------------------------------ watcher cursor
async def get_cursor(pool: asyncpg.Pool, *, chain_id: int) -> int | None:
    return await pool.fetchval("SELECT next_block FROM chain_cursors WHERE chain_id = $1", chain_id)


async def set_cursor(pool: asyncpg.Pool, *, chain_id: int, next_block: int) -> None:
    await pool.execute(
        """
        INSERT INTO chain_cursors (chain_id, next_block) VALUES ($1, $2)
        ON CONFLICT (chain_id) DO UPDATE SET next_block = EXCLUDED.next_block, updated_at = now()
        """,
        chain_id,
        next_block,
    )


async def store_block_hashes(pool: asyncpg.Pool, *, chain_id: int, blocks: list[tuple[int, str, str]]) -> None:
    """(number, hash, parent hash) of scanned blocks; keeps only the newest BLOCKS_KEPT_PER_CHAIN."""
    if not blocks:
        return
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            """
            INSERT INTO chain_blocks (chain_id, block_number, block_hash, parent_hash)
            SELECT $1, number, hash, parent FROM unnest($2::bigint[], $3::text[], $4::text[]) AS b(number, hash, parent)
            ON CONFLICT (chain_id, block_number) DO UPDATE SET block_hash = EXCLUDED.block_hash, parent_hash = EXCLUDED.parent_hash
            """,
            chain_id,
            [b[0] for b in blocks],
            [b[1] for b in blocks],
            [b[2] for b in blocks],
        )
        newest = max(b[0] for b in blocks)
        await connection.execute(
            "DELETE FROM chain_blocks WHERE chain_id = $1 AND block_number <= $2", chain_id, newest - BLOCKS_KEPT_PER_CHAIN
        )


async def stored_block_hashes(pool: asyncpg.Pool, *, chain_id: int, from_block: int, to_block: int) -> dict[int, str]:
    rows = await pool.fetch(
        "SELECT block_number, block_hash FROM chain_blocks WHERE chain_id = $1 AND block_number BETWEEN $2 AND $3",
        chain_id,
        from_block,
        to_block,
    )
    return {row["block_number"]: row["block_hash"] for row in rows}


async def forget_blocks_after(pool: asyncpg.Pool, *, chain_id: int, block_number: int) -> list[str]:
    """Drop stored hashes above a common ancestor; returns the orphaned hashes."""
    rows = await pool.fetch(
        "DELETE FROM chain_blocks WHERE chain_id = $1 AND block_number > $2 RETURNING block_hash", chain_id, block_number
    )
    return [row["block_hash"] for row in rows]


# ------------------------------------------------------------------ deposit addresses
async def register_deposit_address(pool: asyncpg.Pool | asyncpg.Connection, *, deposit: DepositAddress, salt: str) -> None:
    await pool.execute(
        """
        INSERT INTO deposit_addresses (chain_id, address, intent_id, token_address, salt) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (chain_id, address) DO NOTHING
        """,
        deposit.chain_id,
        deposit.address.lower(),
        deposit.intent_id,
        deposit.token_address.lower(),
        salt,
    )


async def match_deposit_addresses(pool: asyncpg.Pool, *, chain_id: int, addresses: list[str]) -> dict[str, DepositAddress]:
    if not addresses:
        return {}
    rows = await pool.fetch(
        "SELECT chain_id, address, intent_id, token_address FROM deposit_addresses WHERE chain_id = $1 AND address = ANY($2::text[])",
        chain_id,
        [a.lower() for a in addresses],
    )
    return {row["address"]: DepositAddress(**dict(row)) for row in rows}


# ------------------------------------------------------------------ payments
async def record_payments(pool: asyncpg.Pool, *, payments: list[ObservedPayment]) -> None:
    """Store matched payments once per (chain, tx hash, log index); a re-included one takes its new block."""
    if not payments:
        return
    await pool.executemany(
        """
        INSERT INTO intent_payments (chain_id, tx_hash, log_index, intent_id, token_address, sender, amount, block_number, block_hash)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (chain_id, tx_hash, log_index) DO UPDATE
            SET block_number = EXCLUDED.block_number, block_hash = EXCLUDED.block_hash, orphaned = false
            WHERE intent_payments.block_hash <> EXCLUDED.block_hash
        """,
        [
            (p.chain_id, p.tx_hash, p.log_index, p.intent_id, p.token_address, p.sender, p.amount_base_units, p.block_number, p.block_hash)
            for p in payments
        ],
    )


async def orphan_payments(pool: asyncpg.Pool, *, chain_id: int, block_hashes: list[str]) -> list[tuple[str, str]]:
    """Mark payments in orphaned blocks; returns (intent id, block hash) pairs to tell."""
    if not block_hashes:
        return []
    rows = await pool.fetch(
        """
        UPDATE intent_payments SET orphaned = true
        WHERE chain_id = $1 AND block_hash = ANY($2::text[]) AND NOT orphaned
        RETURNING intent_id, block_hash
        """,
        chain_id,
        block_hashes,
    )
    return sorted({(row["intent_id"], row["block_hash"]) for row in rows})


async def record_late_payment(pool: asyncpg.Pool, *, payment: ObservedPayment) -> bool:
    """A payment to an intent whose workflow has closed (after its late window): marked late and
    evented (`payment_intent.payment_late`, its id derived from the payment, so a repeated pass
    writes it once) in one transaction. The event carries the intent as of its latest event with
    this payment added. The money stays at the deposit address: refundable by hand. True if new."""
    event_id = f"evt_{payment.intent_id.removeprefix('pi_')}_late_{payment.tx_hash.removeprefix('0x')[:16]}_{payment.log_index}"
    payment_object = {
        "tx_hash": payment.tx_hash,
        "log_index": payment.log_index,
        "amount": str(payment.amount_base_units),
        "block_number": payment.block_number,
        "block_hash": payment.block_hash,
        "late": True,
        "orphaned": False,
    }
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "UPDATE intent_payments SET late = true WHERE chain_id = $1 AND tx_hash = $2 AND log_index = $3",
            payment.chain_id, payment.tx_hash, payment.log_index,
        )
        status = await connection.execute(
            """
            INSERT INTO events (id, tenant_id, type, object_id, data)
            SELECT $1, latest.tenant_id, 'payment_intent.payment_late', $2,
                jsonb_set(latest.data, '{payments}', COALESCE(latest.data -> 'payments', '[]'::jsonb) || jsonb_build_array($3::jsonb))
            FROM (SELECT tenant_id, data FROM events WHERE object_id = $2 AND type LIKE 'payment_intent.%'
                  ORDER BY created_at DESC, id DESC LIMIT 1) AS latest
            ON CONFLICT (id) DO NOTHING
            """,
            event_id, payment.intent_id, json.dumps(payment_object),
        )
    return status.endswith(" 1")


async def intents_confirming(pool: asyncpg.Pool, *, chain_id: int, limit: int = 1000) -> list[str]:
    """Open intents that have payments still counting confirmations: they want each new head."""
    rows = await pool.fetch(
        "SELECT id FROM payment_intents WHERE chain_id = $1 AND status = 'processing' ORDER BY created_at LIMIT $2",
        chain_id,
        limit,
    )
    return [row["id"] for row in rows]


# ------------------------------------------------------------------ signed-transaction outbox
async def get_transaction(pool: asyncpg.Pool, *, idempotency_key: str) -> StoredTransaction | None:
    row = await pool.fetchrow(
        f"SELECT {TRANSACTION_COLUMNS} FROM chain_transactions WHERE idempotency_key = $1",
        idempotency_key,
    )
    return _transaction(row) if row else None


TRANSACTION_COLUMNS = "idempotency_key, chain_id, sender, nonce, tx_hash, raw_tx, status, replaced_tx_hashes"


def _transaction(row: asyncpg.Record) -> StoredTransaction:
    return StoredTransaction(**{**dict(row), "replaced_tx_hashes": tuple(row["replaced_tx_hashes"] or ())})


async def store_signed_transaction(
    pool: asyncpg.Pool,
    *,
    idempotency_key: str,
    chain_id: int,
    sender: str,
    node_pending_nonce: int,
    sign,
) -> StoredTransaction:
    """Allocate the sender's next nonce and store the transaction `sign(nonce)` returns, in one
    database transaction: concurrent callers on several workers never share or skip a nonce, and
    a step's key stores at most one transaction (a retry gets the stored one back)."""
    sender = sender.lower()
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "INSERT INTO chain_nonces (chain_id, sender, next_nonce) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            chain_id,
            sender,
            node_pending_nonce,
        )
        # The sender's row lock serialises allocation; the key is checked only under it, so two
        # runs of one step (a retry racing its original) cannot both sign.
        next_nonce = await connection.fetchval(
            "SELECT next_nonce FROM chain_nonces WHERE chain_id = $1 AND sender = $2 FOR UPDATE", chain_id, sender
        )
        existing = await connection.fetchrow(
            f"SELECT {TRANSACTION_COLUMNS} FROM chain_transactions WHERE idempotency_key = $1", idempotency_key
        )
        if existing:
            return _transaction(existing)
        # Someone else (a deploy script, another tool) may have used this key: never go below the node.
        nonce = max(next_nonce, node_pending_nonce)
        tx_hash, raw_tx = sign(nonce)
        await connection.execute(
            "UPDATE chain_nonces SET next_nonce = $3 WHERE chain_id = $1 AND sender = $2", chain_id, sender, nonce + 1
        )
        await connection.execute(
            """
            INSERT INTO chain_transactions (idempotency_key, chain_id, sender, nonce, tx_hash, raw_tx)
            VALUES ($1, $2, $3, $4, $5, $6)
            """,
            idempotency_key,
            chain_id,
            sender,
            nonce,
            tx_hash,
            raw_tx,
        )
        return StoredTransaction(idempotency_key, chain_id, sender, nonce, tx_hash, raw_tx, "signed")


async def replace_signed_transaction(
    pool: asyncpg.Pool, *, idempotency_key: str, replaced_tx_hash: str, tx_hash: str, raw_tx: str
) -> StoredTransaction | None:
    """Store a fee-bumped signature of the same nonce in place of `replaced_tx_hash`, which is kept
    among the hashes to look for. None if another worker replaced it first (compare-and-set)."""
    row = await pool.fetchrow(
        f"""
        UPDATE chain_transactions
        SET replaced_tx_hashes = array_append(replaced_tx_hashes, tx_hash), tx_hash = $3, raw_tx = $4, updated_at = now()
        WHERE idempotency_key = $1 AND tx_hash = $2
        RETURNING {TRANSACTION_COLUMNS}
        """,
        idempotency_key, replaced_tx_hash, tx_hash, raw_tx,
    )
    return _transaction(row) if row else None


async def set_transaction_status(pool: asyncpg.Pool, *, idempotency_key: str, status: str, block_number: int | None = None) -> None:
    await pool.execute(
        "UPDATE chain_transactions SET status = $2, block_number = COALESCE($3, block_number), updated_at = now() WHERE idempotency_key = $1",
        idempotency_key,
        status,
        block_number,
    )
