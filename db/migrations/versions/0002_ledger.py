"""ledger: accounts with running balances, and transfers (TigerBeetle's model)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Amounts and balances are NUMERIC(78,0): every uint256 fits. Ids and names are opaque keys:
COLLATE "C" compares them byte by byte, much cheaper than a locale's rules in every index.
The flags columns hold the bit values of domain.ledger.AccountFlags and TransferFlags. The
store writes these tables; the constraints are the last line of defence behind the engine's
checks.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE ledger_accounts (
            id text COLLATE "C" PRIMARY KEY CHECK (id <> '' AND length(id) <= 256),
            ledger text COLLATE "C" NOT NULL CHECK (ledger <> '' AND length(ledger) <= 128),
            asset text COLLATE "C" NOT NULL CHECK (asset <> '' AND length(asset) <= 128),
            code text COLLATE "C" NOT NULL CHECK (code <> ''),
            owner text COLLATE "C" CHECK (owner <> '' AND length(owner) <= 256),
            -- 1 debits_must_not_exceed_credits, 2 credits_must_not_exceed_debits, 4 closed
            flags integer NOT NULL CHECK (flags BETWEEN 0 AND 7 AND flags & 3 <> 3),
            debits_pending numeric(78, 0) NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
            debits_posted numeric(78, 0) NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
            credits_pending numeric(78, 0) NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
            credits_posted numeric(78, 0) NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
            created_at timestamptz NOT NULL DEFAULT now()
        ) WITH (fillfactor = 50)
        """
    )
    # fillfactor 50: a balance update finds room on its page (a HOT update: no index writes).
    # Per-tenant reads and the invariants' per ledger and asset sums.
    op.execute("CREATE INDEX ledger_accounts_ledger_asset_code ON ledger_accounts (ledger, asset, code)")
    op.execute("CREATE INDEX ledger_accounts_owner ON ledger_accounts (owner) WHERE owner IS NOT NULL")

    op.execute(
        """
        CREATE TABLE ledger_transfers (
            id text COLLATE "C" PRIMARY KEY CHECK (id <> '' AND length(id) <= 256),
            -- The posting order; under the account row locks it is also the commit order per account.
            seq bigint GENERATED ALWAYS AS IDENTITY,
            -- No foreign keys to the accounts: their per-row triggers cost as much as the rest of
            -- the insert. The store inserts only between accounts it read under its row locks,
            -- and accounts can never be deleted (below).
            debit_account_id text COLLATE "C" NOT NULL,
            credit_account_id text COLLATE "C" NOT NULL,
            amount numeric(78, 0) NOT NULL CHECK (amount > 0),
            ledger text COLLATE "C" NOT NULL,
            asset text COLLATE "C" NOT NULL,
            code text COLLATE "C" NOT NULL CHECK (code <> ''),
            -- 1 linked, 2 pending, 4 post_pending, 8 void_pending
            flags integer NOT NULL CHECK (flags BETWEEN 0 AND 15),
            pending_id text COLLATE "C" REFERENCES ledger_transfers (id),
            timeout_s integer NOT NULL DEFAULT 0 CHECK (timeout_s >= 0),
            expires_at timestamptz,
            pending_status text CHECK (pending_status IN ('pending', 'posted', 'voided', 'expired')),
            metadata jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
            created_at timestamptz NOT NULL,
            CHECK (debit_account_id <> credit_account_id),
            CHECK ((flags & 2 = 2) = (pending_status IS NOT NULL)),
            CHECK ((flags & 12 <> 0) = (pending_id IS NOT NULL)),
            CHECK (pending_id IS NULL OR pending_id <> id)
        )
        """
    )
    # An account's transfers in posting order, from either side.
    op.execute("CREATE INDEX ledger_transfers_debit_account_seq ON ledger_transfers (debit_account_id, seq)")
    op.execute("CREATE INDEX ledger_transfers_credit_account_seq ON ledger_transfers (credit_account_id, seq)")
    # A pending transfer is posted or voided at most once.
    op.execute("CREATE UNIQUE INDEX ledger_transfers_pending_id ON ledger_transfers (pending_id) WHERE pending_id IS NOT NULL")
    # The expiry sweep's queue: small, only what is still reserved and can time out.
    op.execute(
        "CREATE INDEX ledger_transfers_expiring ON ledger_transfers (expires_at) "
        "WHERE pending_status = 'pending' AND expires_at IS NOT NULL"
    )


    # The ledger is append-only: no account or transfer is ever deleted, and a transfer changes
    # only once, when its pending status moves from 'pending' to posted, voided or expired.
    op.execute(
        """
        CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- Nested: OLD has a pending_status only on ledger_transfers.
            IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'ledger_transfers' THEN
                IF OLD.pending_status = 'pending' AND NEW.pending_status IN ('posted', 'voided', 'expired')
                   AND (to_jsonb(NEW) - 'pending_status') = (to_jsonb(OLD) - 'pending_status') THEN
                    RETURN NEW;
                END IF;
            END IF;
            RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'integrity_constraint_violation';
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts "
        "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER ledger_accounts_no_truncate BEFORE TRUNCATE ON ledger_accounts "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER ledger_transfers_append_only BEFORE UPDATE OR DELETE ON ledger_transfers "
        "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER ledger_transfers_no_truncate BEFORE TRUNCATE ON ledger_transfers "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
    )


def downgrade() -> None:
    op.execute("DROP TABLE ledger_transfers")
    op.execute("DROP TABLE ledger_accounts")
    op.execute("DROP FUNCTION ledger_refuse_change()")
