"""payment_intents.notify_url: where every event of the intent is also delivered

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28

The URL is checked at create time by the same rules as webhook endpoint URLs (and again at send
time, address by address). Deliveries to it go through a hidden `webhook_endpoints` row of kind
`notify_url` per (tenant, url), made by migration 0005, signed with the tenant's notify secret.

Beside 0006 (refunds), also on 0005: upgrades run to "heads".
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One statement per execute: the asyncpg driver prepares what it runs.
    op.execute(
        "ALTER TABLE payment_intents ADD COLUMN notify_url TEXT "
        "CONSTRAINT payment_intents_notify_url_length CHECK (length(notify_url) BETWEEN 1 AND 2048)"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE payment_intents DROP COLUMN notify_url")
