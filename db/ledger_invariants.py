"""The ledger's invariants, checked in PostgreSQL: by the tests, the bench and the
reconciliation workflow. An empty list means the ledger is sound.

1. per ledger and asset, total debits equal total credits, posted and pending separately;
2. every account's four balances equal the sums of its transfers (posted: plain transfers and
   posts; pending: pending transfers still pending);
3. no account breaks its flags (debits within credits, credits within debits);
4. every transfer has the ledger and asset of its accounts;
5. every pending transfer's status agrees with what resolved it: posted by one post of at most
   its amount, voided by one void, or nothing for pending and expired ones;
6. every account named in the application's scheme (an id that starts `{ledger}/{asset}/{code}`,
   domain.ledger.AccountKey) has exactly the id its columns give, its owner stored, and its code's
   flags from domain.ledger.ACCOUNT_CODES (closing it aside).

The sums take each account's transfers through its (account, seq) indexes, so checking one
ledger costs that ledger's transfers, not the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from domain.ledger import ACCOUNT_CODES, ACCOUNT_ID_SEPARATOR, AccountFlags, TransferFlags

# The flag bits, as the store writes them.
_PENDING = int(TransferFlags.PENDING)
_POST_PENDING = int(TransferFlags.POST_PENDING)
_VOID_PENDING = int(TransferFlags.VOID_PENDING)
_DEBITS_MUST_NOT_EXCEED_CREDITS = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CREDITS_MUST_NOT_EXCEED_DEBITS = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
_LIMITS = _DEBITS_MUST_NOT_EXCEED_CREDITS | _CREDITS_MUST_NOT_EXCEED_DEBITS


@dataclass(frozen=True, slots=True)
class Violation:
    kind: str
    ledger: str
    asset: str | None
    account_id: str | None
    transfer_id: str | None
    detail: str


async def check_ledger_invariants(pool: asyncpg.Pool, *, ledger: str | None = None) -> list[Violation]:
    """Every broken invariant, for one ledger (tenant) or all of them. Reads one consistent
    snapshot (REPEATABLE READ), so concurrent posting cannot produce false alarms."""
    async with pool.acquire() as connection:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            violations = []
            violations += await _unbalanced_ledgers(connection, ledger)
            violations += await _balances_not_matching_transfers(connection, ledger)
            violations += await _flags_broken(connection, ledger)
            violations += await _transfers_off_their_accounts(connection, ledger)
            violations += await _pending_resolution_mismatches(connection, ledger)
            violations += await _accounts_off_their_scheme(connection, ledger)
            return violations


async def _unbalanced_ledgers(connection: asyncpg.Connection, ledger: str | None) -> list[Violation]:
    rows = await connection.fetch(
        """
        SELECT ledger, asset,
               sum(debits_posted)::text AS debits_posted, sum(credits_posted)::text AS credits_posted,
               sum(debits_pending)::text AS debits_pending, sum(credits_pending)::text AS credits_pending
        FROM ledger_accounts
        WHERE $1::text IS NULL OR ledger = $1
        GROUP BY ledger, asset
        HAVING sum(debits_posted) <> sum(credits_posted) OR sum(debits_pending) <> sum(credits_pending)
        """,
        ledger,
    )
    return [
        Violation(
            kind="ledger_unbalanced",
            ledger=row["ledger"],
            asset=row["asset"],
            account_id=None,
            transfer_id=None,
            detail=(
                f"posted: debits {row['debits_posted']} != credits {row['credits_posted']} or "
                f"pending: debits {row['debits_pending']} != credits {row['credits_pending']}"
            ),
        )
        for row in rows
    ]


async def _balances_not_matching_transfers(connection: asyncpg.Connection, ledger: str | None) -> list[Violation]:
    rows = await connection.fetch(
        f"""
        SELECT a.id, a.ledger, a.asset,
               a.debits_pending::text AS debits_pending, a.debits_posted::text AS debits_posted,
               a.credits_pending::text AS credits_pending, a.credits_posted::text AS credits_posted,
               d.pending::text AS sum_debits_pending, d.posted::text AS sum_debits_posted,
               c.pending::text AS sum_credits_pending, c.posted::text AS sum_credits_posted
        FROM ledger_accounts AS a
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(t.amount) FILTER (WHERE t.flags & {_PENDING} <> 0 AND t.pending_status = 'pending'), 0) AS pending,
                   coalesce(sum(t.amount) FILTER (WHERE t.flags & {_PENDING | _VOID_PENDING} = 0), 0) AS posted
            FROM ledger_transfers AS t WHERE t.debit_account_id = a.id
        ) AS d
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(t.amount) FILTER (WHERE t.flags & {_PENDING} <> 0 AND t.pending_status = 'pending'), 0) AS pending,
                   coalesce(sum(t.amount) FILTER (WHERE t.flags & {_PENDING | _VOID_PENDING} = 0), 0) AS posted
            FROM ledger_transfers AS t WHERE t.credit_account_id = a.id
        ) AS c
        WHERE ($1::text IS NULL OR a.ledger = $1)
          AND (a.debits_pending <> d.pending OR a.debits_posted <> d.posted
               OR a.credits_pending <> c.pending OR a.credits_posted <> c.posted)
        """,
        ledger,
    )
    return [
        Violation(
            kind="account_balances_not_matching_transfers",
            ledger=row["ledger"],
            asset=row["asset"],
            account_id=row["id"],
            transfer_id=None,
            detail=(
                f"balances (debits pending/posted, credits pending/posted) "
                f"{row['debits_pending']}/{row['debits_posted']}, {row['credits_pending']}/{row['credits_posted']}; "
                f"transfers sum to {row['sum_debits_pending']}/{row['sum_debits_posted']}, "
                f"{row['sum_credits_pending']}/{row['sum_credits_posted']}"
            ),
        )
        for row in rows
    ]


async def _flags_broken(connection: asyncpg.Connection, ledger: str | None) -> list[Violation]:
    rows = await connection.fetch(
        f"""
        SELECT id, ledger, asset, flags,
               (debits_pending + debits_posted)::text AS debits, credits_posted::text AS credits_posted,
               (credits_pending + credits_posted)::text AS credits, debits_posted::text AS debits_posted
        FROM ledger_accounts
        WHERE ($1::text IS NULL OR ledger = $1)
          AND ((flags & {_DEBITS_MUST_NOT_EXCEED_CREDITS} <> 0 AND debits_pending + debits_posted > credits_posted)
               OR (flags & {_CREDITS_MUST_NOT_EXCEED_DEBITS} <> 0 AND credits_pending + credits_posted > debits_posted))
        """,
        ledger,
    )
    violations = []
    for row in rows:
        if row["flags"] & _DEBITS_MUST_NOT_EXCEED_CREDITS:
            detail = f"debits_must_not_exceed_credits: debits {row['debits']} > credits posted {row['credits_posted']}"
        else:
            detail = f"credits_must_not_exceed_debits: credits {row['credits']} > debits posted {row['debits_posted']}"
        violations.append(
            Violation(kind="account_flags_broken", ledger=row["ledger"], asset=row["asset"], account_id=row["id"], transfer_id=None, detail=detail)
        )
    return violations


async def _transfers_off_their_accounts(connection: asyncpg.Connection, ledger: str | None) -> list[Violation]:
    rows = await connection.fetch(
        """
        SELECT t.id, t.ledger, t.asset, a.id AS account_id, a.ledger AS account_ledger, a.asset AS account_asset
        FROM ledger_accounts AS a JOIN ledger_transfers AS t ON t.debit_account_id = a.id
        WHERE ($1::text IS NULL OR a.ledger = $1) AND (t.ledger <> a.ledger OR t.asset <> a.asset)
        UNION ALL
        SELECT t.id, t.ledger, t.asset, a.id, a.ledger, a.asset
        FROM ledger_accounts AS a JOIN ledger_transfers AS t ON t.credit_account_id = a.id
        WHERE ($1::text IS NULL OR a.ledger = $1) AND (t.ledger <> a.ledger OR t.asset <> a.asset)
        """,
        ledger,
    )
    return [
        Violation(
            kind="transfer_off_its_accounts",
            ledger=row["ledger"],
            asset=row["asset"],
            account_id=row["account_id"],
            transfer_id=row["id"],
            detail=f"transfer in {row['ledger']}/{row['asset']}, account in {row['account_ledger']}/{row['account_asset']}",
        )
        for row in rows
    ]


async def _pending_resolution_mismatches(connection: asyncpg.Connection, ledger: str | None) -> list[Violation]:
    rows = await connection.fetch(
        f"""
        SELECT p.id, p.ledger, p.asset, p.pending_status, r.id AS resolution_id, r.flags AS resolution_flags,
               p.amount::text AS amount, r.amount::text AS resolution_amount
        FROM ledger_accounts AS a
        JOIN ledger_transfers AS p ON p.debit_account_id = a.id AND p.flags & {_PENDING} <> 0
        LEFT JOIN ledger_transfers AS r ON r.pending_id = p.id
        WHERE ($1::text IS NULL OR a.ledger = $1)
          AND NOT (
              (p.pending_status IN ('pending', 'expired') AND r.id IS NULL)
              OR (p.pending_status = 'posted' AND r.flags & {_POST_PENDING} <> 0 AND r.amount <= p.amount
                  AND r.debit_account_id = p.debit_account_id AND r.credit_account_id = p.credit_account_id)
              OR (p.pending_status = 'voided' AND r.flags & {_VOID_PENDING} <> 0 AND r.amount = p.amount
                  AND r.debit_account_id = p.debit_account_id AND r.credit_account_id = p.credit_account_id)
          )
        """,
        ledger,
    )
    violations = [
        Violation(
            kind="pending_resolution_mismatch",
            ledger=row["ledger"],
            asset=row["asset"],
            account_id=None,
            transfer_id=row["id"],
            detail=(
                f"status {row['pending_status']}, amount {row['amount']}; resolved by {row['resolution_id']} "
                f"(flags {row['resolution_flags']}, amount {row['resolution_amount']})"
            ),
        )
        for row in rows
    ]
    orphans = await connection.fetch(
        f"""
        SELECT r.id, r.ledger, r.asset, r.pending_id
        FROM ledger_accounts AS a
        JOIN ledger_transfers AS r ON r.debit_account_id = a.id AND r.flags & {_POST_PENDING | _VOID_PENDING} <> 0
        JOIN ledger_transfers AS p ON p.id = r.pending_id
        WHERE ($1::text IS NULL OR a.ledger = $1) AND p.flags & {_PENDING} = 0
        """,
        ledger,
    )
    violations += [
        Violation(
            kind="pending_resolution_mismatch",
            ledger=row["ledger"],
            asset=row["asset"],
            account_id=None,
            transfer_id=row["id"],
            detail=f"resolves {row['pending_id']}, which is not a pending transfer",
        )
        for row in orphans
    ]
    return violations


async def _accounts_off_their_scheme(connection: asyncpg.Connection, ledger: str | None) -> list[Violation]:
    """Accounts named otherwise (the engine's tests, the bench) are not the application's and are
    left alone. The ledger's own accounts store the ledger as owner and leave it out of their id."""
    codes = list(ACCOUNT_CODES)
    rows = await connection.fetch(
        f"""
        SELECT a.id, a.ledger, a.asset, a.owner, a.flags, c.flags AS code_flags, expected.id AS expected_id
        FROM ledger_accounts AS a
        CROSS JOIN LATERAL (SELECT a.ledger || $4 || a.asset || $4 || a.code AS id) AS own
        CROSS JOIN LATERAL (SELECT CASE WHEN a.owner = a.ledger THEN own.id ELSE own.id || $4 || a.owner END AS id) AS expected
        LEFT JOIN unnest($2::text[], $3::integer[]) AS c (code, flags) ON c.code = a.code
        WHERE ($1::text IS NULL OR a.ledger = $1)
          AND (a.id = own.id OR starts_with(a.id, own.id || $4))
          AND (a.id IS DISTINCT FROM expected.id OR c.flags IS NULL OR a.flags & {_LIMITS} <> c.flags)
        """,
        ledger,
        [code.value for code in codes],
        [int(ACCOUNT_CODES[code].flags) for code in codes],
        ACCOUNT_ID_SEPARATOR,
    )
    violations = []
    for row in rows:
        if row["owner"] is None:
            detail = "no owner stored (the ledger's own accounts store their ledger)"
        elif row["expected_id"] != row["id"]:
            detail = f"owner {row['owner']!r}: its id would be {row['expected_id']!r}"
        elif row["code_flags"] is None:
            detail = "its code has no rule in domain.ledger.ACCOUNT_CODES"
        else:
            detail = f"flags {row['flags']}, its code's are {row['code_flags']}"
        violations.append(
            Violation(kind="account_off_its_scheme", ledger=row["ledger"], asset=row["asset"], account_id=row["id"], transfer_id=None, detail=detail)
        )
    return violations
