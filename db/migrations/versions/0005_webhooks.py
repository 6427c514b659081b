"""webhooks: endpoints, their signing secrets (sealed), the event queue fed by a trigger on
`events`, deliveries, the attempts log, and dispatch routes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

Signing secrets are HMAC keys: the sender needs the secret itself, so a hash would not do. They
are stored sealed with AES-256-GCM under a deployment key (SETTLE_WEBHOOK_SECRET_ENCRYPTION_KEY),
bound to their row, and no read returns them: a secret is shown once, when created or rotated.

The queue: every row inserted into `events` also lands in `webhook_event_queue`, in the same
transaction (a trigger), and wakes the dispatcher (NOTIFY). A cursor over `events.created_at`
could skip an event whose transaction commits after a later one; a queue row cannot be skipped.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


SCHEMA = """
        CREATE TABLE webhook_endpoints (
            id                 TEXT PRIMARY KEY,            -- we_...
            tenant_id          TEXT NOT NULL,
            kind               TEXT NOT NULL DEFAULT 'endpoint' CHECK (kind IN ('endpoint', 'notify_url')),
            url                TEXT NOT NULL,
            description        TEXT NOT NULL DEFAULT '',
            enabled_events     TEXT[] NOT NULL,             -- event types, or {'*'}
            status             TEXT NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled')),
            disabled_reason    TEXT CHECK (disabled_reason IN ('merchant', 'gone')),
            -- The first failed attempt since the last 2xx; NULL while the endpoint answers.
            failing_since      TIMESTAMPTZ,
            -- When it had failed long enough to be declared failing and its tenant was told.
            failing_marked_at  TIMESTAMPTZ,
            created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
            deleted_at         TIMESTAMPTZ,
            CHECK ((status = 'disabled') = (disabled_reason IS NOT NULL))
        );
        CREATE INDEX webhook_endpoints_tenant_created ON webhook_endpoints (tenant_id, created_at DESC, id DESC)
            WHERE deleted_at IS NULL;
        CREATE UNIQUE INDEX webhook_endpoints_notify_url ON webhook_endpoints (tenant_id, url) WHERE kind = 'notify_url';

        -- An endpoint's secrets (owner_kind 'endpoint') or a tenant's notify_url secret ('tenant').
        -- The current one has no expiry; a rotated one signs beside it until expires_at.
        CREATE TABLE webhook_signing_secrets (
            id             TEXT PRIMARY KEY,               -- whsk_...
            owner_kind     TEXT NOT NULL CHECK (owner_kind IN ('endpoint', 'tenant')),
            owner_id       TEXT NOT NULL,
            secret_sealed  TEXT NOT NULL,                  -- v1.<key id>.<base64 nonce|ciphertext|tag>
            created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
            expires_at     TIMESTAMPTZ
        );
        CREATE UNIQUE INDEX webhook_signing_secrets_current ON webhook_signing_secrets (owner_kind, owner_id)
            WHERE expires_at IS NULL;
        CREATE INDEX webhook_signing_secrets_owner ON webhook_signing_secrets (owner_kind, owner_id, created_at DESC);

        -- Tenants whose webhooks a dedicated dispatcher (and its task queue's workers) serves;
        -- every other tenant is on the 'default' route.
        CREATE TABLE webhook_dispatch_routes (
            tenant_id   TEXT PRIMARY KEY,
            route       TEXT NOT NULL CHECK (route <> 'default'),
            created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX webhook_dispatch_routes_route ON webhook_dispatch_routes (route);

        CREATE TABLE webhook_event_queue (
            event_id     TEXT PRIMARY KEY,
            tenant_id    TEXT NOT NULL,
            enqueued_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX webhook_event_queue_order ON webhook_event_queue (enqueued_at, event_id);
        CREATE INDEX webhook_event_queue_tenant ON webhook_event_queue (tenant_id, enqueued_at);


        -- One per (event, endpoint). `round` counts redeliveries; `started_round` is the last
        -- round whose workflow is known to be started: the dispatcher starts what lags behind.
        CREATE TABLE webhook_deliveries (
            id                TEXT PRIMARY KEY,            -- whd_<event id>_<endpoint id>
            tenant_id         TEXT NOT NULL,
            event_id          TEXT NOT NULL,               -- events (id); no FK: events are not ours to hold
            endpoint_id       TEXT NOT NULL REFERENCES webhook_endpoints (id),
            event_type        TEXT NOT NULL,
            event_created_at  TIMESTAMPTZ NOT NULL,
            status            TEXT NOT NULL DEFAULT 'pending'
                              CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
            round             INTEGER NOT NULL DEFAULT 0 CHECK (round >= 0),
            started_round     INTEGER NOT NULL DEFAULT -1 CHECK (started_round >= -1),
            attempts_count    INTEGER NOT NULL DEFAULT 0 CHECK (attempts_count >= 0),
            last_attempt_at   TIMESTAMPTZ,
            last_status_code  INTEGER,
            last_error        TEXT,
            next_attempt_at   TIMESTAMPTZ,
            delivered_at      TIMESTAMPTZ,
            completed_at      TIMESTAMPTZ,
            created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
            UNIQUE (event_id, endpoint_id)
        );
        CREATE INDEX webhook_deliveries_tenant_created ON webhook_deliveries (tenant_id, created_at DESC, id DESC);
        CREATE INDEX webhook_deliveries_endpoint_created ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
        CREATE INDEX webhook_deliveries_to_start ON webhook_deliveries (created_at) WHERE started_round < round;

        -- Every HTTP request made, as it happened: append-only.
        CREATE TABLE webhook_attempts (
            id                 TEXT PRIMARY KEY,           -- wha_...
            delivery_id        TEXT NOT NULL REFERENCES webhook_deliveries (id),
            tenant_id          TEXT NOT NULL,
            endpoint_id        TEXT NOT NULL,
            round              INTEGER NOT NULL,
            attempt_number     INTEGER NOT NULL CHECK (attempt_number >= 1),
            url                TEXT NOT NULL,
            webhook_timestamp  BIGINT,                     -- the signed `webhook-timestamp`
            created_at         TIMESTAMPTZ NOT NULL,       -- when the request started
            latency_ms         INTEGER NOT NULL CHECK (latency_ms >= 0),
            status_code        INTEGER,
            response_body      TEXT,                       -- truncated
            error              TEXT,                       -- truncated; set when no status came back
            outcome            TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed', 'gone'))
        );
        CREATE INDEX webhook_attempts_delivery_created ON webhook_attempts (delivery_id, created_at DESC, id DESC);
"""

ENQUEUE_FUNCTION = """
        CREATE FUNCTION webhook_enqueue_event() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO webhook_event_queue (event_id, tenant_id) VALUES (NEW.id, NEW.tenant_id)
            ON CONFLICT (event_id) DO NOTHING;
            -- Delivered at commit; one per transaction however many events it inserts.
            PERFORM pg_notify('settle_webhook_events', '');
            RETURN NULL;
        END
        $$;
"""

ENQUEUE_TRIGGER = """
        CREATE TRIGGER events_enqueue_webhooks AFTER INSERT ON events
            FOR EACH ROW EXECUTE FUNCTION webhook_enqueue_event()
"""


def upgrade() -> None:
    # One statement per execute: the asyncpg driver prepares what it runs, and a prepared
    # statement holds one command.
    for statement in _split(SCHEMA):
        op.execute(statement)
    op.execute(ENQUEUE_FUNCTION)
    op.execute(ENQUEUE_TRIGGER)


def _split(sql: str) -> list[str]:
    return [statement.strip() for statement in sql.split(";\n") if statement.strip() and not _only_comments(statement)]


def _only_comments(statement: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in statement.splitlines())


def downgrade() -> None:
    op.execute("DROP TRIGGER events_enqueue_webhooks ON events")
    op.execute("DROP FUNCTION webhook_enqueue_event()")
    op.execute(
        "DROP TABLE webhook_attempts, webhook_deliveries, webhook_event_queue, webhook_dispatch_routes, "
        "webhook_signing_secrets, webhook_endpoints"
    )
