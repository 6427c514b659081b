"""refunds: the read model of payment intents' refunds

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

The API inserts a refund (status `pending`) in the transaction that locks its intent's row and
checks what is left to refund, and starts its RefundWorkflow before committing; the workflow writes
every later change. `amount_from_refundable` and `amount_from_balance` are where the amount comes
from (the intent's unallocated money, the merchant's available balance), fixed at creation so
later refunds of the intent see what earlier ones took (domain.refunds).

Beside 0007 and 0008, also on 0005: upgrades run to "heads".
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
    CREATE TABLE refunds (
        id                      TEXT PRIMARY KEY,                  -- re_..., the workflow id
        tenant_id               TEXT NOT NULL,
        intent_id               TEXT NOT NULL REFERENCES payment_intents (id),
        chain_id                BIGINT NOT NULL,
        asset                   TEXT NOT NULL,
        token_address           TEXT NOT NULL,                     -- lower-case hex
        amount                  NUMERIC(78,0) NOT NULL CHECK (amount > 0),
        amount_from_refundable  NUMERIC(78,0) NOT NULL CHECK (amount_from_refundable >= 0),
        amount_from_balance     NUMERIC(78,0) NOT NULL CHECK (amount_from_balance >= 0),
        address                 TEXT NOT NULL,                     -- the customer's, checksummed
        status                  TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
        failure_code            TEXT,
        failure_message         TEXT,
        tx_hash                 TEXT,
        reason                  TEXT,
        metadata                JSONB NOT NULL DEFAULT '{}'::jsonb,
        idempotency_key         TEXT,
        created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
        CHECK (amount = amount_from_refundable + amount_from_balance),
        CHECK ((status = 'failed') = (failure_code IS NOT NULL))
    )
    """,
    "CREATE INDEX refunds_tenant_created ON refunds (tenant_id, created_at DESC, id DESC)",
    "CREATE INDEX refunds_intent_created ON refunds (intent_id, created_at DESC, id DESC)",
    # What reached the customer, per intent: raised once per succeeded refund, with its status.
    "ALTER TABLE payment_intents ADD COLUMN amount_refunded NUMERIC(78,0) NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0)",
]


def upgrade() -> None:
    # One statement per execute: the asyncpg driver prepares what it runs.
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("ALTER TABLE payment_intents DROP COLUMN amount_refunded")
    op.execute("DROP TABLE refunds")
