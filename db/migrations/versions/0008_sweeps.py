"""sweeps: what each deposit address holds per the ledger and what was swept, batched per chain;
fee-bumped replacements of stuck transactions

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24

An intent posts its money to the ledger and raises `held` on its row here; the chain's sweeper
claims rows whose `held` exceeds `swept` into a batch (one `sweepBatch` transaction, its outbox
key the batch id), and when that transaction is mined posts each intent's sweep move and raises
`swept`. Sweeps leave the intents' workflows: one transaction and a few workflow tasks move many
intents' funds.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
    CREATE TABLE sweep_requests (
        intent_id             TEXT PRIMARY KEY,
        tenant_id             TEXT NOT NULL,
        ledger_id             TEXT NOT NULL,
        asset_key             TEXT NOT NULL,
        chain_id              BIGINT NOT NULL,
        token_address         TEXT NOT NULL,
        salt                  TEXT NOT NULL,
        held_base_units       NUMERIC(78,0) NOT NULL CHECK (held_base_units >= 0),
        swept_base_units      NUMERIC(78,0) NOT NULL DEFAULT 0 CHECK (swept_base_units >= 0),
        batch_id              TEXT,
        batch_target_base_units NUMERIC(78,0),
        updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
        CHECK (swept_base_units <= held_base_units),
        CHECK ((batch_id IS NULL) = (batch_target_base_units IS NULL))
    )
    """,
    "CREATE INDEX sweep_requests_due ON sweep_requests (chain_id, updated_at) WHERE held_base_units > swept_base_units AND batch_id IS NULL",
    "CREATE INDEX sweep_requests_batch ON sweep_requests (batch_id) WHERE batch_id IS NOT NULL",
    "ALTER TABLE payment_intents ADD COLUMN amount_swept NUMERIC(78,0) NOT NULL DEFAULT 0 CHECK (amount_swept >= 0)",
    # A stuck transaction is re-signed with the same nonce and higher fees; any signature may be mined.
    "ALTER TABLE chain_transactions ADD COLUMN replaced_tx_hashes TEXT[] NOT NULL DEFAULT '{}'",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("ALTER TABLE chain_transactions DROP COLUMN replaced_tx_hashes")
    op.execute("ALTER TABLE payment_intents DROP COLUMN amount_swept")
    op.execute("DROP TABLE sweep_requests")
