"""SQLAlchemy 2 models of every table the migrations create, with their keys, foreign keys and
indexes: the schema Alembic migrates to, so `alembic revision --autogenerate` compares against all
of it and never proposes to drop a real table (tests/db/test_models.py runs that comparison
against the migrated database and fails on any difference).

The migrations stay the source of truth and the code reads and writes through asyncpg, not the
ORM: these classes describe, they are not a data-access layer. What autogenerate does not compare
is left to the migrations: CHECK constraints, triggers (the ledger's and the audit log's
append-only rules, the webhook queue's enqueue), the `tenant_ledger_ids` sequence, storage
parameters other than the ledger accounts' fillfactor.

Amounts are NUMERIC(78,0) (every uint256 fits) read as Python ints: `BaseUnits`. The ledger's ids
and names are COLLATE "C" (byte order, cheap to compare): `LedgerKey`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    PrimaryKeyConstraint,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class BaseUnits(TypeDecorator[int]):
    """NUMERIC(78,0) as an int: money never passes through a float or stays a Decimal."""

    impl = Numeric(78, 0)
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value)

    def process_result_value(self, value: Decimal | None, dialect: Any) -> int | None:
        return None if value is None else int(value)


LedgerKey = Text(collation="C")
Timestamp = DateTime(timezone=True)
TextArray = ARRAY(Text)


def _desc(column: str) -> Any:
    return text(f"{column} DESC")


class Base(DeclarativeBase):
    pass


# ----------------------------------------------------------------------------- 0001 spine
class HelloRun(Base):
    """One row per HelloWorkflow: the spine's proof that a workflow reached the chain and the database."""

    __tablename__ = "hello_runs"

    workflow_id: Mapped[str] = mapped_column(Text, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())


# ----------------------------------------------------------------------------- 0002 ledger
class LedgerAccount(Base):
    """An account of the double-entry ledger (domain.ledger.Account); ids per domain.ledger.account_id."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        Index("ledger_accounts_ledger_asset_code", "ledger", "asset", "code"),
        Index("ledger_accounts_owner", "owner", postgresql_where=text("owner IS NOT NULL")),
        {"postgresql_with": {"fillfactor": 50}},
    )

    id: Mapped[str] = mapped_column(LedgerKey, primary_key=True)
    ledger: Mapped[str] = mapped_column(LedgerKey)
    asset: Mapped[str] = mapped_column(LedgerKey)
    code: Mapped[str] = mapped_column(LedgerKey)
    owner: Mapped[str | None] = mapped_column(LedgerKey)
    flags: Mapped[int] = mapped_column(Integer)
    debits_pending: Mapped[int] = mapped_column(BaseUnits, server_default="0")
    debits_posted: Mapped[int] = mapped_column(BaseUnits, server_default="0")
    credits_pending: Mapped[int] = mapped_column(BaseUnits, server_default="0")
    credits_posted: Mapped[int] = mapped_column(BaseUnits, server_default="0")
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())


class LedgerTransfer(Base):
    """A transfer between two accounts (domain.ledger.Transfer); append-only but for its pending status."""

    __tablename__ = "ledger_transfers"
    __table_args__ = (
        Index("ledger_transfers_debit_account_seq", "debit_account_id", "seq"),
        Index("ledger_transfers_credit_account_seq", "credit_account_id", "seq"),
        Index("ledger_transfers_pending_id", "pending_id", unique=True, postgresql_where=text("pending_id IS NOT NULL")),
        Index(
            "ledger_transfers_expiring", "expires_at",
            postgresql_where=text("pending_status = 'pending'::text AND expires_at IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(LedgerKey, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    debit_account_id: Mapped[str] = mapped_column(LedgerKey)
    credit_account_id: Mapped[str] = mapped_column(LedgerKey)
    amount: Mapped[int] = mapped_column(BaseUnits)
    ledger: Mapped[str] = mapped_column(LedgerKey)
    asset: Mapped[str] = mapped_column(LedgerKey)
    code: Mapped[str] = mapped_column(LedgerKey)
    flags: Mapped[int] = mapped_column(Integer)
    pending_id: Mapped[str | None] = mapped_column(LedgerKey, ForeignKey("ledger_transfers.id"))
    timeout_s: Mapped[int] = mapped_column(Integer, server_default="0")
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    pending_status: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict] = mapped_column("metadata", JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(Timestamp)


# ----------------------------------------------------------------------------- 0003 tenants
class Tenant(Base):
    __tablename__ = "tenants"
    __table_args__ = (Index("tenants_created", _desc("created_at"), _desc("id")),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="active")
    ledger_id: Mapped[int] = mapped_column(BigInteger, unique=True, server_default=text("nextval('tenant_ledger_ids')"))
    livemode: Mapped[bool] = mapped_column(Boolean)
    fee_bps: Mapped[int] = mapped_column(Integer, server_default="0")
    payout_addresses: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    confirmation_policy: Mapped[dict | None] = mapped_column(JSONB)
    approvers: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index("api_keys_tenant_created", "tenant_id", _desc("created_at"), _desc("id")),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text, ForeignKey("tenants.id"))
    type: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(TextArray)
    livemode: Mapped[bool] = mapped_column(Boolean)
    lookup: Mapped[str] = mapped_column(Text, unique=True)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary)
    redacted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp)
    rotated_from: Mapped[str | None] = mapped_column(Text, ForeignKey("api_keys.id"))
    rotated_to: Mapped[str | None] = mapped_column(Text, ForeignKey("api_keys.id"))
    created_by: Mapped[str] = mapped_column(Text)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (PrimaryKeyConstraint("owner", "key"), Index("idempotency_keys_expires", "expires_at"))

    owner: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary)
    method: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    response_content_type: Mapped[str | None] = mapped_column(Text)
    locked_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(Timestamp)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("audit_events_tenant_created", "tenant_id", _desc("created_at"), _desc("id")),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(Text, ForeignKey("tenants.id"))
    action: Mapped[str] = mapped_column(Text)
    actor_type: Mapped[str] = mapped_column(Text)
    actor_id: Mapped[str] = mapped_column(Text)
    object_type: Mapped[str] = mapped_column(Text)
    object_id: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())


# ------------------------------------------------------- 0004 intents, chain, events (+0006..0009)
class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("events_tenant_created", "tenant_id", _desc("created_at"), _desc("id")),
        Index("events_object", "object_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    object_id: Mapped[str] = mapped_column(Text)
    api_version: Mapped[str] = mapped_column(Text, server_default="2026-11-01")
    data: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())


class PaymentIntent(Base):
    __tablename__ = "payment_intents"
    __table_args__ = (
        Index("payment_intents_tenant_created", "tenant_id", _desc("created_at"), _desc("id")),
        Index("payment_intents_tenant_status", "tenant_id", "status", _desc("created_at")),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    asset: Mapped[str] = mapped_column(Text)
    token_address: Mapped[str] = mapped_column(Text)
    deposit_address: Mapped[str] = mapped_column(Text, unique=True)
    amount: Mapped[int] = mapped_column(BaseUnits)
    amount_received: Mapped[int] = mapped_column(BaseUnits, server_default="0")
    amount_refundable: Mapped[int] = mapped_column(BaseUnits, server_default="0")
    fee: Mapped[int | None] = mapped_column(BaseUnits)
    net: Mapped[int | None] = mapped_column(BaseUnits)
    fee_bps: Mapped[int] = mapped_column(Integer)
    confirmations_required: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict] = mapped_column("metadata", JSONB, server_default=text("'{}'::jsonb"))
    success_url: Mapped[str | None] = mapped_column(Text)
    cancel_url: Mapped[str | None] = mapped_column(Text)
    client_secret_hash: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    amount_refunded: Mapped[int] = mapped_column(BaseUnits, server_default="0")  # 0006
    notify_url: Mapped[str | None] = mapped_column(Text)  # 0007
    amount_swept: Mapped[int] = mapped_column(BaseUnits, server_default="0")  # 0008
    amount_unattributed: Mapped[int] = mapped_column(BaseUnits, server_default="0")  # 0009


class IntentPayment(Base):
    """One token transfer to a deposit address: (chain, tx hash, log index), matched once."""

    __tablename__ = "intent_payments"
    __table_args__ = (
        PrimaryKeyConstraint("chain_id", "tx_hash", "log_index"),
        Index("intent_payments_intent", "intent_id"),
        Index("intent_payments_block", "chain_id", "block_hash"),
        Index(
            "intent_payments_unattributed_due", "chain_id", "block_number",
            postgresql_where=text("unattributed AND NOT unattributed_posted AND NOT orphaned"),
        ),
    )

    chain_id: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(Text)
    log_index: Mapped[int] = mapped_column(Integer)
    intent_id: Mapped[str] = mapped_column(Text)
    token_address: Mapped[str] = mapped_column(Text)
    sender: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BaseUnits)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(Text)
    orphaned: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    late: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    seen_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    unattributed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))  # 0009
    unattributed_posted: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))  # 0009


class DepositAddress(Base):
    __tablename__ = "deposit_addresses"
    __table_args__ = (PrimaryKeyConstraint("chain_id", "address"),)

    chain_id: Mapped[int] = mapped_column(BigInteger)
    address: Mapped[str] = mapped_column(Text)
    intent_id: Mapped[str] = mapped_column(Text)
    token_address: Mapped[str] = mapped_column(Text)
    salt: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())


class ChainCursor(Base):
    __tablename__ = "chain_cursors"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    next_block: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    last_head_told: Mapped[int | None] = mapped_column(BigInteger)


class ChainBlock(Base):
    __tablename__ = "chain_blocks"
    __table_args__ = (PrimaryKeyConstraint("chain_id", "block_number"),)

    chain_id: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(Text)
    parent_hash: Mapped[str] = mapped_column(Text)


class ChainTransaction(Base):
    """The signed-transaction outbox."""

    __tablename__ = "chain_transactions"
    __table_args__ = (UniqueConstraint("chain_id", "sender", "nonce", name="chain_transactions_chain_id_sender_nonce_key"),)

    idempotency_key: Mapped[str] = mapped_column(Text, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    sender: Mapped[str] = mapped_column(Text)
    nonce: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(Text)
    raw_tx: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="signed")
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    replaced_tx_hashes: Mapped[list[str]] = mapped_column(TextArray, server_default=text("'{}'::text[]"))  # 0008


class ChainNonce(Base):
    __tablename__ = "chain_nonces"
    __table_args__ = (PrimaryKeyConstraint("chain_id", "sender"),)

    chain_id: Mapped[int] = mapped_column(BigInteger)
    sender: Mapped[str] = mapped_column(Text)
    next_nonce: Mapped[int] = mapped_column(BigInteger)


# ----------------------------------------------------------------------------- 0005 webhooks
class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        Index(
            "webhook_endpoints_tenant_created", "tenant_id", _desc("created_at"), _desc("id"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("webhook_endpoints_notify_url", "tenant_id", "url", unique=True, postgresql_where=text("kind = 'notify_url'::text")),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text, server_default="endpoint")
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")
    enabled_events: Mapped[list[str]] = mapped_column(TextArray)
    status: Mapped[str] = mapped_column(Text, server_default="enabled")
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[datetime | None] = mapped_column(Timestamp)
    failing_marked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp)


class WebhookSigningSecret(Base):
    __tablename__ = "webhook_signing_secrets"
    __table_args__ = (
        Index("webhook_signing_secrets_current", "owner_kind", "owner_id", unique=True, postgresql_where=text("expires_at IS NULL")),
        Index("webhook_signing_secrets_owner", "owner_kind", "owner_id", _desc("created_at")),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    owner_kind: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[str] = mapped_column(Text)
    secret_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp)


class WebhookDispatchRoute(Base):
    __tablename__ = "webhook_dispatch_routes"
    __table_args__ = (Index("webhook_dispatch_routes_route", "route"),)

    tenant_id: Mapped[str] = mapped_column(Text, primary_key=True)
    route: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())


class WebhookEventQueue(Base):
    __tablename__ = "webhook_event_queue"
    __table_args__ = (
        Index("webhook_event_queue_order", "enqueued_at", "event_id"),
        Index("webhook_event_queue_tenant", "tenant_id", "enqueued_at"),
    )

    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    enqueued_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.clock_timestamp())


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="webhook_deliveries_event_id_endpoint_id_key"),
        Index("webhook_deliveries_tenant_created", "tenant_id", _desc("created_at"), _desc("id")),
        Index("webhook_deliveries_endpoint_created", "endpoint_id", _desc("created_at"), _desc("id")),
        Index("webhook_deliveries_to_start", "created_at", postgresql_where=text("started_round < round")),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(Text)
    endpoint_id: Mapped[str] = mapped_column(Text, ForeignKey("webhook_endpoints.id"))
    event_type: Mapped[str] = mapped_column(Text)
    event_created_at: Mapped[datetime] = mapped_column(Timestamp)
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    round: Mapped[int] = mapped_column(Integer, server_default="0")
    started_round: Mapped[int] = mapped_column(Integer, server_default="-1")
    attempts_count: Mapped[int] = mapped_column(Integer, server_default="0")
    last_attempt_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(Timestamp)
    delivered_at: Mapped[datetime | None] = mapped_column(Timestamp)
    completed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("webhook_attempts_delivery_created", "delivery_id", _desc("created_at"), _desc("id")),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(Text, ForeignKey("webhook_deliveries.id"))
    tenant_id: Mapped[str] = mapped_column(Text)
    endpoint_id: Mapped[str] = mapped_column(Text)
    round: Mapped[int] = mapped_column(Integer)
    attempt_number: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)
    webhook_timestamp: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    latency_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)


# ----------------------------------------------------------------------------- 0006 refunds
class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (
        Index("refunds_tenant_created", "tenant_id", _desc("created_at"), _desc("id")),
        Index("refunds_intent_created", "intent_id", _desc("created_at"), _desc("id")),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    intent_id: Mapped[str] = mapped_column(Text, ForeignKey("payment_intents.id"))
    chain_id: Mapped[int] = mapped_column(BigInteger)
    asset: Mapped[str] = mapped_column(Text)
    token_address: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BaseUnits)
    amount_from_refundable: Mapped[int] = mapped_column(BaseUnits)
    amount_from_balance: Mapped[int] = mapped_column(BaseUnits)
    address: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    failure_code: Mapped[str | None] = mapped_column(Text)
    failure_message: Mapped[str | None] = mapped_column(Text)
    tx_hash: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict] = mapped_column("metadata", JSONB, server_default=text("'{}'::jsonb"))
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())


# ----------------------------------------------------------------------------- 0008 sweeps
class SweepRequest(Base):
    """What a deposit address holds per the ledger, and what was swept (0008, 0009)."""

    __tablename__ = "sweep_requests"
    __table_args__ = (
        Index(
            "sweep_requests_due", "chain_id", "updated_at",
            postgresql_where=text("held_base_units + unattributed_base_units > swept_base_units AND batch_id IS NULL"),
        ),
        Index("sweep_requests_batch", "batch_id", postgresql_where=text("batch_id IS NOT NULL")),
    )

    intent_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    ledger_id: Mapped[str] = mapped_column(Text)
    asset_key: Mapped[str] = mapped_column(Text)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    token_address: Mapped[str] = mapped_column(Text)
    salt: Mapped[str] = mapped_column(Text)
    held_base_units: Mapped[int] = mapped_column(BaseUnits)
    swept_base_units: Mapped[int] = mapped_column(BaseUnits, server_default="0")
    batch_id: Mapped[str | None] = mapped_column(Text)
    batch_target_base_units: Mapped[int | None] = mapped_column(BaseUnits)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    unattributed_base_units: Mapped[int] = mapped_column(BaseUnits, server_default="0")  # 0009
