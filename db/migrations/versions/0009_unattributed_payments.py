"""unattributed payments: transfers to a deposit address that its intent does not take

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

An intent accepts at most PAYMENTS_PER_INTENT_MAX payments; a transfer beyond that, or one that
arrives after the intent's workflow has closed, is not signalled to it (a chain must not be able to
grow a workflow's history without bound). The chain watcher records such a payment as
`unattributed` and, once it has the intent's confirmations, posts it to the tenant's `unallocated`
account (refundable), adds it to the intent's `amount_refundable` and to what its deposit address
holds for the sweeper. `amount_unattributed` keeps that part apart, so the workflow's own refundable
figure and the watcher's never overwrite each other.
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

STATEMENTS = [
    "ALTER TABLE intent_payments ADD COLUMN unattributed BOOLEAN NOT NULL DEFAULT false",
    "ALTER TABLE intent_payments ADD COLUMN unattributed_posted BOOLEAN NOT NULL DEFAULT false",
    """
    CREATE INDEX intent_payments_unattributed_due ON intent_payments (chain_id, block_number)
    WHERE unattributed AND NOT unattributed_posted AND NOT orphaned
    """,
    "ALTER TABLE payment_intents ADD COLUMN amount_unattributed NUMERIC(78,0) NOT NULL DEFAULT 0 CHECK (amount_unattributed >= 0)",
    """
    ALTER TABLE sweep_requests ADD COLUMN unattributed_base_units NUMERIC(78,0) NOT NULL DEFAULT 0
        CHECK (unattributed_base_units >= 0)
    """,
    # 0008 left this check unnamed: find it by what it says.
    """
    DO $$
    DECLARE name text;
    BEGIN
        SELECT conname INTO STRICT name FROM pg_constraint
        WHERE conrelid = 'sweep_requests'::regclass AND contype = 'c'
          AND pg_get_constraintdef(oid) = 'CHECK ((swept_base_units <= held_base_units))';
        EXECUTE format('ALTER TABLE sweep_requests DROP CONSTRAINT %I', name);
    END $$
    """,
    "ALTER TABLE sweep_requests ADD CONSTRAINT sweep_requests_swept_within_held CHECK (swept_base_units <= held_base_units + unattributed_base_units)",
    "DROP INDEX sweep_requests_due",
    """
    CREATE INDEX sweep_requests_due ON sweep_requests (chain_id, updated_at)
    WHERE held_base_units + unattributed_base_units > swept_base_units AND batch_id IS NULL
    """,
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX sweep_requests_due")
    op.execute(
        "CREATE INDEX sweep_requests_due ON sweep_requests (chain_id, updated_at) "
        "WHERE held_base_units > swept_base_units AND batch_id IS NULL"
    )
    op.execute("ALTER TABLE sweep_requests DROP CONSTRAINT sweep_requests_swept_within_held")
    op.execute("ALTER TABLE sweep_requests ADD CONSTRAINT sweep_requests_check CHECK (swept_base_units <= held_base_units)")
    op.execute("ALTER TABLE sweep_requests DROP COLUMN unattributed_base_units")
    op.execute("ALTER TABLE payment_intents DROP COLUMN amount_unattributed")
    op.execute("DROP INDEX intent_payments_unattributed_due")
    op.execute("ALTER TABLE intent_payments DROP COLUMN unattributed_posted")
    op.execute("ALTER TABLE intent_payments DROP COLUMN unattributed")
