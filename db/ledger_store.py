"""The ledger store: `domain.ledger`'s engine on PostgreSQL, through asyncpg and raw SQL.

Posting one transfer per transaction with the fee account's row lock held until the commit is
flushed would cap the whole platform at one commit at a time. Instead `create_transfers` calls
are queued and merged into few transactions (group commit): while one commit is in flight, the
next callers' transfers gather, and the following transaction takes them all, up to a bound.
Each caller gets its own results back, as if it had been alone.

One posting transaction (`_PostingUnitOfWork`):
1. reads which accounts the referenced pending transfers use;
2. locks every account involved, `SELECT ... FOR UPDATE` in id order, so that concurrent
   postings never deadlock and a hot account is locked once per batch, not per transfer; the
   same query reads `now()`, the batch's clock;
3. loads the transfers the batch names (its ids and the pending ids), after the locks, so
   they are the latest committed;
4. runs the engine on those rows in memory, one caller's batch after another (the checks that
   need no state already ran in each caller's turn, before the locks);
5. writes set-based, one statement per caller's batch, each sent before the engine starts on
   the next so that Python and PostgreSQL work at the same time: an `INSERT ... SELECT` of the
   new transfers, an `UPDATE ... FROM` for the pending transfers posted, voided or expired,
   and with the last statement one `UPDATE ... FROM` for the balances. Rows travel as one JSON
   document per part (`jsonb_array_elements`), cheaper to encode than a dozen binary arrays.
A concurrent process creating the same new id (on other accounts, so not serialised by the
locks) makes the insert fail on the primary key; the whole batch is then run again, and the id
is found. Every retry is bounded.

Amounts cross the wire as decimal text and are parsed with `int()`: nothing lossy touches money.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

import asyncpg

from domain.ledger import (
    ID_LENGTH_MAX,
    Account,
    AccountCode,
    AccountFlags,
    BalanceDelta,
    CheckedTransfer,
    CreateAccountResult,
    CreateTransferResult,
    LedgerBatch,
    LedgerState,
    NewAccount,
    NewTransfer,
    PendingStatus,
    Transfer,
    TransferFlags,
    check_transfers,
    create_accounts,
    text_problem,
)

# One caller's batch (TigerBeetle allows 8189).
TRANSFERS_PER_REQUEST_MAX = 8189
ACCOUNTS_PER_REQUEST_MAX = 8189
LOOKUP_IDS_MAX = 1000
PAGE_LIMIT_MAX = 100
EXPIRE_LIMIT_MAX = 10_000

T = TypeVar("T")


class LedgerError(Exception):
    """The ledger store failed; not a business outcome (those are results)."""


class LedgerUnavailable(LedgerError):
    """PostgreSQL could not be reached or dropped the connection. Whether the batch was
    committed is unknown: retry with the same ids, which posts nothing twice."""


class LedgerCursorNotFound(LedgerError):
    """`starting_after` names no transfer."""


class _Conflict(Exception):
    """The batch raced another process; run it again."""


# Faults of the connection or the server: the work may or may not have been committed.
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.InterfaceError,
    # asyncpg's protocol state broken by a connection dying mid-operation.
    asyncpg.InternalClientError,
)
# Races between transactions: nothing was committed; running the batch again resolves them.
_CONFLICTS = (_Conflict, asyncpg.UniqueViolationError, asyncpg.TransactionRollbackError)


@dataclass
class LedgerStoreStats:
    """What the group commit did, for the bench and for metrics."""

    commits: int = 0
    transfers: int = 0
    requests: int = 0
    conflicts_retried: int = 0
    unavailable_retried: int = 0


@dataclass(frozen=True, slots=True)
class TransferPage:
    transfers: list[Transfer]
    has_more: bool


@dataclass(slots=True)
class _Request:
    transfers: list[NewTransfer]
    checked: list[CheckedTransfer]
    future: asyncio.Future = field(repr=False)


def _key_ok(value: str | None) -> bool:
    """Whether an id can go into a query at all; the engine answers for the others."""
    return bool(value) and text_problem(value, length_max=ID_LENGTH_MAX) is None


class LedgerStore:
    """The ledger on PostgreSQL. Share one per process: its group commit merges the
    concurrent `create_transfers` calls of all its users. It does not own the pool."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        transfers_per_commit_max: int = 8189,
        commits_concurrent_max: int = 2,
        requests_queued_max: int = 10_000,
        conflict_attempts_max: int = 8,
        unavailable_attempts_max: int = 3,
        acquire_timeout_s: int = 10,
    ) -> None:
        assert transfers_per_commit_max >= 1 and commits_concurrent_max >= 1 and requests_queued_max >= 1
        assert conflict_attempts_max >= 1 and unavailable_attempts_max >= 1
        self._pool = pool
        self._transfers_per_commit_max = transfers_per_commit_max
        self._commits_concurrent_max = commits_concurrent_max
        self._conflict_attempts_max = conflict_attempts_max
        self._unavailable_attempts_max = unavailable_attempts_max
        self._acquire_timeout_s = acquire_timeout_s
        self._queue: deque[_Request] = deque()
        self._queue_slots = asyncio.Semaphore(requests_queued_max)
        self._flushers: set[asyncio.Task] = set()
        self._closed = False
        self.stats = LedgerStoreStats()

    async def __aenter__(self) -> "LedgerStore":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Refuse new work, finish what is queued."""
        self._closed = True
        if self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)

    # ---------------------------------------------------------------- accounts
    async def create_accounts(self, accounts: Sequence[NewAccount]) -> list[CreateAccountResult]:
        """One result per account, in order (`ok`, `exists`, `exists_with_different_<field>`, ...)."""
        accounts = list(accounts)
        if len(accounts) > ACCOUNTS_PER_REQUEST_MAX:
            raise ValueError(f"at most {ACCOUNTS_PER_REQUEST_MAX} accounts per call, not {len(accounts)}")
        for account in accounts:
            if not isinstance(account, NewAccount):
                raise TypeError(f"expected NewAccount, not {type(account).__name__}")
        if not accounts:
            return []
        return await self._with_retries(lambda connection: self._create_accounts_once(connection, accounts))

    async def _create_accounts_once(self, connection: asyncpg.Connection, accounts: list[NewAccount]) -> list[CreateAccountResult]:
        async with connection.transaction():
            ids = sorted({account.id for account in accounts if _key_ok(account.id)})
            rows = await connection.fetch(_SELECT_ACCOUNTS + " WHERE id = ANY($1::text[])", ids)
            existing = {row["id"]: _account_from_row(row) for row in rows}
            results, created = create_accounts(existing, accounts)
            if created:
                inserted = await connection.fetch(
                    """
                    INSERT INTO ledger_accounts (id, ledger, asset, code, owner, flags)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[])
                    ON CONFLICT (id) DO NOTHING
                    RETURNING id
                    """,
                    [account.id for account in created],
                    [account.ledger for account in created],
                    [account.asset for account in created],
                    [str(account.code) for account in created],
                    [account.owner for account in created],
                    [int(account.flags) for account in created],
                )
                if len(inserted) != len(created):
                    # Created meanwhile by someone else: run again to compare with theirs.
                    raise _Conflict("an account was created concurrently")
            return results

    async def lookup_accounts(self, account_ids: Sequence[str]) -> list[Account]:
        """The accounts that exist among `account_ids`, in that order."""
        account_ids = list(account_ids)
        if len(account_ids) > LOOKUP_IDS_MAX:
            raise ValueError(f"at most {LOOKUP_IDS_MAX} ids per lookup, not {len(account_ids)}")
        wanted = [account_id for account_id in account_ids if _key_ok(account_id)]
        if not wanted:
            return []
        rows = await self._read(lambda connection: connection.fetch(_SELECT_ACCOUNTS + " WHERE id = ANY($1::text[])", wanted))
        found = {row["id"]: _account_from_row(row) for row in rows}
        return [found[account_id] for account_id in account_ids if account_id in found]

    # ---------------------------------------------------------------- transfers: reads
    async def get_transfer(self, transfer_id: str) -> Transfer | None:
        if not _key_ok(transfer_id):
            return None
        row = await self._read(lambda connection: connection.fetchrow(_SELECT_TRANSFERS + " WHERE id = $1", transfer_id))
        return _transfer_from_row(row) if row else None

    async def list_account_transfers(
        self, account_id: str, *, limit: int = PAGE_LIMIT_MAX, starting_after: str | None = None
    ) -> TransferPage:
        """An account's transfers, either side, oldest first; page on with the last id seen."""
        if not 1 <= limit <= PAGE_LIMIT_MAX:
            raise ValueError(f"limit must be within 1..{PAGE_LIMIT_MAX}, not {limit}")
        if not _key_ok(account_id):
            return TransferPage(transfers=[], has_more=False)

        async def page(connection: asyncpg.Connection) -> list[asyncpg.Record]:
            seq_after = 0
            if starting_after is not None:
                seq = await connection.fetchval("SELECT seq FROM ledger_transfers WHERE id = $1", starting_after) if _key_ok(starting_after) else None
                if seq is None:
                    raise LedgerCursorNotFound(f"no transfer {starting_after!r} to start after")
                seq_after = seq
            # Each side walks its own (account, seq) index; the union is cut to the page. (A
            # transfer never has the same account on both sides, so nothing comes twice.)
            return await connection.fetch(
                f"""
                SELECT * FROM (
                    (SELECT {_TRANSFER_COLUMNS}, seq FROM ledger_transfers
                     WHERE debit_account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3)
                    UNION ALL
                    (SELECT {_TRANSFER_COLUMNS}, seq FROM ledger_transfers
                     WHERE credit_account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3)
                ) AS page
                ORDER BY seq
                LIMIT $3
                """,
                account_id,
                seq_after,
                limit + 1,
            )

        rows = await self._read(page)
        transfers = [_transfer_from_row(row) for row in rows[:limit]]
        return TransferPage(transfers=transfers, has_more=len(rows) > limit)

    # ---------------------------------------------------------------- transfers: writes
    async def create_transfers(self, transfers: Sequence[NewTransfer]) -> list[CreateTransferResult]:
        """One result per transfer, in order; never raises for a business outcome.

        Raises LedgerUnavailable when PostgreSQL cannot be reached: the batch may or may not
        have been committed, so retry it with the same ids.
        """
        transfers = list(transfers)
        if len(transfers) > min(TRANSFERS_PER_REQUEST_MAX, self._transfers_per_commit_max):
            raise ValueError(f"at most {min(TRANSFERS_PER_REQUEST_MAX, self._transfers_per_commit_max)} transfers per call, not {len(transfers)}")
        for transfer in transfers:
            if not isinstance(transfer, NewTransfer):
                raise TypeError(f"expected NewTransfer, not {type(transfer).__name__}")
        if not transfers:
            return []
        if self._closed:
            raise LedgerUnavailable("the ledger store is closed")
        # The checks that need no state run here, in the caller's turn, not under the locks.
        checked = check_transfers(transfers)
        async with self._queue_slots:
            request = _Request(transfers=transfers, checked=checked, future=asyncio.get_running_loop().create_future())
            self._queue.append(request)
            self._start_flushers()
            # A caller cancelled before its request is taken is dropped; once taken, it is posted.
            return await request.future

    async def expire_pending_transfers(self, *, limit: int = 1000) -> list[str]:
        """Expire pending transfers past their timeout, releasing what they reserved. Returns
        the ids expired; call again while it returns `limit` of them."""
        if not 1 <= limit <= EXPIRE_LIMIT_MAX:
            raise ValueError(f"limit must be within 1..{EXPIRE_LIMIT_MAX}, not {limit}")

        async def once(connection: asyncpg.Connection) -> list[str]:
            rows = await connection.fetch(
                """
                SELECT id FROM ledger_transfers
                WHERE pending_status = 'pending' AND expires_at <= now()
                ORDER BY expires_at
                LIMIT $1
                """,
                limit,
            )
            ids = [row["id"] for row in rows]
            if not ids:
                return []
            [expired] = await _PostingUnitOfWork(connection).run(
                transfer_ids=set(), pending_ids=set(ids), account_ids=set(), steps=[lambda batch: batch.expire_pending_transfers(ids)]
            )
            self.stats.commits += 1
            return expired

        return await self._with_retries(once)

    # ---------------------------------------------------------------- group commit
    def _start_flushers(self) -> None:
        while self._queue and len(self._flushers) < self._commits_concurrent_max:
            task = asyncio.get_running_loop().create_task(self._flush_queue())
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)

    async def _flush_queue(self) -> None:
        try:
            await self._flush_queue_until_empty()
        finally:
            # Leave the set in the same step that saw the queue empty: a request queued after
            # this point starts a new flusher instead of waiting on one that is ending.
            self._flushers.discard(asyncio.current_task())

    async def _flush_queue_until_empty(self) -> None:
        # Ends when the queue is empty; the queue is bounded by `requests_queued_max`.
        while self._queue:
            group = self._take_group()
            if not group:
                continue
            try:
                results = await self._with_retries(lambda connection: self._post_group_once(connection, group))
            except asyncio.CancelledError:
                _fail(group, LedgerUnavailable("the ledger store was stopped"))
                raise
            except LedgerError as error:
                _fail(group, error)
            except Exception as error:  # noqa: BLE001 - a bug: hand it to the callers, keep serving others
                _fail(group, error)
            else:
                for request, request_results in zip(group, results, strict=True):
                    if not request.future.done():
                        request.future.set_result(request_results)

    def _take_group(self) -> list[_Request]:
        group: list[_Request] = []
        transfers_count = 0
        while self._queue:
            request = self._queue[0]
            if request.future.done():  # its caller gave up before we took it
                self._queue.popleft()
                continue
            if group and transfers_count + len(request.transfers) > self._transfers_per_commit_max:
                break
            self._queue.popleft()
            group.append(request)
            transfers_count += len(request.transfers)
        return group

    async def _post_group_once(self, connection: asyncpg.Connection, group: list[_Request]) -> list[list[CreateTransferResult]]:
        # Only transfers that passed the checks that need no state reach the database: their
        # ids are all valid keys (a post or void may leave its accounts empty).
        post_or_void = int(TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING)
        transfer_ids: set[str] = set()
        pending_ids: set[str] = set()
        account_ids: set[str] = set()
        for request in group:
            for transfer, (problem, _) in zip(request.transfers, request.checked):
                if problem is not None:
                    continue
                transfer_ids.add(transfer.id)
                if int(transfer.flags) & post_or_void:
                    pending_ids.add(transfer.pending_id)
                if transfer.debit_account_id:
                    account_ids.add(transfer.debit_account_id)
                if transfer.credit_account_id:
                    account_ids.add(transfer.credit_account_id)
        results = await _PostingUnitOfWork(connection).run(
            transfer_ids=transfer_ids,
            pending_ids=pending_ids,
            account_ids=account_ids,
            steps=[partial(_create_transfers_step, request) for request in group],
        )
        self.stats.commits += 1
        self.stats.requests += len(group)
        self.stats.transfers += sum(len(request.transfers) for request in group)
        return results

    # ---------------------------------------------------------------- connections and retries
    async def _with_retries(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        conflicts = 0
        faults = 0
        # Bounded: each turn uses up one of the two budgets or returns.
        while True:
            try:
                return await self._on_a_connection(work)
            except _CONFLICTS as error:
                conflicts += 1
                self.stats.conflicts_retried += 1
                if conflicts >= self._conflict_attempts_max:
                    raise LedgerError(f"gave up after {conflicts} conflicting attempts: {error}") from error
                await _sleep_ms(conflicts)
            except _UNAVAILABLE as error:
                faults += 1
                self.stats.unavailable_retried += 1
                if faults >= self._unavailable_attempts_max:
                    raise LedgerUnavailable(f"PostgreSQL is unavailable: {type(error).__name__}: {error}") from error
                # A restart leaves dead connections in the pool; the next one is usually fresh.
                await _sleep_ms(50 * faults)
            except asyncpg.PostgresError as error:
                raise LedgerError(f"the ledger store failed: {type(error).__name__}: {error}") from error

    async def _on_a_connection(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        connection = await self._pool.acquire(timeout=self._acquire_timeout_s)
        try:
            result = await work(connection)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._pool.release(connection)
            raise
        try:
            await self._pool.release(connection)
        except Exception:  # noqa: BLE001 - the work is done (committed); the pool drops a broken connection
            pass
        return result

    async def _read(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        # Reads change nothing: they are retried on connection faults like the writes.
        return await self._with_retries(work)


class _PostingUnitOfWork:
    """One ledger posting: inside the caller's transaction, lock, load, apply, write."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection
        self._accounts: dict[str, Account] = {}

    async def run(
        self,
        *,
        transfer_ids: set[str],
        pending_ids: set[str],
        account_ids: set[str],
        steps: Sequence[Callable[[LedgerBatch], T]],
    ) -> list[T]:
        """In one transaction: lock, load, run `steps` (one per caller of a group commit) on
        one LedgerBatch, write, commit. Returns each step's outcome."""
        connection = self._connection
        # BEGIN and the plan settings in one round trip (asyncpg's transaction() takes two).
        await connection.execute(_BEGIN_POSTING)
        try:
            outcomes = await self._run(transfer_ids=transfer_ids, pending_ids=pending_ids, account_ids=account_ids, steps=steps)
        except BaseException:
            if not connection.is_closed():
                # If this fails too the connection is broken, and the pool drops it.
                with contextlib.suppress(Exception):
                    await connection.execute("ROLLBACK")
            raise
        await connection.execute("COMMIT")
        return outcomes

    async def _run(
        self,
        *,
        transfer_ids: set[str],
        pending_ids: set[str],
        account_ids: set[str],
        steps: Sequence[Callable[[LedgerBatch], T]],
    ) -> list[T]:
        connection = self._connection
        # 1. The accounts of the pending transfers referenced (they are not in the requests).
        if pending_ids:
            rows = await connection.fetch(
                "SELECT debit_account_id, credit_account_id FROM ledger_transfers WHERE id = ANY($1::text[])", list(pending_ids)
            )
            account_ids = account_ids | {row["debit_account_id"] for row in rows} | {row["credit_account_id"] for row in rows}
        # 2. Lock every account once, in one global order; read the transaction's clock.
        rows = await connection.fetch(
            # The order of the locks is the query's ORDER BY, whatever the array's order.
            _SELECT_ACCOUNTS_NOW + ' WHERE id = ANY($1::text[]) ORDER BY id COLLATE "C" FOR UPDATE',
            list(account_ids),
        )
        self._accounts = {row["id"]: _account_from_row(row) for row in rows}
        now = rows[0]["now"] if rows else await connection.fetchval("SELECT now()")
        # 3. After the locks: the latest committed state of the transfers the batch names.
        rows = await connection.fetch(_SELECT_TRANSFERS + " WHERE id = ANY($1::text[])", list(transfer_ids | pending_ids))
        transfers = {row["id"]: _transfer_from_row(row) for row in rows}
        for pending_id in pending_ids:
            pending = transfers.get(pending_id)
            if pending is not None and not {pending.debit_account_id, pending.credit_account_id} <= self._accounts.keys():
                # Committed by another process after step 1: its accounts are not locked.
                raise _Conflict(f"pending transfer {pending_id} appeared during the batch")
        # 4. The rules, in memory, one step at a time; 5. set-based writes, a statement per
        # `_STATEMENT_TRANSFERS_MIN` transfers or so. Each statement is sent before the next
        # steps run, so the engine works while PostgreSQL writes (statements on one connection
        # still run in order). The balances go with the last statement.
        batch = LedgerBatch(LedgerState(accounts=self._accounts, transfers=transfers), now=now)
        outcomes = []
        writing: asyncio.Task | None = None
        try:
            for index, step in enumerate(steps):
                outcomes.append(step(batch))
                last = index == len(steps) - 1
                if not last and batch.transfers_written_since_take < _STATEMENT_TRANSFERS_MIN:
                    continue
                transfers_new, pending_status_changes = batch.take_transfer_changes()
                balance_deltas = batch.balance_deltas() if last else {}
                if not (transfers_new or pending_status_changes or balance_deltas):
                    continue
                statement = self._statement(now, transfers_new, pending_status_changes, balance_deltas)
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(self._write(*statement))
                if not last:
                    # Let the statement reach PostgreSQL before the next step's work.
                    await asyncio.sleep(0)
            if writing is not None:
                await writing
        finally:
            if writing is not None and not writing.done():
                # An error elsewhere: the transaction is lost anyway; wait for the connection.
                await asyncio.gather(writing, return_exceptions=True)
        return outcomes

    def _statement(
        self,
        now: datetime,
        transfers_new: list[Transfer],
        pending_status_changes: dict[str, PendingStatus],
        balance_deltas: dict[str, BalanceDelta],
    ) -> tuple[str, datetime, str, str, tuple[int, int, int]]:
        # One JSON document per part: json.dumps is C, and PostgreSQL parses it faster than
        # asyncpg encodes a dozen binary arrays in Python. Amounts go as strings: exact.
        accounts = self._accounts
        transfers = []
        for t in transfers_new:
            # What foreign keys would check, in memory: both accounts were read under our locks
            # (and accounts are never deleted), in the transfer's ledger and asset.
            debit, credit = accounts.get(t.debit_account_id), accounts.get(t.credit_account_id)
            if not (debit and credit and debit.ledger == credit.ledger == t.ledger and debit.asset == credit.asset == t.asset):
                raise LedgerError(f"bug: transfer {t.id} is not between locked accounts of its ledger and asset")
            assert t.created_at == now, "a batch's transfers carry the transaction's time"
            transfers.append(
                (
                    t.id,
                    t.debit_account_id,
                    t.credit_account_id,
                    str(t.amount),
                    t.ledger,
                    t.asset,
                    t.code,
                    int(t.flags),
                    t.pending_id,
                    t.timeout_s,
                    None if t.expires_at is None else t.expires_at.isoformat(),
                    None if t.pending_status is None else str(t.pending_status),
                    t.metadata,
                )
            )
        statuses = [(transfer_id, str(status)) for transfer_id, status in pending_status_changes.items()]
        balances = [
            (account_id, str(delta.debits_pending), str(delta.debits_posted), str(delta.credits_pending), str(delta.credits_posted))
            for account_id, delta in balance_deltas.items()
        ]
        expected = (len(transfers), len(statuses), len(balances))
        return _json(transfers), now, _json(statuses), _json(balances), expected

    async def _write(self, transfers: str, now: datetime, statuses: str, balances: str, expected: tuple[int, int, int]) -> None:
        row = await self._connection.fetchrow(_WRITE_CHANGES, transfers, now, statuses, balances)
        counts = (row["transfers"], row["statuses"], row["accounts"])
        if counts != expected:
            # Under our row locks this cannot happen; if it does, the batch is rolled back.
            raise LedgerError(f"the batch wrote {counts} (transfers, statuses, accounts), expected {expected}")


# Fewer transfers than this per statement and round trips cost more than the overlap saves.
_STATEMENT_TRANSFERS_MIN = 500

# Only key lookups happen in a posting: a batch's rows found by primary key. A sequential scan
# or a hash join over a whole table is always a misestimate there (tables not analysed yet, an
# array's length unknown to a generic plan) and would read the ledger under our row locks.
_BEGIN_POSTING = (
    "BEGIN ISOLATION LEVEL READ COMMITTED; "
    "SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL jit = off"
)

# New transfers, in the engine's order (their `seq`); pending transfers posted, voided or
# expired; balances. Each part must touch exactly the rows the engine said.
_WRITE_CHANGES = """
    WITH transfers_inserted AS (
        INSERT INTO ledger_transfers (
            id, debit_account_id, credit_account_id, amount, ledger, asset, code, flags,
            pending_id, timeout_s, expires_at, pending_status, metadata, created_at)
        SELECT r->>0, r->>1, r->>2, (r->>3)::numeric(78, 0), r->>4, r->>5, r->>6, (r->>7)::integer,
               r->>8, (r->>9)::integer, (r->>10)::timestamptz, r->>11, r->12, $2::timestamptz
        FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS u(r, position)
        ORDER BY u.position
        RETURNING 1
    ), statuses_updated AS (
        UPDATE ledger_transfers AS t SET pending_status = s.r->>1
        FROM jsonb_array_elements($3::jsonb) AS s(r)
        WHERE t.id = s.r->>0 AND t.pending_status = 'pending' AND jsonb_array_length($3::jsonb) > 0
        RETURNING 1
    ), accounts_updated AS (
        UPDATE ledger_accounts AS a SET
            debits_pending = a.debits_pending + (b.r->>1)::numeric,
            debits_posted = a.debits_posted + (b.r->>2)::numeric,
            credits_pending = a.credits_pending + (b.r->>3)::numeric,
            credits_posted = a.credits_posted + (b.r->>4)::numeric
        FROM jsonb_array_elements($4::jsonb) AS b(r)
        WHERE a.id = b.r->>0 AND jsonb_array_length($4::jsonb) > 0
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM transfers_inserted) AS transfers,
           (SELECT count(*) FROM statuses_updated) AS statuses,
           (SELECT count(*) FROM accounts_updated) AS accounts
"""


def _json(rows: list) -> str:
    return json.dumps(rows, separators=(",", ":"), ensure_ascii=False)


# -------------------------------------------------------------------------- rows
_SELECT_ACCOUNTS = """
    SELECT id, ledger, asset, code, owner, flags,
           debits_pending::text AS debits_pending, debits_posted::text AS debits_posted,
           credits_pending::text AS credits_pending, credits_posted::text AS credits_posted
    FROM ledger_accounts
"""

_SELECT_ACCOUNTS_NOW = _SELECT_ACCOUNTS.replace("FROM ledger_accounts", ", now() AS now FROM ledger_accounts")

_TRANSFER_COLUMNS = """
    id, debit_account_id, credit_account_id, amount::text AS amount, ledger, asset, code, flags,
    pending_id, timeout_s, metadata::text AS metadata, created_at, expires_at, pending_status
"""

_SELECT_TRANSFERS = f"SELECT {_TRANSFER_COLUMNS} FROM ledger_transfers"


def _account_from_row(row: asyncpg.Record) -> Account:
    return Account(
        id=row["id"],
        ledger=row["ledger"],
        asset=row["asset"],
        code=AccountCode(row["code"]),
        owner=row["owner"],
        flags=AccountFlags(row["flags"]),
        debits_pending=int(row["debits_pending"]),
        debits_posted=int(row["debits_posted"]),
        credits_pending=int(row["credits_pending"]),
        credits_posted=int(row["credits_posted"]),
    )


def _transfer_from_row(row: asyncpg.Record) -> Transfer:
    return Transfer(
        id=row["id"],
        debit_account_id=row["debit_account_id"],
        credit_account_id=row["credit_account_id"],
        amount=int(row["amount"]),
        ledger=row["ledger"],
        asset=row["asset"],
        code=row["code"],
        flags=TransferFlags(row["flags"]),
        pending_id=row["pending_id"],
        timeout_s=row["timeout_s"],
        metadata=json.loads(row["metadata"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        pending_status=None if row["pending_status"] is None else PendingStatus(row["pending_status"]),
    )


def _create_transfers_step(request: _Request, batch: LedgerBatch) -> list[CreateTransferResult]:
    return batch.create_transfers(request.transfers, request.checked)


def _fail(group: list[_Request], error: BaseException) -> None:
    for request in group:
        if not request.future.done():
            request.future.set_exception(error)


async def _sleep_ms(milliseconds: int) -> None:
    await asyncio.sleep(timedelta(milliseconds=milliseconds).total_seconds())
