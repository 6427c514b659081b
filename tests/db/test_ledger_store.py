"""The ledger store on the session's PostgreSQL: reads, writes, group commit, concurrent
"processes" (separate pools and stores), faults. Each test has its own ledger (tenant) id."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest

from db import ledger_store
from db.ledger_invariants import check_ledger_invariants
from db.ledger_store import LedgerCursorNotFound, LedgerStore, LedgerUnavailable
from db.pool import create_pool
from domain.ledger import (
    AccountCode,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    NewAccount,
    NewTransfer,
    PendingStatus,
    TransferFlags,
)

R = CreateTransferResult
A = CreateAccountResult
USDC = "evm:31337:usdc"


class Tenant:
    """Ids and builders for one test's ledger."""

    def __init__(self, unique_id: str) -> None:
        self.ledger = f"test-{unique_id}"

    def account_id(self, name: str) -> str:
        return f"{self.ledger}/{name}"

    def account(self, name: str, flags: AccountFlags = AccountFlags.NONE, code: AccountCode = AccountCode.TREASURY, **fields) -> NewAccount:
        return NewAccount(id=self.account_id(name), ledger=self.ledger, asset=USDC, code=code, flags=flags, **fields)

    def transfer(self, name: str, debit: str, credit: str, amount: int | None, flags: TransferFlags = TransferFlags.NONE, **fields) -> NewTransfer:
        return NewTransfer(
            id=f"{self.ledger}/{name}",
            debit_account_id=self.account_id(debit),
            credit_account_id=self.account_id(credit),
            amount=amount,
            ledger=self.ledger,
            asset=USDC,
            code="test",
            flags=flags,
            **fields,
        )

    def resolve(self, name: str, pending: str, flags: TransferFlags, amount: int | None = None) -> NewTransfer:
        return NewTransfer(id=f"{self.ledger}/{name}", pending_id=f"{self.ledger}/{pending}", flags=flags, amount=amount)


@pytest.fixture
def tenant(unique_id) -> Tenant:
    return Tenant(unique_id)


@pytest.fixture
async def store(db_pool):
    ledger_store = LedgerStore(db_pool)
    yield ledger_store
    await ledger_store.close()


async def _balances(store: LedgerStore, tenant: Tenant, *names: str) -> list[tuple[int, int, int, int]]:
    accounts = await store.lookup_accounts([tenant.account_id(name) for name in names])
    assert [account.id for account in accounts] == [tenant.account_id(name) for name in names]
    return [account.balances for account in accounts]


async def test_accounts_are_created_once_and_looked_up_in_order(store, tenant):
    results = await store.create_accounts(
        [
            tenant.account("treasury"),
            tenant.account("fees", code=AccountCode.PLATFORM_FEES, owner="platform"),
            tenant.account("treasury"),
            tenant.account("treasury", AccountFlags.CLOSED),
            NewAccount(id=tenant.account_id("fees"), ledger=tenant.ledger, asset=USDC, code=AccountCode.ROUNDING, owner="platform"),
            tenant.account(""),
        ]
    )
    assert results == [A.OK, A.OK, A.EXISTS, A.EXISTS_WITH_DIFFERENT_FLAGS, A.EXISTS_WITH_DIFFERENT_CODE, A.OK]
    assert await store.create_accounts([tenant.account("fees", code=AccountCode.PLATFORM_FEES, owner="platform")]) == [A.EXISTS]
    found = await store.lookup_accounts([tenant.account_id("fees"), "missing", tenant.account_id("treasury"), "bad\x00id"])
    assert [account.id for account in found] == [tenant.account_id("fees"), tenant.account_id("treasury")]
    assert found[0].code is AccountCode.PLATFORM_FEES and found[0].owner == "platform" and found[0].balances == (0, 0, 0, 0)


async def test_transfers_post_once_and_read_back_in_integers(store, tenant):
    await store.create_accounts([tenant.account("customer"), tenant.account("merchant")])
    big = 2**256 - 1
    gross = tenant.transfer("pi_1/settle/gross", "customer", "merchant", big, metadata={"intent": "pi_1", "n": 10**30})
    assert await store.create_transfers([gross]) == [R.OK]
    assert await store.create_transfers([gross]) == [R.EXISTS]
    assert await store.create_transfers([tenant.transfer("pi_1/settle/gross", "customer", "merchant", 1)]) == [R.EXISTS_WITH_DIFFERENT_AMOUNT]
    assert await _balances(store, tenant, "customer", "merchant") == [(0, big, 0, 0), (0, 0, 0, big)]
    transfer = await store.get_transfer(gross.id)
    assert transfer is not None
    assert type(transfer.amount) is int and transfer.amount == big
    assert transfer.metadata == {"intent": "pi_1", "n": 10**30}
    assert transfer.ledger == tenant.ledger and transfer.pending_status is None
    assert await store.get_transfer(f"{tenant.ledger}/nope") is None
    assert await check_ledger_invariants(store._pool, ledger=tenant.ledger) == []


async def test_a_failing_linked_chain_writes_nothing(store, tenant):
    await store.create_accounts([tenant.account("customer", AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS), tenant.account("merchant"), tenant.account("fees")])
    assert await store.create_transfers([tenant.transfer("fund", "merchant", "customer", 100)]) == [R.OK]
    results = await store.create_transfers(
        [
            tenant.transfer("pi_2/fee", "customer", "fees", 3, TransferFlags.LINKED),
            tenant.transfer("pi_2/net", "customer", "merchant", 98),
        ]
    )
    assert results == [R.LINKED_EVENT_FAILED, R.EXCEEDS_CREDITS]
    assert await store.get_transfer(f"{tenant.ledger}/pi_2/fee") is None
    assert await _balances(store, tenant, "customer", "fees") == [(0, 0, 0, 100), (0, 0, 0, 0)]


async def test_pending_post_void_and_expiry(store, tenant, db_pool):
    await store.create_accounts([tenant.account("merchant"), tenant.account("in_flight")])
    assert await store.create_transfers(
        [
            tenant.transfer("payout/reserve/1", "merchant", "in_flight", 100, TransferFlags.PENDING, timeout_s=3600),
            tenant.transfer("payout/reserve/2", "merchant", "in_flight", 50, TransferFlags.PENDING, timeout_s=3600),
            tenant.transfer("payout/reserve/3", "merchant", "in_flight", 7, TransferFlags.PENDING, timeout_s=1),
        ]
    ) == [R.OK, R.OK, R.OK]
    assert await _balances(store, tenant, "merchant") == [(157, 0, 0, 0)]
    assert await store.create_transfers(
        [
            tenant.resolve("payout/post/1", "payout/reserve/1", TransferFlags.POST_PENDING, amount=60),
            tenant.resolve("payout/void/2", "payout/reserve/2", TransferFlags.VOID_PENDING),
            tenant.resolve("payout/void/1", "payout/reserve/1", TransferFlags.VOID_PENDING),
        ]
    ) == [R.OK, R.OK, R.PENDING_TRANSFER_ALREADY_POSTED]
    assert await _balances(store, tenant, "merchant", "in_flight") == [(7, 60, 0, 0), (0, 0, 7, 60)]
    reserve = await store.get_transfer(f"{tenant.ledger}/payout/reserve/1")
    assert reserve.pending_status is PendingStatus.POSTED and reserve.expires_at is not None

    await asyncio.sleep(1.2)
    assert await store.create_transfers([tenant.resolve("payout/post/3", "payout/reserve/3", TransferFlags.POST_PENDING)]) == [R.PENDING_TRANSFER_EXPIRED]
    expired = await store.expire_pending_transfers(limit=1000)
    assert f"{tenant.ledger}/payout/reserve/3" in expired
    assert await _balances(store, tenant, "merchant") == [(0, 60, 0, 0)]
    assert (await store.get_transfer(f"{tenant.ledger}/payout/reserve/3")).pending_status is PendingStatus.EXPIRED
    assert await check_ledger_invariants(db_pool, ledger=tenant.ledger) == []


async def test_an_accounts_transfers_page_in_posting_order(store, tenant):
    await store.create_accounts([tenant.account("hot"), tenant.account("a"), tenant.account("b")])
    names = []
    for batch in range(3):
        transfers = [tenant.transfer(f"t/{batch}/{i}", random.choice("ab"), "hot", 1 + i) for i in range(9)]
        assert set(await store.create_transfers(transfers)) == {R.OK}
        names += [transfer.id for transfer in transfers]
    # Transfers not touching `hot` are left out.
    assert await store.create_transfers([tenant.transfer("other", "a", "b", 1)]) == [R.OK]
    seen = []
    starting_after = None
    for _ in range(10):
        page = await store.list_account_transfers(tenant.account_id("hot"), limit=10, starting_after=starting_after)
        seen += [transfer.id for transfer in page.transfers]
        if not page.has_more:
            break
        starting_after = page.transfers[-1].id
    assert seen == names
    page = await store.list_account_transfers(tenant.account_id("a"), limit=100)
    assert page.transfers[-1].id == f"{tenant.ledger}/other" and not page.has_more
    with pytest.raises(ValueError):
        await store.list_account_transfers(tenant.account_id("hot"), limit=101)
    with pytest.raises(LedgerCursorNotFound):
        await store.list_account_transfers(tenant.account_id("hot"), starting_after=f"{tenant.ledger}/nope")


async def test_concurrent_callers_share_commits_and_get_their_own_results(db_pool, tenant):
    store = LedgerStore(db_pool, commits_concurrent_max=1)
    try:
        await store.create_accounts([tenant.account("fees"), *[tenant.account(f"c{i}") for i in range(20)]])
        commits_before = store.stats.commits

        async def caller(number: int) -> list[CreateTransferResult]:
            return await store.create_transfers(
                [
                    tenant.transfer(f"pi_{number}/fee", f"c{number}", "fees", 1 + number),
                    # Every caller also posts the same shared id: the first in the queue wins.
                    tenant.transfer("shared", "c0", "fees", 5),
                    # A chain left open ends at the caller's batch, not the commit's.
                    tenant.transfer(f"pi_{number}/open", f"c{number}", "fees", 1, TransferFlags.LINKED),
                ]
            )

        results = await asyncio.gather(*(caller(number) for number in range(20)))
        assert results[0] == [R.OK, R.OK, R.LINKED_EVENT_CHAIN_OPEN]
        assert all(result == [R.OK, R.EXISTS, R.LINKED_EVENT_CHAIN_OPEN] for result in results[1:])
        commits = store.stats.commits - commits_before
        assert commits < 20, f"{commits} commits for 20 concurrent callers"
        assert await _balances(store, tenant, "fees") == [(0, 0, 0, sum(1 + n for n in range(20)) + 5)]
    finally:
        await store.close()


async def test_separate_processes_post_overlapping_ids_exactly_once(stack, tenant):
    """Four pools, each with its own store (as four worker processes), 16 posters, the same ids."""
    pools = [await create_pool(stack["database_url"], size_max=4) for _ in range(4)]
    stores = [LedgerStore(pool) for pool in pools]
    try:
        accounts = [f"c{i}" for i in range(30)]
        assert set(await stores[0].create_accounts([tenant.account("fees"), *[tenant.account(name) for name in accounts]])) == {A.OK}
        # The plan: 300 transfers, the same for everyone; each poster sends them in its own order
        # and batching, so that the same ids race across processes and within each process.
        plan = [tenant.transfer(f"t{i}", accounts[i % 30], "fees" if i % 3 else accounts[(i + 1) % 30], 1 + i % 7) for i in range(300)]

        async def poster(number: int) -> list[tuple[str, CreateTransferResult]]:
            rng = random.Random(number)
            order = plan[:]
            rng.shuffle(order)
            outcomes = []
            position = 0
            while position < len(order):
                size = rng.randint(1, 40)
                batch = order[position : position + size]
                position += size
                results = await stores[number % 4].create_transfers(batch)
                outcomes += [(transfer.id, result) for transfer, result in zip(batch, results)]
            return outcomes

        outcomes = [outcome for outcomes in await asyncio.gather(*(poster(n) for n in range(16))) for outcome in outcomes]
        oks: dict[str, int] = {}
        for transfer_id, result in outcomes:
            assert result in (R.OK, R.EXISTS), (transfer_id, result)
            oks[transfer_id] = oks.get(transfer_id, 0) + (result is R.OK)
        assert oks == {transfer.id: 1 for transfer in plan}
        count = await pools[0].fetchval("SELECT count(*) FROM ledger_transfers WHERE id = ANY($1::text[])", [t.id for t in plan])
        assert count == 300
        expected: dict[str, list[int]] = {}
        for transfer in plan:
            expected.setdefault(transfer.debit_account_id, [0, 0])[0] += transfer.amount
            expected.setdefault(transfer.credit_account_id, [0, 0])[1] += transfer.amount
        for account in await stores[1].lookup_accounts(list(expected)):
            assert (account.debits_posted, account.credits_posted) == tuple(expected[account.id])
        assert await check_ledger_invariants(pools[2], ledger=tenant.ledger) == []
    finally:
        for store, pool in zip(stores, pools):
            await store.close()
            await pool.close()


async def test_the_same_new_id_on_different_accounts_races_to_one_winner(stack, tenant):
    """No account lock is shared, so only the primary key decides; the losers run again and
    see the winner's transfer."""
    pools = [await create_pool(stack["database_url"], size_max=2) for _ in range(6)]
    stores = [LedgerStore(pool) for pool in pools]
    try:
        names = [f"x{i}" for i in range(12)]
        await stores[0].create_accounts([tenant.account(name) for name in names])
        for round_number in range(5):
            contenders = [tenant.transfer(f"race/{round_number}", names[2 * i], names[2 * i + 1], 10) for i in range(6)]
            results = await asyncio.gather(*(store.create_transfers([transfer]) for store, transfer in zip(stores, contenders)))
            flat = [result for [result] in results]
            assert flat.count(R.OK) == 1, flat
            assert all(result in (R.OK, R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID) for result in flat), flat
        assert await check_ledger_invariants(pools[0], ledger=tenant.ledger) == []
    finally:
        for store, pool in zip(stores, pools):
            await store.close()
            await pool.close()


async def test_a_pending_transfer_is_resolved_once_across_processes(stack, tenant):
    pools = [await create_pool(stack["database_url"], size_max=2) for _ in range(4)]
    stores = [LedgerStore(pool) for pool in pools]
    try:
        await stores[0].create_accounts([tenant.account("merchant"), tenant.account("in_flight")])
        posted_total = 0
        for round_number in range(5):
            reserve = f"reserve/{round_number}"
            assert await stores[0].create_transfers([tenant.transfer(reserve, "merchant", "in_flight", 10, TransferFlags.PENDING)]) == [R.OK]
            attempts = [
                tenant.resolve(f"post/{round_number}/{i}", reserve, TransferFlags.POST_PENDING if i % 2 else TransferFlags.VOID_PENDING)
                for i in range(4)
            ]
            results = await asyncio.gather(*(store.create_transfers([attempt]) for store, attempt in zip(stores, attempts)))
            flat = [result for [result] in results]
            assert flat.count(R.OK) == 1, flat
            assert set(flat) <= {R.OK, R.PENDING_TRANSFER_ALREADY_POSTED, R.PENDING_TRANSFER_ALREADY_VOIDED}, flat
            winner = flat.index(R.OK)
            posted_total += 10 if attempts[winner].flags & TransferFlags.POST_PENDING else 0
        assert await _balances(stores[1], tenant, "merchant") == [(0, posted_total, 0, 0)]
        assert await check_ledger_invariants(pools[0], ledger=tenant.ledger) == []
    finally:
        for store, pool in zip(stores, pools):
            await store.close()
            await pool.close()


async def test_the_ledger_is_append_only(store, tenant, db_pool):
    await store.create_accounts([tenant.account("a"), tenant.account("b")])
    assert await store.create_transfers([tenant.transfer("t", "a", "b", 5)]) == [R.OK]
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):
        await db_pool.execute("DELETE FROM ledger_transfers WHERE id = $1", f"{tenant.ledger}/t")
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):
        await db_pool.execute("UPDATE ledger_transfers SET amount = 6 WHERE id = $1", f"{tenant.ledger}/t")
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):
        await db_pool.execute("DELETE FROM ledger_accounts WHERE id = $1", tenant.account_id("a"))
    with pytest.raises(asyncpg.CheckViolationError):
        await db_pool.execute("UPDATE ledger_accounts SET debits_posted = -1 WHERE id = $1", tenant.account_id("a"))


async def test_invariants_report_what_is_broken(store, tenant, db_pool):
    await store.create_accounts([tenant.account("a"), tenant.account("b"), tenant.account("c")])
    assert await store.create_transfers([tenant.transfer("t1", "a", "b", 5), tenant.transfer("t2", "b", "c", 2)]) == [R.OK, R.OK]
    assert await check_ledger_invariants(db_pool, ledger=tenant.ledger) == []
    # Balances are not append-only (they are running totals): corrupt two, as a bug would.
    await db_pool.execute("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = $1", tenant.account_id("b"))
    await db_pool.execute("UPDATE ledger_accounts SET flags = 1 WHERE id = $1", tenant.account_id("a"))
    violations = await check_ledger_invariants(db_pool, ledger=tenant.ledger)
    kinds = sorted(violation.kind for violation in violations)
    assert kinds == ["account_balances_not_matching_transfers", "account_flags_broken", "ledger_unbalanced"], violations
    assert {v.account_id for v in violations if v.account_id} == {tenant.account_id("a"), tenant.account_id("b")}
    # Other ledgers are not reported under this one, and this one shows up in the whole check.
    assert {v.ledger for v in await check_ledger_invariants(db_pool)} >= {tenant.ledger}


async def test_faults_are_the_projects_exceptions_and_bad_calls_raise(stack, tenant):
    pool = await create_pool(stack["database_url"], size_max=1)
    store = LedgerStore(pool, unavailable_attempts_max=2)
    await pool.close()
    with pytest.raises(LedgerUnavailable):
        await store.create_transfers([tenant.transfer("t", "a", "b", 1)])
    with pytest.raises(LedgerUnavailable):
        await store.lookup_accounts([tenant.account_id("a")])
    with pytest.raises(TypeError):
        await store.create_transfers([{"id": "t"}])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        await store.create_transfers([tenant.transfer(f"t{i}", "a", "b", 1) for i in range(8190)])
    assert await store.create_transfers([]) == []
    await store.close()
    with pytest.raises(LedgerUnavailable):
        await store.create_transfers([tenant.transfer("t", "a", "b", 1)])


async def test_a_commit_whose_answer_was_lost_is_retried_into_exists(db_pool, tenant):
    """The connection dies after PostgreSQL committed but before we heard it: the store runs the
    batch again, finds every transfer, and posts nothing twice."""
    store = LedgerStore(db_pool)
    try:
        await store.create_accounts([tenant.account("a"), tenant.account("fees")])
        post_group_once = store._post_group_once
        calls = []

        async def commit_then_lose_the_answer(connection, group):
            calls.append(len(group))
            results = await post_group_once(connection, group)
            if len(calls) == 1:
                raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
            return results

        store._post_group_once = commit_then_lose_the_answer
        batch = [tenant.transfer(f"pi_{i}/fee", "a", "fees", 10) for i in range(5)]
        assert await store.create_transfers(batch) == [R.EXISTS] * 5
        assert len(calls) == 2 and store.stats.unavailable_retried == 1
        assert await _balances(store, tenant, "a", "fees") == [(0, 50, 0, 0), (0, 0, 0, 50)]
    finally:
        await store.close()


@pytest.mark.parametrize("statement_transfers_min", [1, 500])
async def test_one_commit_written_in_parts_sees_earlier_parts(db_pool, tenant, monkeypatch, statement_transfers_min):
    """Callers merged into one transaction are written in several statements while the engine
    goes on: a pending transfer created by one caller and posted by the next must end posted."""
    monkeypatch.setattr(ledger_store, "_STATEMENT_TRANSFERS_MIN", statement_transfers_min)
    store = LedgerStore(db_pool, commits_concurrent_max=1)
    try:
        await store.create_accounts([tenant.account("merchant"), tenant.account("in_flight"), tenant.account("fees")])
        commits_before = store.stats.commits
        filler = [tenant.transfer(f"filler/{i}", "fees", "merchant", 1) for i in range(500)]
        results = await asyncio.gather(
            store.create_transfers([tenant.transfer("reserve", "merchant", "in_flight", 100, TransferFlags.PENDING), *filler]),
            store.create_transfers([tenant.resolve("post", "reserve", TransferFlags.POST_PENDING, amount=40)]),
            store.create_transfers(
                [
                    tenant.transfer("fee", "merchant", "fees", 1, TransferFlags.LINKED),
                    tenant.resolve("void", "reserve", TransferFlags.VOID_PENDING),
                ]
            ),
            store.create_transfers([tenant.transfer("reserve2", "merchant", "in_flight", 5, TransferFlags.PENDING)]),
        )
        assert results == [[R.OK] * 501, [R.OK], [R.LINKED_EVENT_FAILED, R.PENDING_TRANSFER_ALREADY_POSTED], [R.OK]]
        assert store.stats.commits - commits_before == 1
        reserve = await store.get_transfer(f"{tenant.ledger}/reserve")
        assert reserve.pending_status is PendingStatus.POSTED
        assert await store.get_transfer(f"{tenant.ledger}/fee") is None
        assert await _balances(store, tenant, "merchant", "in_flight") == [(5, 40, 0, 500), (0, 0, 5, 40)]
        assert await check_ledger_invariants(db_pool, ledger=tenant.ledger) == []
    finally:
        await store.close()
