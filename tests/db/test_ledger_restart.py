"""PostgreSQL restarted under load: nothing acknowledged is lost, nothing is posted twice.

The test starts its own PostgreSQL (the session's shared one is left alone), posts batches
from several producers through one LedgerStore while restarting the server with
`pg_ctl restart -m fast` (as `settle up` runs pg_ctl: as the unprivileged user under root), and
retries each failed batch with the same ids until it is acknowledged.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from cli.processes import stop_pid
from cli.stack import Stack, _postmaster_pid, _prepare_database, _run_as, _unprivileged_ids, postgres_bin_dir
from db.ledger_invariants import check_ledger_invariants
from db.ledger_store import LedgerStore, LedgerUnavailable
from db.pool import create_pool
from domain.ledger import AccountCode, CreateAccountResult, CreateTransferResult, NewAccount, NewTransfer, TransferFlags

R = CreateTransferResult
ASSET = "evm:31337:usdc"
PRODUCERS = 4
BATCHES_PER_PRODUCER_MIN = 25
BATCHES_PER_PRODUCER_MAX = 400
RESTARTS = 3
BATCH_ATTEMPTS_MAX = 600
TEST_TIME_LIMIT_S = 120


class OwnPostgres:
    """A PostgreSQL of this test's own, in a temporary directory."""

    def __init__(self) -> None:
        self.state_dir = Path(tempfile.mkdtemp(prefix="settle-test-ledger-restart-"))
        # 0o755 so that, under root, the unprivileged PostgreSQL user can enter it.
        os.chmod(self.state_dir, 0o755)
        self.stack = Stack(state_dir=self.state_dir, database_url_override=None, with_api=False, with_worker=False)
        self.info: dict = {}

    def start(self) -> str:
        self.info = self.stack._up_postgres({})
        return self.info["database_url"]

    def restart(self) -> None:
        data_dir = self.info["data_dir"]
        log_path = self.stack.logs_dir / "postgres.log"
        _run_as(
            [str(postgres_bin_dir() / "pg_ctl"), "-D", data_dir, "-l", str(log_path), "-m", "fast", "-w", "-t", "60", "restart"],
            user_ids=_unprivileged_ids() if os.geteuid() == 0 else None,
            what="pg_ctl restart",
            log_path=log_path,
        )

    def stop(self) -> None:
        if self.info:
            # The postmaster's pid changes with every restart: read the current one.
            pid = _postmaster_pid(Path(self.info["data_dir"]))
            if pid:
                stop_pid(pid, sig=signal.SIGINT, timeout_s=30)
            data_dir = Path(self.info["data_dir"])
            if not data_dir.is_relative_to(self.state_dir):
                shutil.rmtree(data_dir.parent, ignore_errors=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)


@pytest.mark.slow
async def test_a_restarted_postgres_loses_nothing_acknowledged_and_posts_nothing_twice():
    postgres = OwnPostgres()
    pool = None
    store = None
    try:
        database_url = postgres.start()
        await _prepare_database(database_url)
        pool = await create_pool(database_url, size_max=8)
        store = LedgerStore(pool)
        ledger = f"restart-{uuid.uuid4().hex[:10]}"
        customers = [f"{ledger}/customer/{i}" for i in range(20)]
        fees = f"{ledger}/platform_fees"
        accounts = [NewAccount(id=account_id, ledger=ledger, asset=ASSET, code=AccountCode.CUSTOMER_DEPOSITS) for account_id in customers]
        accounts.append(NewAccount(id=fees, ledger=ledger, asset=ASSET, code=AccountCode.PLATFORM_FEES))
        assert set(await store.create_accounts(accounts)) == {CreateAccountResult.OK}

        expected: dict[str, list[int]] = {account.id: [0, 0, 0, 0] for account in accounts}  # dp, dpo, cp, cpo
        acknowledged: list[str] = []
        faults = {"batches_failed": 0, "exists_after_retry": 0}
        restarts_done = asyncio.Event()
        deadline = time.monotonic() + TEST_TIME_LIMIT_S

        def plan_batch(rng: random.Random, producer: int, number: int, pendings: list[tuple[str, str, int]]) -> tuple[list[NewTransfer], list]:
            """Plain transfers to the hot fee account, a linked chain, new pending transfers and
            posts of the producer's earlier ones. Returns the batch and its effects on balances."""
            prefix = f"{ledger}/p{producer}/b{number}"
            batch, effects = [], []
            for index in range(8):
                debit = rng.choice(customers)
                amount = rng.randint(1, 10**6)
                linked = TransferFlags.LINKED if index in (5, 6) else TransferFlags.NONE
                batch.append(NewTransfer(id=f"{prefix}/fee/{index}", debit_account_id=debit, credit_account_id=fees, amount=amount, ledger=ledger, asset=ASSET, code="fee", flags=linked))
                effects += [(debit, 1, amount), (fees, 3, amount)]
            for pending_id, debit, amount in pendings:
                batch.append(NewTransfer(id=f"{pending_id}/post", pending_id=pending_id, amount=amount - 1, flags=TransferFlags.POST_PENDING))
                effects += [(debit, 0, -amount), (debit, 1, amount - 1), (fees, 2, -amount), (fees, 3, amount - 1)]
            pendings.clear()
            for index in range(3):
                debit = rng.choice(customers)
                amount = rng.randint(2, 10**6)
                transfer_id = f"{prefix}/reserve/{index}"
                batch.append(NewTransfer(id=transfer_id, debit_account_id=debit, credit_account_id=fees, amount=amount, ledger=ledger, asset=ASSET, code="reserve", flags=TransferFlags.PENDING))
                effects += [(debit, 0, amount), (fees, 2, amount)]
                pendings.append((transfer_id, debit, amount))
            return batch, effects

        async def producer(number: int) -> None:
            rng = random.Random(number)
            pendings: list[tuple[str, str, int]] = []
            for batch_number in range(BATCHES_PER_PRODUCER_MAX):
                if restarts_done.is_set() and batch_number >= BATCHES_PER_PRODUCER_MIN:
                    return
                assert time.monotonic() < deadline, "the producers did not finish in time"
                batch, effects = plan_batch(rng, number, batch_number, pendings)
                for attempt in range(BATCH_ATTEMPTS_MAX):
                    try:
                        results = await store.create_transfers(batch)
                        break
                    except LedgerUnavailable:
                        faults["batches_failed"] += 1
                        await asyncio.sleep(0.05)
                else:
                    raise AssertionError(f"batch {batch_number} of producer {number} was never acknowledged")
                # After a fault the batch may have been committed already (the connection died
                # with the commit's answer): then it exists, all of it, since a batch is atomic.
                assert set(results) in ({R.OK}, {R.EXISTS}), results
                if results[0] is R.EXISTS:
                    faults["exists_after_retry"] += 1
                acknowledged.extend(transfer.id for transfer in batch)
                for account_id, position, amount in effects:
                    expected[account_id][position] += amount

        async def restarter() -> None:
            try:
                for _ in range(RESTARTS):
                    await asyncio.sleep(0.7)
                    await asyncio.to_thread(postgres.restart)
            finally:
                restarts_done.set()

        await asyncio.gather(restarter(), *(producer(number) for number in range(PRODUCERS)))
        print(f"acknowledged {len(acknowledged)} transfers; {faults}; {store.stats}")
        # Faults are retried inside the store first, then by the producers.
        assert store.stats.unavailable_retried > 0, "no batch met a restart: the test proved nothing"

        # Every acknowledged id exists, exactly once (the primary key), and nothing else does.
        assert len(acknowledged) == len(set(acknowledged))
        rows = await _with_retries(lambda: pool.fetch("SELECT id FROM ledger_transfers WHERE debit_account_id = ANY($1::text[])", [a.id for a in accounts]))
        assert sorted(row["id"] for row in rows) == sorted(acknowledged)
        balances = {account.id: list(account.balances) for account in await store.lookup_accounts([a.id for a in accounts])}
        assert balances == expected
        assert await _with_retries(lambda: check_ledger_invariants(pool, ledger=ledger)) == []
    finally:
        if store is not None:
            await store.close()
        if pool is not None:
            await pool.close()
        postgres.stop()


async def _with_retries(read):
    """Idle pooled connections may still be the ones the last restart killed."""
    for attempt in range(5):
        try:
            return await read()
        except Exception:  # noqa: BLE001 - a dead connection; the next is fresh
            if attempt == 4:
                raise
            await asyncio.sleep(0.1)
