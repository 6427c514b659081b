"""payment intents read model, deposit addresses, chain watcher cursor and block hashes, the
signed-transaction outbox with nonces, and the events table (the webhooks' outbox)

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-24
"""

from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # asyncpg prepares each statement: run them one at a time.
    for statement in SCHEMA.split(";"):
        if statement.strip():
            op.execute(statement)


SCHEMA = """
        CREATE TABLE events (
            id          TEXT PRIMARY KEY,            -- evt_..., derived from the object and change
            tenant_id   TEXT NOT NULL,
            type        TEXT NOT NULL,               -- e.g. payment_intent.succeeded
            object_id   TEXT NOT NULL,
            api_version TEXT NOT NULL DEFAULT '2026-11-01',
            data        JSONB NOT NULL,              -- the object as of this event
            created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX events_tenant_created ON events (tenant_id, created_at DESC, id DESC);
        CREATE INDEX events_object ON events (object_id, created_at);

        CREATE TABLE payment_intents (
            id                      TEXT PRIMARY KEY,
            tenant_id               TEXT NOT NULL,
            status                  TEXT NOT NULL,
            chain_id                BIGINT NOT NULL,
            asset                   TEXT NOT NULL,
            token_address           TEXT NOT NULL,
            deposit_address         TEXT NOT NULL UNIQUE,
            amount                  NUMERIC(78,0) NOT NULL CHECK (amount > 0),
            amount_received         NUMERIC(78,0) NOT NULL DEFAULT 0 CHECK (amount_received >= 0),
            amount_refundable       NUMERIC(78,0) NOT NULL DEFAULT 0 CHECK (amount_refundable >= 0),
            fee                     NUMERIC(78,0) CHECK (fee >= 0),
            net                     NUMERIC(78,0) CHECK (net >= 0),
            fee_bps                 INTEGER NOT NULL CHECK (fee_bps BETWEEN 0 AND 10000),
            confirmations_required  INTEGER NOT NULL CHECK (confirmations_required >= 1),
            description             TEXT,
            metadata                JSONB NOT NULL DEFAULT '{}'::jsonb,
            success_url             TEXT,
            cancel_url              TEXT,
            client_secret_hash      TEXT NOT NULL,
            idempotency_key         TEXT,
            expires_at              TIMESTAMPTZ NOT NULL,
            created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at              TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX payment_intents_tenant_created ON payment_intents (tenant_id, created_at DESC, id DESC);
        CREATE INDEX payment_intents_tenant_status ON payment_intents (tenant_id, status, created_at DESC);

        -- Each (chain, tx hash, log index) is one payment, matched once.
        CREATE TABLE intent_payments (
            chain_id      BIGINT NOT NULL,
            tx_hash       TEXT NOT NULL,
            log_index     INTEGER NOT NULL,
            intent_id     TEXT NOT NULL,                -- the owning workflow (no FK: the watcher serves every kind)
            token_address TEXT NOT NULL,
            sender        TEXT NOT NULL,
            amount        NUMERIC(78,0) NOT NULL CHECK (amount > 0),
            block_number  BIGINT NOT NULL,
            block_hash    TEXT NOT NULL,
            orphaned      BOOLEAN NOT NULL DEFAULT false,
            late          BOOLEAN NOT NULL DEFAULT false,
            seen_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (chain_id, tx_hash, log_index)
        );
        CREATE INDEX intent_payments_intent ON intent_payments (intent_id);
        CREATE INDEX intent_payments_block ON intent_payments (chain_id, block_hash);

        -- Addresses the chain watcher matches transfers against.
        CREATE TABLE deposit_addresses (
            chain_id      BIGINT NOT NULL,
            address       TEXT NOT NULL,             -- lower-case hex
            intent_id     TEXT NOT NULL,
            token_address TEXT NOT NULL,             -- lower-case hex
            salt          TEXT NOT NULL,
            created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (chain_id, address)
        );

        -- The watcher's cursor: the next block to scan. Advanced only after what it saw is stored
        -- and the owning workflows are told, so a crash repeats work and never skips it.
        CREATE TABLE chain_cursors (
            chain_id    BIGINT PRIMARY KEY,
            next_block  BIGINT NOT NULL CHECK (next_block >= 0),
            updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
        );

        -- Hashes of recently scanned blocks, to see a reorg (a stored hash the node no longer has).
        CREATE TABLE chain_blocks (
            chain_id      BIGINT NOT NULL,
            block_number  BIGINT NOT NULL,
            block_hash    TEXT NOT NULL,
            parent_hash   TEXT NOT NULL,
            PRIMARY KEY (chain_id, block_number)
        );

        -- The signed-transaction outbox: built, signed, persisted (raw bytes, hash, nonce), then
        -- broadcast. A retry re-broadcasts the same bytes, and the key makes a step send at most once.
        CREATE TABLE chain_transactions (
            idempotency_key TEXT PRIMARY KEY,         -- e.g. pi_123/sweep
            chain_id        BIGINT NOT NULL,
            sender          TEXT NOT NULL,
            nonce           BIGINT NOT NULL,
            tx_hash         TEXT NOT NULL,
            raw_tx          TEXT NOT NULL,
            status          TEXT NOT NULL DEFAULT 'signed',  -- signed | broadcast | confirmed | failed
            block_number    BIGINT,
            created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
            UNIQUE (chain_id, sender, nonce)
        );

        -- Next nonce per sender, allocated under a row lock in the same transaction that stores the
        -- signed transaction: concurrent activities on several workers never collide or leave a gap.
        CREATE TABLE chain_nonces (
            chain_id    BIGINT NOT NULL,
            sender      TEXT NOT NULL,
            next_nonce  BIGINT NOT NULL CHECK (next_nonce >= 0),
            PRIMARY KEY (chain_id, sender)
        );
"""


def downgrade() -> None:
    op.execute(
        "DROP TABLE chain_nonces, chain_transactions, chain_blocks, chain_cursors, deposit_addresses, "
        "intent_payments, payment_intents, events"
    )
