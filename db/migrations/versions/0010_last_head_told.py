"""chain_cursors.last_head_told: the newest head the watcher told confirming intents of

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

The watcher tells an intent of a new head only while one of its payments was short of its
confirmations at the head told before. Kept beside the cursor so that a restarted watcher knows
where it stopped: it neither misses a head an intent needed nor re-tells every recent intent.
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE chain_cursors ADD COLUMN last_head_told BIGINT")


def downgrade() -> None:
    op.execute("ALTER TABLE chain_cursors DROP COLUMN last_head_told")
