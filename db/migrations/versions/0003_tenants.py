"""tenants, api_keys, idempotency_keys, audit_events: the API's conventions

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Ledger ids are small integers, as in TigerBeetle: one per tenant, never reused.
    op.execute("CREATE SEQUENCE tenant_ledger_ids AS bigint START WITH 1000")
    op.create_table(
        "tenants",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="active"),
        sa.Column("ledger_id", sa.BigInteger(), nullable=False, unique=True, server_default=sa.text("nextval('tenant_ledger_ids')")),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("fee_bps", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("payout_addresses", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("confirmation_policy", postgresql.JSONB(), nullable=True),
        sa.Column("approvers", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("kind IN ('merchant', 'program')", name="tenants_kind"),
        sa.CheckConstraint("status IN ('active', 'frozen')", name="tenants_status"),
        sa.CheckConstraint("fee_bps BETWEEN 0 AND 10000", name="tenants_fee_bps"),
        sa.CheckConstraint("jsonb_typeof(payout_addresses) = 'array'", name="tenants_payout_addresses_array"),
        sa.CheckConstraint("jsonb_typeof(approvers) = 'array'", name="tenants_approvers_array"),
    )
    op.create_index("tenants_created", "tenants", [sa.text("created_at DESC"), sa.text("id DESC")])

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        # The first characters after the prefix: finds the row; the hash proves the secret.
        sa.Column("lookup", sa.Text(), nullable=False, unique=True),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("redacted", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rotated_from", sa.Text(), sa.ForeignKey("api_keys.id"), nullable=True),
        sa.Column("rotated_to", sa.Text(), sa.ForeignKey("api_keys.id"), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.CheckConstraint("type IN ('secret', 'restricted', 'publishable')", name="api_keys_type"),
        sa.CheckConstraint("octet_length(secret_hash) = 32", name="api_keys_secret_hash_sha256"),
    )
    op.create_index("api_keys_tenant_created", "api_keys", ["tenant_id", sa.text("created_at DESC"), sa.text("id DESC")])

    op.create_table(
        "idempotency_keys",
        # "platform" or a tenant id: one tenant's keys never meet another's.
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.LargeBinary(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        # The request that holds the claim; only it may complete or release it.
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("response_content_type", sa.Text(), nullable=True),
        sa.Column("locked_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", "key"),
        sa.CheckConstraint("status IN ('in_progress', 'completed')", name="idempotency_keys_status"),
        sa.CheckConstraint(
            "status = 'in_progress' OR (response_status IS NOT NULL AND response_body IS NOT NULL)",
            name="idempotency_keys_completed_has_response",
        ),
    )
    op.create_index("idempotency_keys_expires", "idempotency_keys", ["expires_at"])

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), sa.ForeignKey("tenants.id"), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("actor_type", sa.Text(), nullable=False),
        sa.Column("actor_id", sa.Text(), nullable=False),
        sa.Column("object_type", sa.Text(), nullable=False),
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("ip", sa.Text(), nullable=True),
        sa.Column("data", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("audit_events_tenant_created", "audit_events", ["tenant_id", sa.text("created_at DESC"), sa.text("id DESC")])
    # Append-only, enforced where it cannot be bypassed by a bug in the application.
    op.execute(
        """
        CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END;
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_events_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
    )


def downgrade() -> None:
    op.drop_table("audit_events")
    op.execute("DROP FUNCTION audit_events_append_only()")
    op.drop_table("idempotency_keys")
    op.drop_table("api_keys")
    op.drop_table("tenants")
    op.execute("DROP SEQUENCE tenant_ledger_ids")
