"""Repositories of the chain side: the watcher's cursor and block hashes, deposit addresses, the
payments it matched, and the signed-transaction outbox with its nonces."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from db.events import NewEvent, insert_events
from domain.events import EventType, intent_late_payment_event_id
from domain.confirmations import CONFIRMATIONS_MAX

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


async def get_last_head_told(pool: asyncpg.Pool, *, chain_id: int) -> int | None:
    return await pool.fetchval("SELECT last_head_told FROM chain_cursors WHERE chain_id = $1", chain_id)


async def set_last_head_told(pool: asyncpg.Pool, *, chain_id: int, head_block_number: int) -> None:
    """After the confirming intents were told of `head`: a restart tells from here, never skipping one."""
    await pool.execute(
        "UPDATE chain_cursors SET last_head_told = $2, updated_at = now() WHERE chain_id = $1", chain_id, head_block_number
    )


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
async def record_payments(
    pool: asyncpg.Pool, *, payments: list[ObservedPayment], payments_per_intent_max: int, payments_reserved_to_complete: int
) -> list[ObservedPayment]:
    """Store matched payments once per (chain, tx hash, log index); a re-included one takes its new
    block. Returns those to tell their intents.

    An intent is told of at most `payments_per_intent_max` payments ever, so a flood of dust
    transfers cannot grow its workflow's history; the rest are stored as unattributed (refundable
    money the watcher posts itself). The last `payments_reserved_to_complete` places are kept for
    payments that complete the intent (what it received and this one cover its amount), so dust
    sent first cannot keep the customer's real payment from settling it."""
    if not payments:
        return []
    chain_id = payments[0].chain_id
    async with pool.acquire() as connection, connection.transaction():
        intent_ids = sorted({p.intent_id for p in payments})
        # The intents' rows are locked: a second watcher pass (a retried activity still running)
        # counts after this one has stored its payments.
        amount_due = {
            row["id"]: int(row["amount"])
            for row in await connection.fetch(
                "SELECT id, amount FROM payment_intents WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE", intent_ids
            )
        }
        attributed = {
            row["intent_id"]: [row["count"], int(row["received"])]
            for row in await connection.fetch(
                """
                SELECT intent_id, count(*), COALESCE(sum(amount) FILTER (WHERE NOT orphaned), 0) AS received
                FROM intent_payments WHERE intent_id = ANY($1::text[]) AND NOT unattributed GROUP BY intent_id
                """,
                intent_ids,
            )
        }
        known = {
            (row["tx_hash"], row["log_index"]): row["unattributed"]
            for row in await connection.fetch(
                """
                SELECT tx_hash, log_index, unattributed FROM intent_payments
                WHERE chain_id = $1 AND (tx_hash, log_index) IN (SELECT * FROM unnest($2::text[], $3::int[]))
                """,
                chain_id, [p.tx_hash for p in payments], [p.log_index for p in payments],
            )
        }
        to_tell, rows = [], []
        for p in payments:
            unattributed = known.get((p.tx_hash, p.log_index))
            if unattributed is None:
                count, received = attributed.setdefault(p.intent_id, [0, 0])
                completes = p.intent_id in amount_due and received + p.amount_base_units >= amount_due[p.intent_id]
                unattributed = not (
                    count < payments_per_intent_max - payments_reserved_to_complete or (count < payments_per_intent_max and completes)
                )
                if not unattributed:
                    attributed[p.intent_id] = [count + 1, received + p.amount_base_units]
                known[(p.tx_hash, p.log_index)] = unattributed
            if not unattributed:
                to_tell.append(p)
            rows.append(
                (p.chain_id, p.tx_hash, p.log_index, p.intent_id, p.token_address, p.sender, p.amount_base_units, p.block_number,
                 p.block_hash, unattributed)
            )
        await connection.executemany(
            """
            INSERT INTO intent_payments (chain_id, tx_hash, log_index, intent_id, token_address, sender, amount, block_number,
                block_hash, unattributed)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (chain_id, tx_hash, log_index) DO UPDATE
                SET block_number = EXCLUDED.block_number, block_hash = EXCLUDED.block_hash, orphaned = false
                WHERE intent_payments.block_hash <> EXCLUDED.block_hash
            """,
            rows,
        )
    return to_tell


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
    unattributed and evented (`payment_intent.payment_late`, its id derived from the payment, so a
    repeated pass writes it once) in one transaction. The event carries the intent's read model
    through the API's serializer. Once confirmed, the watcher posts it as unattributed
    (refundable) and asks for its sweep. True if new."""
    from db.payment_intents import find_payment_intent, stored_intent_object

    event_id = intent_late_payment_event_id(intent_id=payment.intent_id, tx_hash=payment.tx_hash, log_index=payment.log_index)
    async with pool.acquire() as connection, connection.transaction():
        # Nobody listens for it any more: the watcher posts it as unattributed once it is confirmed.
        await connection.execute(
            "UPDATE intent_payments SET late = true, unattributed = true WHERE chain_id = $1 AND tx_hash = $2 AND log_index = $3",
            payment.chain_id, payment.tx_hash, payment.log_index,
        )
        stored = await find_payment_intent(connection, intent_id=payment.intent_id)
        if stored is None:
            return False
        inserted = await insert_events(
            connection,
            events=[
                NewEvent(
                    id=event_id, tenant_id=stored.tenant_id, type=EventType.PAYMENT_INTENT_PAYMENT_LATE, object_id=payment.intent_id,
                    data=stored_intent_object(stored),
                )
            ],
        )
    return bool(inserted)


@dataclass(frozen=True)
class UnattributedPayment:
    """A confirmed payment no intent took, with what posting it needs."""

    chain_id: int
    tx_hash: str
    log_index: int
    intent_id: str
    tenant_id: str
    asset: str
    token_address: str
    salt: str
    amount_base_units: int


async def unattributed_payments_due(pool: asyncpg.Pool, *, chain_id: int, head_block_number: int, limit: int) -> list[UnattributedPayment]:
    """Unattributed payments not yet posted that have their intent's confirmations at `head`."""
    rows = await pool.fetch(
        """
        SELECT p.chain_id, p.tx_hash, p.log_index, p.intent_id, i.tenant_id, i.asset, p.token_address, d.salt, p.amount
        FROM intent_payments p
        JOIN payment_intents i ON i.id = p.intent_id
        JOIN deposit_addresses d ON d.chain_id = p.chain_id AND d.address = i.deposit_address
        WHERE p.chain_id = $1 AND p.unattributed AND NOT p.unattributed_posted AND NOT p.orphaned
          AND p.block_number + i.confirmations_required - 1 <= $2
        ORDER BY p.block_number, p.tx_hash, p.log_index
        LIMIT $3
        """,
        chain_id, head_block_number, limit,
    )
    return [
        UnattributedPayment(
            chain_id=row["chain_id"], tx_hash=row["tx_hash"], log_index=row["log_index"], intent_id=row["intent_id"],
            tenant_id=row["tenant_id"], asset=row["asset"], token_address=row["token_address"], salt=row["salt"],
            amount_base_units=int(row["amount"]),
        )
        for row in rows
    ]


async def mark_unattributed_posted(pool: asyncpg.Pool, *, payment: UnattributedPayment, ledger_id: str, asset_key: str) -> bool:
    """After its ledger move: the payment is posted once, the intent's refundable money and what
    its deposit address holds for the sweeper rise by its amount, in one transaction. False if it
    was already marked (a repeated pass)."""
    async with pool.acquire() as connection, connection.transaction():
        marked = await connection.fetchval(
            """
            UPDATE intent_payments SET unattributed_posted = true
            WHERE chain_id = $1 AND tx_hash = $2 AND log_index = $3 AND NOT unattributed_posted
            RETURNING true
            """,
            payment.chain_id, payment.tx_hash, payment.log_index,
        )
        if not marked:
            return False
        await connection.execute(
            """
            UPDATE payment_intents SET amount_unattributed = amount_unattributed + $2, amount_refundable = amount_refundable + $2,
                updated_at = now()
            WHERE id = $1
            """,
            payment.intent_id, payment.amount_base_units,
        )
        await connection.execute(
            """
            INSERT INTO sweep_requests (intent_id, tenant_id, ledger_id, asset_key, chain_id, token_address, salt, held_base_units,
                unattributed_base_units)
            VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)
            ON CONFLICT (intent_id) DO UPDATE
                SET unattributed_base_units = sweep_requests.unattributed_base_units + EXCLUDED.unattributed_base_units,
                    updated_at = now()
            """,
            payment.intent_id, payment.tenant_id, ledger_id, asset_key, payment.chain_id, payment.token_address.lower(), payment.salt,
            payment.amount_base_units,
        )
    return True


async def intents_confirming(
    pool: asyncpg.Pool, *, chain_id: int, head_block_number: int, last_head_told: int, limit: int = 1000
) -> list[str]:
    """Intents with a payment that was still short of its confirmations at the last head told: they
    want this head, and only until the payment is confirmed, so an intent is told of at most
    `confirmations_required` heads per payment (an underpaid intent whose payments are all
    confirmed is not told of every block). A payment's own signal carried a head at least its block,
    so one confirmed in its own block is never told again. Whatever its status: a late payment in
    the intent's late window confirms this way too."""
    rows = await pool.fetch(
        """
        SELECT i.id FROM payment_intents i
        WHERE i.id IN (
            SELECT p.intent_id FROM intent_payments p JOIN payment_intents pi ON pi.id = p.intent_id
            WHERE p.chain_id = $1 AND p.block_number > $2::bigint - $3::bigint AND NOT p.orphaned AND NOT p.unattributed
              AND p.block_number + pi.confirmations_required - 1 > GREATEST($5::bigint, p.block_number)
        )
        ORDER BY i.created_at LIMIT $4
        """,
        chain_id, head_block_number, CONFIRMATIONS_MAX, limit, last_head_told,
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
